"""Goals follow the environment name: ``-oraclerep`` environments train on oracle goals without extra flags, an
explicit ``--agent.goal-rep`` wins, and an agent whose goals evaluation cannot feed is refused before any update.

The end-to-end test runs the README's ``scalerl train --agent sharsa --env puzzle-3x3-play-oraclerep ...`` on a tiny
generated puzzle dataset, evaluation included.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest
from typer.testing import CliRunner

from scalerl.cli import app
from scalerl.data import compact
from scalerl.errors import ScalerlError

ENV = "puzzle-3x3-play-oraclerep"
TINY_FLAGS = [
    "--steps", "20", "--seeds", "1", "--log-interval", "10", "--save-interval", "20", "--eval-episodes", "1",
    "--no-validate", "--no-progress", "--agent.hidden-dims", "16", "16", "--agent.batch-size", "32",
    "--agent.num-samples", "4", "--agent.flow-steps", "2",
]  # fmt: skip


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The agent config ``scalerl train`` hands to the training loop (which is not run)."""
    calls = {}

    def fake_train(config, agent_config, resume=False, progress=True, opex=None):
        calls.update(config=config, agent_config=agent_config)
        return str(tmp_path)

    monkeypatch.setattr("scalerl.offline.loop.train", fake_train)
    return calls


@pytest.mark.parametrize(
    "env, flags, expected",
    [
        (ENV, [], "oracle"),
        ("puzzle-4x5-play-oraclerep-v0", ["--preset", "puzzle-4x5"], "oracle"),  # Park et al. 2025's setting
        ("humanoidmaze-giant-navigate-oraclerep", ["--agent", "dsharsa", "--preset", "humanoidmaze-giant"], "oracle"),
        ("puzzle-3x3-play", [], "observation"),
        (ENV, ["--agent.goal-rep", "observation"], "observation"),  # an explicit flag wins
        ("puzzle-3x3-play", ["--agent.goal-rep", "oracle"], "oracle"),
    ],
)
def test_goal_rep_follows_the_environment_name_unless_set(captured, tmp_path, env, flags, expected):
    agent = ["--agent", "sharsa"] if "--agent" not in flags else []
    args = ["train", *agent, "--env", env, "--data", "D", "--out", str(tmp_path / "run"), *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert captured["agent_config"].goal_rep == expected


def test_goal_dim_check_names_the_flag_in_one_line():
    from scalerl.offline.loop import check_goal_dim

    rng = np.random.default_rng(0)
    terminals = np.zeros(10, np.float32)
    terminals[-1] = 1.0
    arrays = {
        "observations": rng.normal(size=(10, 5)).astype(np.float32),
        "actions": np.zeros((10, 2), np.float32),
        "terminals": terminals,
    }
    with_reps = compact(arrays, goal_reps=rng.normal(size=(10, 3)).astype(np.float32))
    check_goal_dim(with_reps, "oracle", ENV)
    check_goal_dim(compact(arrays), "observation", "puzzle-3x3-play")
    for dataset, goal_rep, env, message in (
        (with_reps, "observation", ENV, "5 dimensions but puzzle-3x3-play-oraclerep's evaluation goals are oracle"),
        (compact(arrays), "oracle", "puzzle-3x3-play", "needs an '-oraclerep' environment name"),
    ):
        with pytest.raises(ScalerlError, match=message) as error:
            check_goal_dim(dataset, goal_rep, env)
        assert str(error.value).startswith("--agent.goal-rep") and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def puzzle_data(tmp_path_factory):
    """A tiny generated puzzle-3x3 play dataset: 5 episodes of 100 steps (+ 1 validation episode)."""
    out = tmp_path_factory.mktemp("puzzle") / "data"
    args = ["generate", "--env", "puzzle-3x3", "--type", "play", "--shards", "1", "--episodes-per-shard", "5"]
    args += ["--episode-length", "100", "--workers", "1", "--no-progress", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.mark.integration
def test_readme_train_command_on_an_oraclerep_env_trains_and_evaluates(puzzle_data, tmp_path):
    """``scalerl train --agent sharsa --env puzzle-3x3-play-oraclerep --data D --steps N --seeds S --out RUN``."""
    run = tmp_path / "run"
    args = ["train", "--agent", "sharsa", "--env", ENV, "--data", puzzle_data, "--out", str(run), *TINY_FLAGS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert json.loads((run / "config.json").read_text())["agent"]["goal_rep"] == "oracle"
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [20]
    assert 0.0 <= rows[0]["success"] <= 1.0 and sum(key.startswith("success/") for key in rows[0]) == 5


@pytest.mark.integration
def test_state_goals_on_an_oraclerep_env_are_refused_before_any_update(puzzle_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--agent", "sharsa", "--env", ENV, "--data", puzzle_data, "--out", str(run), *TINY_FLAGS]
    result = CliRunner().invoke(app, [*args, "--agent.goal-rep", "observation"])
    assert isinstance(result.exception, ScalerlError), result.output
    message = str(result.exception)
    assert message.startswith("--agent.goal-rep observation:") and "oracle representations of 9" in message
    assert "\n" not in message and not run.exists()
