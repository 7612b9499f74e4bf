"""Generation at scale: growing a dataset, slices generated apart and merged by copying, conflicts when merging,
size-only resume checks and ``--verify``, and Ray generation on a local cluster (all equal one local run, bit for bit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalerl.errors import ScalerlError
from scalerl.generate.shards import DatasetPlan, generate_dataset, parse_shards, plan_dataset, resolve_shard_slice
from scalerl.manifest import journal_name, list_journals, read_manifest, start_journal, write_manifest
from tests.generate.helpers import checksums, run_cli, snapshot

EPISODE_LENGTH = 20
CLI = ["generate", "--env", "pointmaze-medium-navigate", "--episode-length", str(EPISODE_LENGTH), "--workers", "1",
       "--no-progress"]  # fmt: skip


def plan(episodes: int) -> DatasetPlan:
    """pointmaze-medium navigate: ``episodes`` episodes of 20 steps, 2 per shard (7 episodes: shards of 2, 2, 2, 1)."""
    return plan_dataset(
        "pointmaze-medium",
        "navigate",
        transitions=episodes * EPISODE_LENGTH,
        episodes_per_shard=2,
        episode_length=EPISODE_LENGTH,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The 7-episode dataset generated in one local run."""
    out = tmp_path_factory.mktemp("scale") / "reference"
    generate_dataset(plan(7), out, workers=1, progress_bar=False)
    return out


@pytest.mark.parametrize(
    ("text", "parsed"),
    [(None, (None, None)), ("3", (3, None)), ("2:5", (None, (2, 5))), ("4:", (None, (4, None))),
     (":2", (None, (None, 2)))],
)  # fmt: skip
def test_shards_flag_is_a_count_or_a_slice(text, parsed):
    assert parse_shards(text) == parsed


def test_shard_slices_resolve_against_the_plan():
    assert resolve_shard_slice(None, 4) == (0, 4)
    assert resolve_shard_slice((2, None), 4) == (2, 4)
    assert resolve_shard_slice((None, 1), 4) == (0, 1)
    for bounds in ((2, 2), (3, 5), (4, None)):
        with pytest.raises(ScalerlError, match="^--shards: slice .* 4 shards"):
            resolve_shard_slice(bounds, 4)


