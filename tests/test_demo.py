"""``scalerl demo`` without its 15-minute study: embedded defaults, agent configs, stage wiring and resume, the report
(from hand-written run directories) and the one-line errors of bad flags. Data generation and training are faked."""

from __future__ import annotations

import dataclasses
import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import scalerl.generate.shards
import scalerl.offline.loop
from scalerl import demo as demo_module
from scalerl.agents import AGENTS
from scalerl.demo import DemoConfig, _agent_config, run_demo, write_report
from scalerl.errors import ScalerlError


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(demo_module.demo)
    return app


@pytest.fixture
def captured_run(monkeypatch):
    """Replace the study itself: record what ``scalerl demo`` would run."""
    calls = []

    def fake_run_demo(config, out, progress=True):
        calls.append((config, out, progress))
        return os.path.join(out, "report.md")

    monkeypatch.setattr(demo_module, "run_demo", fake_run_demo)
    return calls


def test_no_flags_runs_the_embedded_default_study(captured_run):
    result = CliRunner().invoke(_cli(), [])
    assert result.exit_code == 0, result.output
    assert captured_run == [(DemoConfig(), "scalerl-demo", True)]
    assert DemoConfig().task == "pointmaze-medium" and DemoConfig().dataset_type == "navigate"
    assert DemoConfig().agents == ("fbc", "gciql", "sharsa")
    assert "report.md" in result.output


def test_flags_reach_the_study_and_a_task_name_may_carry_its_dataset_type(captured_run, tmp_path):
    args = ["--out", str(tmp_path), "--task", "pointmaze-large-stitch", "--hidden", "32", "--steps", "40"]
    args += ["--seeds", "3", "--transitions", "5000", "--eval-episodes", "1", "--no-progress"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    expected = DemoConfig(
        task="pointmaze-large",
        dataset_type="stitch",
        hidden=32,
        steps=40,
        seeds=3,
        transitions=5000,
        eval_episodes=1,
    )
    assert captured_run == [(expected, str(tmp_path), False)]


def test_a_task_without_a_dataset_type_gets_its_first_one(captured_run):
    result = CliRunner().invoke(_cli(), ["--task", "cube-single"])
    assert result.exit_code == 0, result.output
    ((config, _, _),) = captured_run
    assert (config.task, config.dataset_type) == ("cube-single", "play")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "0"], "--steps, --seeds, --transitions and --eval-episodes: expected positive integers"),
        (["--seeds", "-1"], "--steps, --seeds, --transitions and --eval-episodes: expected positive integers"),
        (["--transitions", "0"], "--steps, --seeds, --transitions and --eval-episodes: expected positive integers"),
        (["--eval-episodes", "0"], "--steps, --seeds, --transitions and --eval-episodes: expected positive integers"),
        (["--hidden", "0"], "--hidden: expected a positive integer, got 0"),
        (["--task", "maze-of-doom"], "unknown task 'maze-of-doom'"),
        (["--task", "pointmaze-medium-play"], "dataset type 'play' is not available for pointmaze-medium"),
    ],
)
def test_bad_flags_are_one_line_errors_before_anything_runs(captured_run, flags, message):
    result = CliRunner().invoke(_cli(), flags)
    assert isinstance(result.exception, ScalerlError)
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert captured_run == []


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_config_gets_the_demo_network_width_and_batch_size(name):
    config = _agent_config(name, DemoConfig(hidden=32, batch_size=64))
    widths = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name.endswith("hidden_dims")}
    assert widths and all(value == (32, 32) for value in widths.values()), widths
    assert config.batch_size == 64


def test_the_compared_agents_get_the_pointmaze_settings():
    demo = DemoConfig()
    fbc, gciql, sharsa = (_agent_config(name, demo) for name in ("fbc", "gciql", "sharsa"))
    assert fbc.discount == type(fbc)().discount  # flow BC keeps its own defaults
    assert (gciql.discount, gciql.actor_loss, gciql.alpha) == (0.99, "ddpgbc", 0.003)
    assert (sharsa.discount, sharsa.subgoal_steps, sharsa.num_samples) == (0.99, 25, 16)
    assert fbc.hidden_dims == gciql.hidden_dims == sharsa.hidden_dims == (128, 128)


def test_an_override_the_agent_does_not_have_is_dropped(monkeypatch):
    monkeypatch.setitem(demo_module.AGENT_OVERRIDES, "fbc", {"alpha": 0.5, "discount": 0.9})
    config = _agent_config("fbc", DemoConfig())
    assert config.discount == 0.9 and not hasattr(config, "alpha")


