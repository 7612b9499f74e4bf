"""``scalerl sweep / fit / report`` end to end on the offline path: a sweep of run directories in the ``scalerl
train`` format (written by a fake trainer), fitted and reported; plus the CLI's one-line errors."""

from __future__ import annotations

import json
import os

import pytest
import typer
from typer.testing import CliRunner

from scalerl.errors import ScalerlError
from scalerl.scaling.commands import fit, report, sweep

FAKE_TRAIN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "fake_train.py")


@pytest.fixture(scope="module")
def app():
    """The three commands on a Typer app, as ``scalerl.cli`` registers them."""
    application = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    application.command("sweep")(sweep)
    application.command("fit")(fit)
    application.command("report")(report)
    return application


@pytest.fixture(scope="module")
def offline_sweep(tmp_path_factory, app):
    root = tmp_path_factory.mktemp("offline")
    spec = root / "offline.toml"
    spec.write_text(
        "\n".join(
            [
                'name = "offline"',
                (
                    f'command = "{{python}} {FAKE_TRAIN} --agent {{agent}} --dataset-size {{dataset_size}} '
                    f'--seed {{seed}} --seeds 2 --out {{trial_dir}}"'
                ),
                "seeds = 2",
                "[grid]",
                'agent = ["gciql", "sharsa"]',
                "dataset_size = [1000, 4000, 16000, 64000, 256000]",
            ]
        )
    )
    result = CliRunner().invoke(
        app, ["sweep", str(spec), "--out", str(root / "sweep"), "--workers", "2", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "20/20 trials done" in result.output
    return root


def test_sweep_dry_run_lists_trials(app, offline_sweep):
    result = CliRunner().invoke(
        app, ["sweep", str(offline_sweep / "offline.toml"), "--out", str(offline_sweep / "sweep"), "--dry-run"]
    )
    assert result.exit_code == 0
    assert "[done] agent=gciql__dataset_size=1000__seed=0:" in result.output
    assert "20 trials in" in result.output


def test_fit_writes_every_number_with_an_interval(app, offline_sweep):
    out = offline_sweep / "fits.json"
    result = CliRunner().invoke(
        app, ["fit", "--source", str(offline_sweep / "sweep"), "--json", str(out), "--bootstrap", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "offline dataset_size [gciql]" in result.output
    fits = json.loads(out.read_text())
    assert fits["metric"] == "success" and "online" not in fits
    by_agent = {entry["label"]: entry for entry in fits["offline"]}
    assert set(by_agent) == {"gciql", "sharsa"}
    # The fake trainer's asymptotes: 0.6 (gciql) and 0.9 (sharsa), four seeds per point.
    assert by_agent["gciql"]["y_inf"]["value"] == pytest.approx(0.6, abs=0.05)
    assert by_agent["sharsa"]["y_inf"]["value"] == pytest.approx(0.9, abs=0.05)
    assert by_agent["sharsa"]["points"]["seeds"] == [4] * 5
    for entry in fits["offline"]:
        for field in ("y_inf", "a", "b"):
            low, high = entry[field]["ci"]
            assert low <= entry[field]["value"] <= high


def test_report_writes_plots_and_markdown(app, offline_sweep):
    out = offline_sweep / "report"
    result = CliRunner().invoke(app, ["report", "--fits", str(offline_sweep / "fits.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = set(os.listdir(out))
    assert {"report.md", "offline.png", "learning_curves.png", "fits.json"} <= files
    text = (out / "report.md").read_text()
    assert "y_inf - a * x ** (-b)" in text and "| dataset_size | sharsa |" in text
    assert "![Learning curves" in text


def test_online_fit_and_report_on_synthetic_runs(app, tmp_path):
    """A UTD x batch size x learning rate grid of run directories whose best settings follow known laws."""
    import numpy as np

    rng = np.random.default_rng(0)
    for env, speed in (("easy", 1.0), ("hard", 0.5)):
        for utd in (1, 2, 4, 8):
            best_lr, best_batch = 1e-3 * utd**-0.3, 512 * utd**-0.5
            for batch in (64, 128, 256, 512):
                for lr in (1.5e-4, 3e-4, 6e-4, 1.2e-3):
                    penalty = 1 + 0.5 * np.log(lr / best_lr) ** 2 + 0.5 * np.log(batch / best_batch) ** 2
                    rate = speed * utd**0.5 / penalty / 20_000
                    run = tmp_path / "runs" / f"{env}-{utd}-{batch}-{lr}"
                    run.mkdir(parents=True)
                    config = {
                        "train": {"env": env, "agent": "sac"},
                        "agent": {"utd": utd, "batch_size": batch, "lr": lr},
                    }
                    (run / "config.json").write_text(json.dumps(config))
                    rows = []
                    for step in range(5000, 100_001, 5000):
                        for seed in range(3):
                            value = 1000 * (1 - np.exp(-rate * step)) + rng.normal(0, 10)
                            rows.append(json.dumps({"step": step, "seed": seed, "return": value}))
                    (run / "eval.jsonl").write_text("\n".join(rows) + "\n")
    out = tmp_path / "fits.json"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            "--source",
            str(tmp_path / "runs"),
            "--json",
            str(out),
            "--bootstrap",
            "10",
            "--thresholds",
            "200,400,600",
            "--n-params",
            "1e6",
        ],
    )
    assert result.exit_code == 0, result.output
    online = json.loads(out.read_text())["online"]
    assert online["envs"] == ["easy", "hard"] and online["selection_threshold"] == 600
    assert online["hyperparams"]["lr"]["shared"]["slope"]["value"] < 0
    assert online["hyperparams"]["batch_size"]["shared"]["slope"]["value"] < 0
    assert len(online["compute"]["optima"]) == 3 and "budget_law" in online["compute"]
    result = CliRunner().invoke(app, ["report", "--fits", str(out), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert {"hyperparams.png", "data_efficiency.png", "pareto.png", "budget.png"} <= set(
        os.listdir(tmp_path / "report")
    )
    assert "Proposed hyper-parameters for new sigma" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit"], "--source: give at least one"),
        (["fit", "--source", "/no/such/dir"], "no such file or directory"),
        (["fit", "--source", "{sweep}", "--metric", "return"], "'return' is not a logged metric"),
        (["fit", "--source", "{sweep}", "--thresholds", "1,x"], "--thresholds: expected comma-separated numbers"),
        (["report", "--out", "{tmp}"], "--source or --fits"),
        (["sweep", "{tmp}/missing.toml"], "cannot read the sweep file"),
    ],
)
def test_bad_input_raises_one_line_errors(app, offline_sweep, tmp_path, args, message):
    args = [a.format(sweep=offline_sweep / "sweep", tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ScalerlError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_a_sweep_with_failures_exits_1_and_names_them(app, tmp_path):
    spec = tmp_path / "fails.toml"
    spec.write_text("command = \"{python} -c 'import sys; sys.exit({x})'\"\nmax_retries = 0\n[grid]\nx = [0, 4]\n")
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 1
    assert "1/2 trials done" in result.output and "failed: x=4 after 1 attempts: exit code 4" in result.output


EXAMPLE_SWEEP = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples", "utd_sweep", "sweep")


def test_fit_and_report_of_the_committed_online_utd_sweep(app, tmp_path):
    """The real sweep of docs/examples/utd_sweep (scalerl online, InvertedPendulum-v5, sigma x B x eta, 2 seeds):
    its run directories load with their environment, and fit and report run through every online section."""
    from scalerl.scaling.results import load_run_dirs

    table = load_run_dirs([EXAMPLE_SWEEP]).table
    assert set(table["env"]) == {"InvertedPendulum-v5"}
    assert sorted(table["utd"].unique()) == [1, 2, 4] and sorted(table["batch_size"].unique()) == [64, 256]
    assert len(table.groupby(["utd", "batch_size", "lr"])) == 12 and sorted(table["seed"].unique()) == [0, 1]
    options = ["--thresholds", "200,400,600,800,1000", "--interpolate", "--n-params", "34818", "--delta", "4e9"]
    fits_path = tmp_path / "fits.json"
    result = CliRunner().invoke(app, ["fit", "--source", EXAMPLE_SWEEP, *options, "--json", str(fits_path)])
    assert result.exit_code == 0, result.output
    online = json.loads(fits_path.read_text())["online"]
    assert online["envs"] == ["InvertedPendulum-v5"]
    # lr = 1e-3 reaches J = 1000 first at every sigma in this sweep, so eta*(sigma) is flat.
    assert abs(online["hyperparams"]["lr"]["shared"]["slope"]["value"]) < 1e-9
    result = CliRunner().invoke(app, ["report", "--source", EXAMPLE_SWEEP, *options, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert {"hyperparams.png", "data_efficiency.png", "pareto.png", "budget.png"} <= set(os.listdir(tmp_path / "r"))
