"""Groups in which no configuration reaches the selection threshold (issue 14, item 2), the reference's per-env fits.

Rybkin et al. 2025 pick eta* (B*) per bootstrap draw as the grid value reaching J first in each (env, B, sigma)
((env, eta, sigma)) group. When nothing in a group reaches J, scalerl's default leaves the draw out (``skip``); the
reference (qscaled ``core/grid_search/bootstrapping.py``) takes ``np.argmin`` over all-infinite times, i.e. the
smallest grid value (``first``).
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from scalerl.errors import ScalerlError
from scalerl.scaling import hyperparams as hp
from scalerl.scaling.commands import fit, report

NEVER = None
# Hand-made grid, one environment: steps (in thousands) at which each (sigma, B, eta) first reaches J; None: never.
CROSSINGS = {
    (1, 64, 1e-4): 30, (1, 64, 1e-3): 20, (1, 256, 1e-4): 25, (1, 256, 1e-3): 15,
    (2, 64, 1e-4): 20, (2, 64, 1e-3): 25, (2, 256, 1e-4): 30, (2, 256, 1e-3): 20,
    (4, 64, 1e-4): NEVER, (4, 64, 1e-3): 30, (4, 256, 1e-4): NEVER, (4, 256, 1e-3): NEVER,
}  # fmt: skip
# eta* per sigma: at sigma 4 the B = 256 group never reaches J: skip averages B = 64's 1e-3 alone, first adds 1e-4.
ETA_STAR = {"skip": [1e-3, 5.5e-4, 1e-3], "first": [1e-3, 5.5e-4, 5.5e-4]}
# B* per sigma (the eta = 1e-4 group at sigma 4 never reaches J; its first value, 64, is also eta = 1e-3's winner).
B_STAR = [256, 160, 64]


def test_best_values_under_both_rules_by_hand():
    """Three batch sizes x two learning rates at one (env, sigma), three bootstrap draws."""
    nan = np.nan
    cells = np.tile([0.0, 1.0], (6, 1))
    batch = np.array([64, 64, 128, 128, 256, 256])
    lr = np.array([1e-4, 3e-4, 1e-4, 3e-4, 1e-4, 3e-4])
    times = np.array(
        [
            [10, nan, nan],  # B 64: draw 2 reaches J nowhere
            [20, 5, nan],
            [nan, 8, 9],  # B 128: draw 2 is a tie, which goes to the smaller value
            [4, nan, 9],
            [nan, nan, nan],  # B 256: never
            [nan, nan, nan],
        ]
    )
    skip = hp.best_values(cells, lr, batch, times, "skip")
    np.testing.assert_allclose(skip.replicates, [[2e-4, 2e-4, 1e-4]])
    np.testing.assert_allclose(skip.value, [(1 + 3 + 3 + 1 + 1) / 5 * 1e-4])
    first = hp.best_values(cells, lr, batch, times, "first")
    np.testing.assert_allclose(first.replicates, [[5e-4 / 3, 5e-4 / 3, 1e-4]])
    np.testing.assert_allclose(first.value, [13 / 9 * 1e-4])
    expected = {"groups": 2, "groups_never": 1, "groups_total": 3, "draws": 4, "draws_total": 9}
    assert skip.unreached_counts() == expected and first.unreached_counts() == expected
    with pytest.raises(ScalerlError, match="--unreached: expected one of skip, first, got 'last'"):
        hp.best_values(cells, lr, batch, times, "last")


def test_per_env_fit_can_leave_out_the_highest_sigma():
    envs, utds = np.array([0, 0, 0, 1, 1, 1]), np.array([1.0, 2.0, 4.0, 1.0, 2.0, 4.0])
    values = np.array([1.0, 0.5, 8.0, 1.0, 2.0, 1e-3])  # the highest sigma is an outlier in both environments
    slopes, intercepts = hp.fit_log_linear(envs, utds, values, shared=False, drop_highest_utd=True)
    assert slopes == pytest.approx({0: -1.0, 1: 1.0}) and intercepts == pytest.approx({0: 0.0, 1: 0.0})
    # The shared fit keeps every sigma: with a = log10 2, the pooled slope sum(Sxy) / sum(Sxx) = (3a^2 - 3a) / (4a^2).
    shared, _ = hp.fit_log_linear(envs, utds, values, shared=True)
    a = np.log10(2)
    assert shared == pytest.approx({0: (3 * a**2 - 3 * a) / (4 * a**2), 1: (3 * a**2 - 3 * a) / (4 * a**2)})


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def grid_zip(tmp_path_factory):
    """CROSSINGS as a qscaled zip whose step column jitters (1, 1001, 2001, 3000, ...), two identical seeds."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("unreached") / "grid.zip"
    rows = np.arange(61)
    with zipfile.ZipFile(path, "w") as archive:
        for (utd, batch, lr), crossing in CROSSINGS.items():
            steps = 1 + 1000 * rows + rng.integers(-1, 2, len(rows))
            steps[0] = 1
            curve = np.where(rows >= (crossing or 10**6), 1000.0, 0.0)
            array = np.column_stack([steps, curve, curve])
            archive.writestr(f"grid/utd_{utd}/walker/return/bs_{batch}_lr_{lr:g}.npy", _npy(array))
    return path