@pytest.fixture
def fake_stages(monkeypatch):
    """Fake data generation and training; training writes a tiny run directory like the real loop's."""
    calls = {"plan": [], "generate": [], "train": []}

    def plan_dataset(task, dataset_type, transitions, seed):
        calls["plan"].append((task, dataset_type, transitions, seed))
        return "plan"

    def generate_dataset(plan, data_dir, workers, progress_bar):
        calls["generate"].append((plan, data_dir, progress_bar))
        assert workers >= 1

    def train(config, agent_config, resume, progress):
        calls["train"].append((config, agent_config, resume))
        os.makedirs(config.out, exist_ok=True)
        with open(os.path.join(config.out, "config.json"), "w") as f:
            json.dump({"agent": config.agent}, f)
        with open(os.path.join(config.out, "metrics.jsonl"), "w") as f:
            for seed in range(config.seeds):
                f.write(json.dumps({"step": config.steps, "seed": seed, "train/actor/loss": 1.0}) + "\n")
        with open(os.path.join(config.out, "eval.jsonl"), "w") as f:
            for seed in range(config.seeds):
                f.write(json.dumps({"step": config.steps, "seed": seed, "success": 0.5, "success/task1": 0.5}) + "\n")
        return config.out

    monkeypatch.setattr(scalerl.generate.shards, "plan_dataset", plan_dataset)
    monkeypatch.setattr(scalerl.generate.shards, "generate_dataset", generate_dataset)
    monkeypatch.setattr(scalerl.offline.loop, "train", train)
    return calls


@pytest.fixture
def skip_report(monkeypatch):
    """No report (its figure is the slow part) where a test only looks at the stages."""
    monkeypatch.setattr(demo_module, "write_report", lambda demo, out, timings: os.path.join(out, "report.md"))


def test_run_demo_generates_once_then_trains_each_agent_into_its_run_directory(fake_stages, tmp_path):
    demo = DemoConfig(transitions=3000, steps=10_000, seeds=2, eval_episodes=1, hidden=16, seed=7)
    out = str(tmp_path / "demo")
    report = run_demo(demo, out, progress=False)
    assert report == os.path.join(out, "report.md") and os.path.isfile(report)
    assert fake_stages["plan"] == [("pointmaze-medium", "navigate", 3000, 7)]
    assert fake_stages["generate"] == [("plan", os.path.join(out, "data"), False)]
    assert [config.agent for config, _, _ in fake_stages["train"]] == ["fbc", "gciql", "sharsa"]
    for config, agent_config, resume in fake_stages["train"]:
        assert not resume
        assert config.env == "pointmaze-medium-navigate"
        assert config.data == os.path.join(out, "data")
        assert config.out == os.path.join(out, "runs", config.agent)
        assert (config.steps, config.seeds, config.seed, config.eval_episodes) == (10_000, 2, 7, 1)
        assert (config.log_interval, config.eval_interval, config.save_interval) == (1000, 2000, 2000)
        assert agent_config.hidden_dims == (16, 16)
    with open(os.path.join(out, "timings.json")) as f:
        assert set(json.load(f)) == {"generate", "fbc", "gciql", "sharsa"}


@pytest.mark.parametrize(
    "steps, log_interval, expected",
    [
        (10_000, 1000, (1000, 2000)),  # evaluate and save every quarter, on a log boundary
        (5000, 1000, (1000, 1000)),  # a quarter (1250) rounds down to the log interval
        (2000, 1000, (1000, 1000)),  # a quarter below one log interval: every log interval
        (300, 1000, (300, 300)),  # fewer steps than one log interval: one fused call
    ],
)
def test_log_and_evaluation_intervals_follow_the_step_count(
    fake_stages, skip_report, tmp_path, steps, log_interval, expected
):
    run_demo(DemoConfig(agents=("fbc",), steps=steps, log_interval=log_interval), str(tmp_path), progress=False)
    ((config, _, _),) = fake_stages["train"]
    assert (config.log_interval, config.eval_interval) == expected
    assert config.save_interval == config.eval_interval


