"""``scalerl info``: against a real generated dataset and its manifest, and on synthetic shards whose array data is
corrupt past the headers (info reads headers, not data)."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.generate.shards import generate_dataset, plan_dataset, write_npz
from scalerl.info import summarize
from scalerl.manifest import FORMAT, journal_name, read_manifest, sha256_file, start_journal, write_manifest
from tests.generate.helpers import run_cli

ROWS, VAL_ROWS, EPISODE_ROWS, OBS_DIM = 3000, 300, 100, 16


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("info") / "pm"
    plan = plan_dataset("pointmaze-medium-navigate", shards=3, episodes_per_shard=2, episode_length=50)
    generate_dataset(plan, out, workers=1, progress_bar=False)
    return out


@pytest.mark.integration
def test_info_agrees_with_manifest(dataset, monkeypatch, capsys):
    code, stdout, stderr = run_cli(["info", str(dataset), "--json"], monkeypatch, capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    manifest = read_manifest(dataset)
    assert summary["manifest"] == "complete"
    assert summary["shards"] == len(manifest["shards"]) == 3
    assert summary["transitions"] == sum(s["transitions"] for s in manifest["shards"]) == 3 * 2 * 50
    assert summary["episodes"] == 6 and summary["val_shards"] == 3
    for key, spec in manifest["keys"].items():
        shape, dtype = summary["keys"][key]
        assert list(shape) == list(spec["shape"]) and dtype == spec["dtype"]
    assert summary["bytes"] == sum(os.path.getsize(dataset / n) for n in os.listdir(dataset) if n.endswith(".npz"))
    code, table, _ = run_cli(["info", str(dataset)], monkeypatch, capsys)
    assert code == 0 and "manifest     complete" in table and "300 train (6 episodes)" in table


@pytest.mark.integration
def test_info_reports_size_and_checksum_mismatch_and_missing_shards(dataset, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    manifest = read_manifest(copy)
    first, second = (copy / manifest["shards"][index]["file"] for index in (0, 1))
    with np.load(first) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(first, **{**arrays, "actions": arrays["actions"] * 0.5})  # uncompressed: another size
    code, stdout, _ = run_cli(["info", str(copy)], monkeypatch, capsys)
    assert code == 1 and "size mismatch: " + first.name in stdout
    os.remove(first)

    data = bytearray(second.read_bytes())
    data[10] ^= 0xFF  # the first member's modification time in its local header: same size and arrays
    second.write_bytes(bytes(data))
    assert summarize(str(copy))["manifest"] == "incomplete: 1 missing shard files"  # sizes only: not noticed
    code, stdout, _ = run_cli(["info", str(copy), "--verify"], monkeypatch, capsys)
    assert code == 1 and "checksum mismatch: " + second.name in stdout
    os.remove(second)
    code, stdout, _ = run_cli(["info", str(copy)], monkeypatch, capsys)
    assert code == 1 and "incomplete: 2 missing shard files" in stdout


def test_info_on_missing_directory_is_one_line_error(tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(["info", str(tmp_path / "absent")], monkeypatch, capsys)
    assert code == 2 and stderr.strip().count("\n") == 0 and "absent" in stderr


def synthetic_dataset(directory, with_manifest: bool) -> None:
    """Two shards (3000 rows, 30 episodes of 100 rows; val 300 rows) of incompressible observations, and optionally a
    manifest (header plus one journal) recording them."""
    directory.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for index in range(2):
        entries = {}
        for split, rows in (("train", ROWS), ("val", VAL_ROWS)):
            terminals = np.zeros(rows, np.float32)
            terminals[EPISODE_ROWS - 1 :: EPISODE_ROWS] = 1
            name = f"syn-{index:05d}{'-val' if split == 'val' else ''}.npz"
            observations = rng.standard_normal((rows, OBS_DIM)).astype(np.float32)
            actions = rng.uniform(-1, 1, (rows, 2)).astype(np.float32)
            write_npz(directory / name, {"observations": observations, "actions": actions, "terminals": terminals})
            episodes, path = rows // EPISODE_ROWS, directory / name
            entries[split] = {"file": name, "rows": rows, "transitions": rows - episodes, "episodes": episodes,
                              "sha256": sha256_file(path), "bytes": path.stat().st_size}  # fmt: skip
        records.append({"index": index, **entries["train"], "val": entries["val"]})
    if with_manifest:
        write_manifest(directory, {"format": FORMAT, "task": "synthetic", "num_shards": 2})
        start_journal(directory / journal_name(0, 2), {"task": "synthetic"}, records)


def corrupt_array_data(path, key: str) -> None:
    """Overwrite 1 KB in the middle of ``key``'s compressed data, past its header; the file keeps its size."""
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(f"{key}.npy")
    with open(path, "rb+") as file:
        file.seek(member.header_offset + 26)
        name_length, extra_length = np.frombuffer(file.read(4), "<u2")
        middle = member.header_offset + 30 + int(name_length) + int(extra_length) + member.compress_size // 2
        file.seek(middle)
        file.write(bytes(1024))


@pytest.mark.parametrize("with_manifest", [True, False])
def test_info_reads_headers_not_data(tmp_path, with_manifest):
    directory = tmp_path / "synthetic"
    synthetic_dataset(directory, with_manifest)
    corrupt_array_data(directory / "syn-00000.npz", "observations")
    with pytest.raises((zipfile.BadZipFile, OSError, ValueError)):  # the array data really is unreadable
        with np.load(directory / "syn-00000.npz") as file:
            file["observations"]
    summary = summarize(str(directory))
    assert summary["manifest"] == ("complete" if with_manifest else "absent")
    assert (summary["shards"], summary["val_shards"], summary["rows"]) == (2, 2, 2 * ROWS)
    assert (summary["episodes"], summary["transitions"]) == (2 * ROWS // EPISODE_ROWS, 2 * (ROWS - ROWS // 100))
    assert (summary["val_episodes"], summary["val_transitions"]) == (2 * 3, 2 * (VAL_ROWS - 3))
    assert summary["keys"] == {"observations": ([OBS_DIM], "float32"), "actions": ([2], "float32"),
                               "terminals": ([], "float32")}  # fmt: skip


def test_info_names_an_unreadable_shard_and_a_rows_mismatch(tmp_path):
    directory = tmp_path / "synthetic"
    synthetic_dataset(directory, with_manifest=True)
    val = directory / "syn-00001-val.npz"
    val.write_bytes(bytes(val.stat().st_size))  # right size, not a zip
    with pytest.raises(ScalerlError, match="syn-00001-val.npz: truncated or corrupt .npz file") as error:
        summarize(str(directory))
    assert "\n" not in str(error.value)

    directory = tmp_path / "rows"
    synthetic_dataset(directory, with_manifest=True)
    journal = directory / journal_name(0, 2)
    lines = journal.read_text().splitlines()
    record = json.loads(lines[1])
    lines[1] = json.dumps({**record, "rows": record["rows"] + 1})
    journal.write_text("\n".join(lines) + "\n")
    assert summarize(str(directory))["manifest"] == "rows mismatch: syn-00000.npz"
