"""Atomic writes: the target appears whole or not at all, and a failed write leaves the old file and no litter."""

import json
import os

import pytest

from scalerl.atomic import atomic_path, atomic_write_json, save_figure


def test_write_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "fits.json"
    target.write_text("old")
    atomic_write_json(str(target), {"slope": -0.32})
    assert json.loads(target.read_text()) == {"slope": -0.32}
    assert [p.name for p in tmp_path.iterdir()] == ["fits.json"]


def test_files_get_the_permissions_a_plain_open_gives(tmp_path):
    """Not ``tempfile.mkstemp``'s private 0600: datasets and run directories are shared."""
    mask = os.umask(0o022)
    try:
        atomic_write_json(str(tmp_path / "manifest.json"), {})
    finally:
        os.umask(mask)
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_target(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old report")
    with pytest.raises(RuntimeError), atomic_path(str(target)) as temporary:
        with open(temporary, "w") as f:
            f.write("half a rep")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_save_figure_writes_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = save_figure(figure, str(tmp_path / "curve.png"), dpi=50)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