def test_a_second_run_resumes_every_agent_that_has_a_run_directory(fake_stages, skip_report, tmp_path):
    demo = DemoConfig(steps=100, log_interval=50)
    out = str(tmp_path)
    os.makedirs(os.path.join(out, "runs", "fbc"))
    with open(os.path.join(out, "runs", "fbc", "config.json"), "w") as f:
        f.write("{}")  # fbc was started by an interrupted run
    run_demo(demo, out, progress=False)
    assert [(config.agent, resume) for config, _, resume in fake_stages["train"]] == [
        ("fbc", True),
        ("gciql", False),
        ("sharsa", False),
    ]
    fake_stages["train"].clear()
    run_demo(demo, out, progress=False)
    assert [resume for _, _, resume in fake_stages["train"]] == [True, True, True]
    assert len(fake_stages["generate"]) == 2  # generation is asked again; it resumes (or finds the data complete)


def _write_runs(out) -> DemoConfig:
    """Two agents, 2 seeds, evaluated at 500 and 1000 updates on two tasks."""
    evals = {
        "fbc": [(500, 0, 0.2, 0.0, 0.4), (500, 1, 0.4, 0.2, 0.6), (1000, 0, 0.4, 0.2, 0.6), (1000, 1, 0.6, 0.4, 0.8)],
        "sharsa": [
            (500, 0, 0.5, 0.5, 0.5),
            (500, 1, 0.5, 0.0, 1.0),
            (1000, 0, 1.0, 1.0, 1.0),
            (1000, 1, 0.5, 0.0, 1.0),
        ],
    }
    loss_key = {"fbc": "train/actor/loss", "sharsa": "train/low_actor/loss"}
    for name, rows in evals.items():
        run_dir = out / "runs" / name
        run_dir.mkdir(parents=True)
        metrics = [{"step": step, "seed": seed, loss_key[name]: -2.0 * (seed + 1) / step} for step in (500, 1000)
                   for seed in (0, 1)]  # fmt: skip
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
        lines = [
            json.dumps({"step": step, "seed": seed, "success": s, "success/task1": t1, "success/task2": t2}) + "\n"
            for step, seed, s, t1, t2 in rows
        ]
        (run_dir / "eval.jsonl").write_text("".join(lines))
    return DemoConfig(agents=("fbc", "sharsa"), steps=1000, seeds=2, transitions=20_000, eval_episodes=3, hidden=64)


def test_report_tabulates_final_success_per_agent_and_task(tmp_path):
    demo = _write_runs(tmp_path)
    report = write_report(demo, str(tmp_path), {"generate": 3.2, "fbc": 12.4, "sharsa": 30.6})
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert report == str(tmp_path / "report.md")
    assert lines[0] == "# scalerl demo report"
    assert "`pointmaze-medium` (`navigate` data, 20,000 transitions" in lines[2]
    assert "1,000 updates, batch 256, 2x64 MLPs, 2 seeds; evaluation: OGBench's 5 tasks x 3 episodes" in lines[2]
    table = lines[lines.index("| agent | success (mean +- std over seeds) | task1 | task2 | wall time |") :]
    # Final step only; mean and population std over seeds: fbc [0.4, 0.6], sharsa [1.0, 0.5].
    assert table[1:4] == [
        "|---|---|---|---|---|",
        "| fbc | 0.500 +- 0.100 | 0.30 | 0.70 | 12 s |",
        "| sharsa | 0.750 +- 0.250 | 0.50 | 1.00 | 31 s |",
    ]
    assert "Data generation: 3 s." in lines
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "timings.json") as f:
        assert json.load(f) == {"generate": 3.2, "fbc": 12.4, "sharsa": 30.6}


def test_report_figure_shows_relative_losses_success_curves_and_final_bars(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(demo_module, "save_figure", lambda figure, path, dpi: figures.append(figure) or path)
    write_report(_write_runs(tmp_path), str(tmp_path), {})
    (figure,) = figures
    ax_loss, ax_eval, ax_bar = figure.axes
    # Each agent's seed-mean actor loss divided by the magnitude of its first logged value.
    assert [line.get_label() for line in ax_loss.get_lines()] == ["fbc actor/loss", "sharsa low_actor/loss"]
    for line in ax_loss.get_lines():
        np.testing.assert_allclose(line.get_ydata(), [-1.0, -0.5])
    np.testing.assert_allclose(ax_eval.get_lines()[0].get_ydata(), [0.3, 0.5])  # fbc, mean over seeds per step
    np.testing.assert_allclose([bar.get_height() for bar in ax_bar.patches], [0.5, 0.75])
    assert ax_bar.get_title() == "final success, pointmaze-medium-navigate"
    plt.close(figure)
