"""qscaled archives: whether column 0 of the ``.npy`` files is the environment step, decided once per archive.

Issue 14, item 1: real logs jitter (steps 1, 1001, 2001, 3000, 4001, ...) and skip rows, so a per-file test for an
exact arithmetic progression misread about half of a public archive's files (their step column became one more
"seed" that climbs ~1000 per row and won every hyper-parameter selection).
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile

import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.scaling.results import LoaderWarning, extract_curves, load_qscaled_zip, looks_like_step_column

KEYS = ["env", "utd", "batch_size", "lr"]
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "qscaled")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write_zip(path, arrays: dict[str, np.ndarray]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            archive.writestr(f"grid/{name}.npy", _npy(array))
    return str(path)


def _jittering_steps(rows: int, rng: np.random.Generator) -> np.ndarray:
    """1, 1001, 2001, 3000, 4001, ...: every 1000 steps, each logged up to one step early or late."""
    steps = 1 + 1000 * np.arange(rows) + rng.integers(-1, 2, rows)
    steps[0] = 1
    return steps.astype(float)


def _returns(rows: int, seeds: int, rng: np.random.Generator) -> np.ndarray:
    """Rising DMC-like returns in [0, 1000), one column per seed."""
    return np.clip(np.linspace(0, 900, rows)[:, None] + rng.normal(0, 30, (rows, seeds)), 0, 999)


def _names(count: int) -> list[str]:
    return [f"utd_{1 + i % 2}/hopper/episode.return/bs_{64 * (1 + i // 2)}_lr_3e-4" for i in range(count)]


def test_step_column_rule_on_hand_made_columns():
    rng = np.random.default_rng(0)
    assert looks_like_step_column(_jittering_steps(50, rng))  # gaps 999, 1000, 1001
    assert looks_like_step_column([5000, 6000, 8000, 9000, 13000])  # rows skipped: gaps are whole multiples
    assert looks_like_step_column([1, 3, 5])
    assert not looks_like_step_column([1000, 2000, 3500, 4500])  # a gap of 1.5 median gaps
    assert not looks_like_step_column([1000, 2000, 2000, 3000])  # not strictly increasing
    assert not looks_like_step_column([1000.5, 2000.5, 3000.5])  # not integers
    assert not looks_like_step_column([5.0])
    assert not looks_like_step_column(_returns(50, 1, rng)[:, 0])  # one seed's returns


def test_jittering_step_column_is_read_as_steps_in_every_file(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {}
    for name in _names(6):
        steps = _jittering_steps(40, rng)
        arrays[name] = np.column_stack([steps, _returns(40, 3, rng)])
    # One file logged with a gap (a skipped evaluation): still the archive's layout.
    arrays[name] = np.delete(arrays[name], 7, axis=0)
    path = _write_zip(tmp_path / "jitter.zip", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LoaderWarning)
        results = load_qscaled_zip(path)
    assert "column 0 is the step (column 0 looks like steps in 6 of 6 files)" in results.notes[0]
    curves = extract_curves(results, "return", KEYS)
    assert all(v.shape[1] == 3 for v in curves.values)
    for row, config in curves.configs.iterrows():
        name = f"utd_{config['utd']:g}/hopper/episode.return/bs_{config['batch_size']}_lr_3e-4"
        np.testing.assert_array_equal(curves.steps[row], arrays[name][:, 0])
        np.testing.assert_array_equal(curves.values[row], arrays[name][:, 1:])
    # Read the old way (no step column), the step would be a "seed" climbing 1000 per row.
    forced = extract_curves(load_qscaled_zip(path, step_column=False), "return", KEYS)
    assert all(v.shape[1] == 4 for v in forced.values) and forced.values[0][-1].max() > 30_000


def test_archive_without_a_step_column(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {name: _returns(30, 4, rng) for name in _names(4)}
    # Integer returns that happen to rise in one file's first seed do not make that file a step column.
    arrays[_names(4)[0]][:, 0] = np.arange(30) * 10.0
    path = _write_zip(tmp_path / "plain.zip", arrays)
    with pytest.warns(LoaderWarning, match=r"column 0 of 1 of 4 files does look like a step column"):
        results = load_qscaled_zip(path, step_start=100, step_interval=50)
    assert "no step column (row k is step 100 + 50 k)" in results.notes[0]
    curves = extract_curves(results, "return", KEYS)
    assert all(v.shape == (30, 4) for v in curves.values)
    np.testing.assert_array_equal(curves.steps[0], 100 + 50 * np.arange(30))


def test_files_that_disagree_follow_the_majority_with_a_warning(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {name: np.column_stack([_jittering_steps(20, rng), _returns(20, 2, rng)]) for name in _names(3)}
    odd = "utd_1/hopper/episode.return/bs_512_lr_3e-4"
    arrays[odd] = np.column_stack([np.array([1000.0 * k for k in range(19)] + [20_500.0]), _returns(20, 2, rng)])
    path = _write_zip(tmp_path / "mixed.zip", arrays)
    with pytest.warns(LoaderWarning, match=r"column 0 of 1 of 4 files does not look like a step column \(e\.g\. "):
        results = load_qscaled_zip(path)
    curves = extract_curves(results, "return", KEYS)
    assert all(v.shape[1] == 2 for v in curves.values)
    # A tie cannot be decided: the user says which layout it is.
    tie = _write_zip(tmp_path / "tie.zip", {n: a for n, a in list(arrays.items())[:1]} | {odd: arrays[odd]})
    with pytest.raises(ScalerlError, match="in 1 of 2 files and not in the others; pass --step-column yes or"):
        load_qscaled_zip(tie)
    extract_curves(load_qscaled_zip(tie, step_column=True), "return", KEYS)


def test_different_seed_counts_warn_and_a_forced_step_column_is_checked(tmp_path):
    rng = np.random.default_rng(4)
    names = _names(3)
    arrays = {name: np.column_stack([_jittering_steps(20, rng), _returns(20, 3, rng)]) for name in names}
    arrays[names[2]] = arrays[names[2]][:, :3]
    path = _write_zip(tmp_path / "seeds.zip", arrays)
    with pytest.warns(LoaderWarning, match=r"seed counts \(2 seeds in 1 files, 3 seeds in 2 files; e\.g\. .*_3e-4"):
        load_qscaled_zip(path)
    flat = _returns(20, 3, rng)
    flat[:, 0] = 500.0
    returns_only = _write_zip(tmp_path / "returns.zip", {name: flat for name in names})
    with pytest.raises(ScalerlError, match=r"column 0 is not strictly increasing.*--step-column no"):
        load_qscaled_zip(returns_only, step_column=True)
    notes = load_qscaled_zip(returns_only, step_column=False).notes
    assert notes[0].endswith("(set by --step-column no)")


def test_public_baseline_files_with_skipped_rows_and_their_extract(tmp_path):
    """The public dmc_baseline_utd2.zip: every file has a step column, some skip logged rows (gaps up to 5000)."""
    path = os.path.join(FIXTURES, "dmc_baseline_utd2_skipped_rows.zip")
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        raw = np.load(io.BytesIO(archive.read(name)))
    assert len(np.unique(np.diff(raw[:, 0]))) > 1  # not an exact arithmetic progression
    with warnings.catch_warnings():
        warnings.simplefilter("error", LoaderWarning)
        results = load_qscaled_zip(path)
        extract = load_qscaled_zip(os.path.join(FIXTURES, "dmc_baseline_utd2_extract.zip"))
    assert results.notes[0].endswith("column 0 is the step (column 0 looks like steps in 1 of 1 files)")
    assert extract.notes[0].endswith("column 0 is the step (column 0 looks like steps in 12 of 12 files)")
    curves = extract_curves(results, "return", KEYS)
    np.testing.assert_array_equal(curves.steps[0], raw[:, 0])
    np.testing.assert_array_equal(curves.values[0], raw[:, 1:])