@pytest.fixture(scope="module")
def app():
    application = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    application.command("fit")(fit)
    application.command("report")(report)
    return application


@pytest.mark.parametrize("rule", ["skip", "first"])
def test_fit_reports_the_rule_and_the_affected_groups_and_draws(app, grid_zip, tmp_path, rule):
    out = tmp_path / "fits.json"
    args = ["fit", "--source", str(grid_zip), "--thresholds", "500", "--bootstrap", "5", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--unreached", rule, "--per-env-drop-highest-utd"])
    assert result.exit_code == 0, result.output
    assert "12 files; column 0 is the step (column 0 looks like steps in 12 of 12 files)" in result.output
    action = "left out" if rule == "skip" else "counted as the smallest value"
    line = f"no configuration reached J=500 in 5 of 30 draws, in 1 of 6 groups (1 in every draw); --unreached {rule}"
    line += f": {action}"
    assert result.output.count(line) == 2  # eta* and B*
    fits = json.loads(out.read_text())
    assert fits["options"]["unreached"] == rule and fits["options"]["per_env_drop_highest_utd"] is True
    hyper = fits["online"]["hyperparams"]
    for name, expected in (("lr", ETA_STAR[rule]), ("batch_size", B_STAR)):
        points = sorted(hyper[name]["points"], key=lambda p: p["utd"])
        np.testing.assert_allclose([p["value"] for p in points], expected)
        assert hyper[name]["unreached"] == {
            "rule": rule,
            "groups": 1,
            "groups_never": 1,
            "groups_total": 6,
            "draws": 5,
            "draws_total": 30,
        }
        shared_slope = np.polyfit(np.log10([1, 2, 4]), np.log10(expected), 1)[0]
        per_env_slope = np.log10(expected[1] / expected[0]) / np.log10(2)  # sigma = 4 left out
        assert hyper[name]["shared"]["slope"]["value"] == pytest.approx(shared_slope)
        assert hyper[name]["per_env"]["walker"]["slope"]["value"] == pytest.approx(per_env_slope)
    if rule == "skip":
        return  # the report (mostly plotting time) once is enough
    result = CliRunner().invoke(app, ["report", "--fits", str(out), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"Selection: {line}." in text and "leave out each environment's highest sigma" in text
    assert "column 0 looks like steps in 12 of 12 files" in text


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--unreached", "--unreached: expected one of skip, first, got 'never'"), ("--step-column", "--step-column")],
)
def test_bad_rule_or_layout_is_a_one_line_error(app, grid_zip, flag, message):
    result = CliRunner().invoke(app, ["fit", "--source", str(grid_zip), flag, "never"])
    assert isinstance(result.exception, ScalerlError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
