"""``scalerl train``'s command line: one flag per TrainConfig field, --agent.FIELD overrides, one-line errors."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest
from typer.testing import CliRunner

from scalerl.cli import app, main
from scalerl.offline.command import train_command
from scalerl.offline.loop import TrainConfig

REQUIRED = ["--agent", "gciql", "--env", "pointmaze-medium-navigate", "--data", "data/", "--out"]

# The flags `scalerl train` had before its options were made from TrainConfig; each must keep working.
FLAGS_BEFORE = (
    "--agent --env --data --out --steps --seeds --seed --log-interval --eval-interval --eval-episodes --save-interval "
    "--validate --no-validate --tensorboard --wandb-project --preset --opex-steps --opex-lr --opex-raw --resume "
    "--progress --no-progress"
).split()


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The configs ``scalerl train`` hands to the training loop (which is not run)."""
    calls = {}

    def fake_train(config, agent_config, resume=False, progress=True, opex=None):
        calls.update(config=config, agent_config=agent_config, resume=resume, progress=progress)
        return str(tmp_path)

    monkeypatch.setattr("scalerl.offline.loop.train", fake_train)
    return calls


def test_every_flag_reaches_train_config(captured, tmp_path):
    out = str(tmp_path / "run")
    flags = [
        "--steps", "40", "--seeds", "2", "--seed", "3", "--log-interval", "10", "--eval-interval", "20",
        "--eval-episodes", "0", "--save-interval", "20", "--keep-checkpoints", "5", "--no-validate", "--tensorboard",
        "--wandb-project", "proj", "--resume", "--no-progress", "--agent.batch-size", "64",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["train", *REQUIRED, out + "/", *flags])
    assert result.exit_code == 0, result.output
    # --data and --out are written as pathlib writes them, as they were when they were Path options.
    assert captured["config"] == TrainConfig(
        agent="gciql", env="pointmaze-medium-navigate", data="data", out=out, steps=40, seeds=2, seed=3,
        log_interval=10, eval_interval=20, eval_episodes=0, save_interval=20, keep_checkpoints=5, validate=False,
        tensorboard=True, wandb_project="proj",
    )  # fmt: skip
    assert captured["agent_config"].batch_size == 64
    assert (captured["resume"], captured["progress"]) == (True, False)


def test_defaults_are_the_config_defaults(captured, tmp_path):
    result = CliRunner().invoke(app, ["train", *REQUIRED, str(tmp_path)])
    assert result.exit_code == 0, result.output
    defaults = TrainConfig(agent="gciql", env="pointmaze-medium-navigate", data="data", out=str(tmp_path))
    assert captured["config"] == defaults
    assert (captured["resume"], captured["progress"]) == (False, True)


def test_every_train_config_field_has_a_flag_with_help():
    options = inspect.signature(train_command()).parameters
    for field in dataclasses.fields(TrainConfig):
        assert options[field.name].default.help, f"--{field.name.replace('_', '-')} has no help"
    help_text = " ".join(CliRunner().invoke(app, ["train", "--help"]).output.split())
    fields = [f"--{field.name.replace('_', '-')}" for field in dataclasses.fields(TrainConfig)]
    for flag in FLAGS_BEFORE + fields + ["--agent.actor-loss"]:
        assert flag in help_text, flag


@pytest.mark.parametrize("flag", ["--agent", "--env", "--data", "--out"])
def test_required_flags_stay_required(flag, captured, tmp_path):
    args = [*REQUIRED, str(tmp_path)]
    position = args.index(flag)
    result = CliRunner().invoke(app, ["train", *args[:position], *args[position + 2 :]])
    assert result.exit_code == 2 and flag in result.output and not captured


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--agent.nope", "1"], "--agent.nope: not a field of GCIQLConfig"),
        (["--agent.batch-size", "big"], "--agent.batch-size: expected int"),
        (["--stepz", "3"], "--stepz: unknown option"),
        (["--steps", "0"], "--steps: expected a positive integer"),
    ],
)
def test_bad_flags_give_one_line_errors(flags, expected, tmp_path, monkeypatch, capsys, captured):
    monkeypatch.setattr(sys, "argv", ["scalerl", "train", *REQUIRED, str(tmp_path), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {expected}") and "\n" not in error
    assert not captured
