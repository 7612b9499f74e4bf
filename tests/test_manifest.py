"""A dataset on disk: manifest round trip, header plus shard journals (merge, O(1) appends, partial lines, conflicts),
checksums, ``.npz`` headers and shard listing (with ``-val`` companions)."""

import hashlib
import json
import os

import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.manifest import (
    append_record,
    journal_name,
    list_shards,
    npz_headers,
    read_manifest,
    repair_journal,
    sha256_file,
    start_journal,
    write_manifest,
)


def test_manifest_round_trip_is_indented_json_and_leaves_no_temporary_file(tmp_path):
    assert read_manifest(tmp_path) is None
    manifest = {"format": "scalerl-dataset/1", "shards": [{"file": "a.npz", "val": {"file": "a-val.npz"}}]}
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert (tmp_path / "manifest.json").read_text() == json.dumps(manifest, indent=2) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_unreadable_or_foreign_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ScalerlError, match="manifest.json: not a readable JSON manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": []}))
    with pytest.raises(ScalerlError, match="not a scalerl dataset manifest"):
        read_manifest(tmp_path)


def test_sha256_file(tmp_path):
    data = os.urandom(5 << 20)  # more than one read block
    (tmp_path / "a.npz").write_bytes(data)
    assert sha256_file(tmp_path / "a.npz") == hashlib.sha256(data).hexdigest()


def npz(path) -> None:
    np.savez(path, terminals=np.ones(1, np.float32))


def test_directory_without_manifest_lists_npz_files_by_name_and_val_companions_apart(tmp_path):
    for name in ("d-00001.npz", "d-00000.npz", "d-00000-val.npz", "d-00001-val.npz", "notes.txt"):
        npz(tmp_path / name) if name.endswith(".npz") else (tmp_path / name).write_text("x")
    assert [os.path.basename(f) for f in list_shards(tmp_path)] == ["d-00000.npz", "d-00001.npz"]
    assert [os.path.basename(f) for f in list_shards(tmp_path, "val")] == ["d-00000-val.npz", "d-00001-val.npz"]
    assert all(os.path.isabs(f) for f in list_shards(tmp_path))


def test_manifest_order_wins_and_missing_files_are_named(tmp_path):
    shards = [{"file": f"d-{i}.npz", "val": {"file": f"d-{i}-val.npz"}} for i in (1, 0)]
    for shard in shards:
        npz(tmp_path / shard["file"])
        npz(tmp_path / shard["val"]["file"])
    npz(tmp_path / "unlisted.npz")
    write_manifest(tmp_path, {"format": "scalerl-dataset/1", "shards": shards})
    assert [os.path.basename(f) for f in list_shards(tmp_path)] == ["d-1.npz", "d-0.npz"]
    assert [os.path.basename(f) for f in list_shards(tmp_path, "val")] == ["d-1-val.npz", "d-0-val.npz"]
    os.remove(tmp_path / "d-0-val.npz")
    with pytest.raises(ScalerlError, match="d-0-val.npz: shard listed in manifest.json is missing"):
        list_shards(tmp_path, "val")
    write_manifest(tmp_path, {"format": "scalerl-dataset/1", "shards": [{"file": "d-1.npz"}]})
    with pytest.raises(ScalerlError, match="unreadable manifest"):
        list_shards(tmp_path, "val")


def test_single_file_and_its_val_companion(tmp_path):
    npz(tmp_path / "pointmaze-medium-navigate-v0.npz")
    path = tmp_path / "pointmaze-medium-navigate-v0.npz"
    assert list_shards(path) == [str(path)]
    with pytest.raises(ScalerlError, match="-val.npz: validation file not found"):
        list_shards(path, "val")
    npz(tmp_path / "pointmaze-medium-navigate-v0-val.npz")
    assert list_shards(path, "val") == [str(tmp_path / "pointmaze-medium-navigate-v0-val.npz")]


def test_no_shards_or_no_path_is_a_one_line_error(tmp_path):
    with pytest.raises(ScalerlError, match="no train .npz shards found"):
        list_shards(tmp_path)
    with pytest.raises(ScalerlError, match="no such dataset directory"):
        list_shards(tmp_path / "nope")
    with pytest.raises(ScalerlError, match="split: expected 'train' or 'val'"):
        list_shards(tmp_path, "test")


# ------------------------------------------------------------------------------------ header plus shard journals

PLAN = {"task": "pointmaze-medium", "base_seed": 0}


def header(num_shards: int) -> dict:
    return {"format": "scalerl-dataset/2", **PLAN, "num_shards": num_shards}


def record(index: int, sha: str = "a") -> dict:
    return {"index": index, "file": f"d-{index}.npz", "sha256": sha * 64, "val": {"file": f"d-{index}-val.npz"}}