@pytest.mark.integration
def test_growing_keeps_existing_shards_byte_identical(reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "grown"
    generate_dataset(plan(5), out, workers=1, progress_bar=False)  # shards of 2, 2, 1 episodes
    before = snapshot(out)
    # 7 episodes; the layout (2 episodes per shard) comes from the manifest, not from the small-dataset default.
    code, stdout, stderr = run_cli([*CLI, "--out", str(out), "--transitions", "140"], monkeypatch, capsys)
    assert code == 0, stderr
    assert "(2 generated, 2 reused after size check)" in stdout  # the partial shard 2 is regenerated, shard 3 new
    after = snapshot(out)
    kept = [plan(7).shard_file(index, val) for index in (0, 1) for val in (False, True)]
    assert all(after[name] == before[name] for name in kept)  # same bytes, never rewritten (same mtime)
    assert checksums(out) == checksums(reference)
    assert read_manifest(out) == read_manifest(reference)

    code, stdout, _ = run_cli([*CLI, "--out", str(out)], monkeypatch, capsys)  # no --transitions: the size on disk
    assert code == 0 and "(0 generated, 4 reused after size check)" in stdout
    before = snapshot(out)
    code, _, stderr = run_cli([*CLI, "--out", str(out), "--transitions", "100"], monkeypatch, capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("error: --transitions:") and "never shrinks" in stderr
    assert snapshot(out) == before


@pytest.mark.integration
def test_slices_generated_apart_and_merged_by_copying_equal_one_run(reference, tmp_path):
    merged = tmp_path / "merged"
    merged.mkdir()
    for start, stop in ((0, 2), (2, 4)):
        part = tmp_path / f"slice-{start}-{stop}"
        result = generate_dataset(plan(7), part, workers=1, progress_bar=False, shard_slice=(start, stop))
        assert result.generated == list(range(start, stop)) and not result.manifest["complete"]
        assert [path.name for path in list_journals(part)] == [journal_name(start, stop)]
        for path in part.iterdir():  # the merge: copy every slice's files into one directory
            shutil.copy2(path, merged / path.name)
    assert checksums(merged) == checksums(reference)
    assert read_manifest(merged) == read_manifest(reference)
    again = generate_dataset(plan(7), merged, workers=1, progress_bar=False)
    assert (again.generated, again.reused) == ([], [0, 1, 2, 3])


@pytest.mark.integration
def test_merging_another_plan_or_conflicting_records_is_a_one_line_error(reference, tmp_path):
    out = tmp_path / "conflict"
    shutil.copytree(reference, out)
    lines = (out / journal_name(0, 4)).read_text().splitlines()
    journal_plan, records = json.loads(lines[0])["plan"], [json.loads(line) for line in lines[1:]]
    other = out / journal_name(4, 8)

    start_journal(other, {**journal_plan, "base_seed": 1}, records[:1])  # a slice of another seed copied in
    with pytest.raises(ScalerlError, match=r"shards-00004-00008.jsonl: written for another dataset .*base_seed"):
        read_manifest(out)
    with pytest.raises(ScalerlError, match=r"^--out: .*shards-00004-00008.jsonl was written for another .*base_seed"):
        generate_dataset(plan(7), out, workers=1, progress_bar=False)

    # Two records of shard 3 that disagree: reading refuses; generate keeps the record whose sha256 matches the file.
    start_journal(other, journal_plan, [{**records[3], "sha256": "0" * 64}])
    with pytest.raises(ScalerlError, match="shard 3 is recorded differently in shards-00000-00004.jsonl") as error:
        read_manifest(out)
    assert "\n" not in str(error.value)
    result = generate_dataset(plan(7), out, workers=1, progress_bar=False)
    assert result.generated == [] and read_manifest(out) == read_manifest(reference)
    assert list_journals(out) == [out / journal_name(0, 4)]
    assert checksums(out) == checksums(reference)


@pytest.mark.integration
def test_resume_checks_sizes_and_hashes_only_with_verify(reference, tmp_path):
    out = tmp_path / "verify"
    shutil.copytree(reference, out)
    shard = out / plan(7).shard_file(3)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    quick = generate_dataset(plan(7), out, workers=1, progress_bar=False)
    assert (quick.generated, quick.reused) == ([], [0, 1, 2, 3])  # sizes match: not read
    assert shard.read_bytes() == bytes(data)
    verified = generate_dataset(plan(7), out, workers=1, progress_bar=False, verify=True)
    assert (verified.generated, verified.reused) == ([3], [0, 1, 2])
    assert checksums(out) == checksums(reference)
    assert read_manifest(out) == read_manifest(reference)


@pytest.mark.integration
def test_ray_generation_on_a_local_cluster_equals_one_local_run(reference, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        result = generate_dataset(plan(7), out, progress_bar=False, ray_address="auto")
        assert result.generated == [0, 1, 2, 3]
        assert checksums(out) == checksums(reference)
        assert read_manifest(out) == read_manifest(reference)
        (out / plan(7).shard_file(2, val=True)).unlink()
        resumed = generate_dataset(plan(7), out, progress_bar=False, ray_address="auto")
        assert (resumed.generated, resumed.reused) == ([2], [0, 1, 3])
        assert checksums(out) == checksums(reference)
        assert read_manifest(out) == read_manifest(reference)
    finally:
        ray.shutdown()


@pytest.mark.integration
def test_a_format_1_manifest_is_read_and_moved_into_a_journal_on_the_next_run(reference, tmp_path):
    out = tmp_path / "format1"
    shutil.copytree(reference, out)
    for journal in list_journals(out):
        journal.unlink()
    single = {**read_manifest(reference), "format": "scalerl-dataset/1"}  # header, complete and shards in one file
    write_manifest(out, single)
    assert read_manifest(out) == single
    result = generate_dataset(plan(7), out, workers=1, progress_bar=False)
    assert (result.generated, result.reused) == ([], [0, 1, 2, 3])
    assert read_manifest(out) == read_manifest(reference)
    assert list_journals(out) == [out / journal_name(0, 4)]
