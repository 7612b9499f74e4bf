"""``scalerl info`` against a real generated dataset and its manifest."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def scalerl(*args):
    return subprocess.run([sys.executable, "-m", "scalerl.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("info") / "pm"
    result = scalerl(
        "generate",
        "--env",
        "pointmaze-medium-navigate",
        "--shards",
        "3",
        "--episodes-per-shard",
        "2",
        "--episode-length",
        "50",
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    return out


def test_info_agrees_with_manifest(dataset):
    result = scalerl("info", str(dataset), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert summary["manifest"] == "complete"
    assert summary["shards"] == len(manifest["shards"]) == 3
    assert summary["transitions"] == sum(s["transitions"] for s in manifest["shards"]) == 3 * 2 * 50
    assert summary["episodes"] == 6 and summary["val_shards"] == 3
    for key, spec in manifest["keys"].items():
        shape, dtype = summary["keys"][key]
        assert list(shape) == list(spec["shape"]) and dtype == spec["dtype"]
    assert summary["bytes"] == sum(os.path.getsize(dataset / n) for n in os.listdir(dataset) if n.endswith(".npz"))
    table = scalerl("info", str(dataset))
    assert "manifest     complete" in table.stdout and "300 train (6 episodes)" in table.stdout


def test_info_reports_checksum_mismatch_and_missing_shards(dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    first = copy / manifest["shards"][0]["file"]
    import numpy as np

    with np.load(first) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["actions"] = arrays["actions"] * 0.5
    np.savez(first, **arrays)
    result = scalerl("info", str(copy))
    assert result.returncode == 1 and "checksum mismatch: " + manifest["shards"][0]["file"] in result.stdout
    os.remove(copy / manifest["shards"][1]["file"])
    os.remove(first)
    result = scalerl("info", str(copy), "--no-verify")
    assert result.returncode == 1 and "incomplete: 2 missing shard files" in result.stdout


def test_info_on_missing_directory_is_one_line_error(tmp_path):
    result = scalerl("info", str(tmp_path / "absent"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "absent" in result.stderr