def test_journals_merge_into_the_manifest_sorted_by_index(tmp_path):
    write_manifest(tmp_path, header(3))
    assert read_manifest(tmp_path) == {**header(3), "shards": [], "complete": False}
    start_journal(tmp_path / journal_name(2, 3), PLAN, [record(2)])
    start_journal(tmp_path / journal_name(0, 2), PLAN, [record(1), record(0), record(1)])  # a shard written twice
    start_journal(tmp_path / journal_name(0, 9), PLAN, [record(7)])  # a larger plan's slice: not this dataset's
    manifest = read_manifest(tmp_path)
    assert manifest["shards"] == [record(0), record(1), record(2)] and manifest["complete"] is True
    assert read_manifest(tmp_path, journals=False) == header(3)
    for index in range(3):
        npz(tmp_path / f"d-{index}.npz")
        npz(tmp_path / f"d-{index}-val.npz")
    assert [os.path.basename(f) for f in list_shards(tmp_path, "val")] == ["d-0-val.npz", "d-1-val.npz", "d-2-val.npz"]


def test_recording_a_shard_appends_one_line_and_rewrites_nothing(tmp_path):
    write_manifest(tmp_path, header(3))
    journal = tmp_path / journal_name(0, 3)
    start_journal(journal, PLAN, [record(0)])
    header_before, journal_before = (tmp_path / "manifest.json").stat(), journal.read_bytes()
    append_record(journal, record(1))
    assert journal.read_bytes() == journal_before + (json.dumps(record(1)) + "\n").encode()
    assert (tmp_path / "manifest.json").stat().st_mtime_ns == header_before.st_mtime_ns
    assert read_manifest(tmp_path)["shards"] == [record(0), record(1)]


def test_a_killed_writers_partial_line_is_skipped_then_cut_before_the_next_append(tmp_path):
    write_manifest(tmp_path, header(3))
    journal = tmp_path / journal_name(0, 3)
    start_journal(journal, PLAN, [record(0)])
    complete = journal.read_bytes()
    with open(journal, "ab") as file:
        file.write(json.dumps(record(1)).encode()[:40])
    assert read_manifest(tmp_path)["shards"] == [record(0)]
    repair_journal(journal)
    assert journal.read_bytes() == complete
    repair_journal(journal)  # a complete journal is left alone
    assert journal.read_bytes() == complete
    append_record(journal, record(1))
    assert read_manifest(tmp_path)["shards"] == [record(0), record(1)]


def test_merged_journals_of_another_plan_or_disagreeing_records_are_one_line_errors(tmp_path):
    write_manifest(tmp_path, header(3))
    start_journal(tmp_path / journal_name(0, 2), PLAN, [record(0), record(1)])
    other = tmp_path / journal_name(2, 3)
    start_journal(other, {**PLAN, "base_seed": 5}, [record(2)])
    with pytest.raises(ScalerlError, match=r"00003.jsonl: written for another dataset .*base_seed: 5 vs 0"):
        read_manifest(tmp_path)
    start_journal(other, PLAN, [record(1, sha="b")])
    with pytest.raises(ScalerlError) as error:
        read_manifest(tmp_path)
    assert str(error.value).endswith(
        "shards-00002-00003.jsonl: shard 1 is recorded differently in shards-00000-00002.jsonl; run 'scalerl generate' "
        "with this dataset's plan and --out to check the files and keep the record that matches"
    )
    other.write_text('{"not": "a journal"}\n')
    with pytest.raises(ScalerlError, match="shards-00002-00003.jsonl: not a scalerl shard journal"):
        read_manifest(tmp_path)
    other.write_text(json.dumps({"journal": "scalerl-dataset-shards/1", "plan": PLAN}) + '\n{"file": "x"}\n')
    with pytest.raises(ScalerlError, match="shards-00002-00003.jsonl: line 2 is not a shard record"):
        read_manifest(tmp_path)


def test_npz_headers_give_shapes_and_dtypes_without_the_data(tmp_path):
    np.savez(tmp_path / "plain.npz", observations=np.zeros((5, 3), np.float32), terminals=np.ones(5, np.float32))
    np.savez_compressed(tmp_path / "packed.npz", button_states=np.zeros((4, 9), np.int64))
    assert npz_headers(tmp_path / "plain.npz") == {"observations": ((5, 3), "<f4"), "terminals": ((5,), "<f4")}
    assert npz_headers(tmp_path / "packed.npz") == {"button_states": ((4, 9), "<i8")}
    (tmp_path / "broken.npz").write_bytes((tmp_path / "plain.npz").read_bytes()[:50])
    with pytest.raises(ScalerlError, match="broken.npz: truncated or corrupt .npz file") as error:
        npz_headers(tmp_path / "broken.npz")
    assert "\n" not in str(error.value)
