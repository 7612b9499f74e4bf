"""A dataset on disk: manifest round trip, checksums and shard listing (with ``-val`` companions)."""

import hashlib
import json
import os

import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.manifest import list_shards, read_manifest, sha256_file, write_manifest


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
