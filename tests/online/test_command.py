"""``scalerl online``'s command line: flags from OnlineConfig and SACConfig, --agent.FIELD overrides, errors."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest
from typer.testing import CliRunner

from scalerl.cli import app, main
from scalerl.online.command import online_command
from scalerl.online.loop import OnlineConfig
from scalerl.online.sac import SACConfig

# The flags `scalerl online` had before its options were made from the configs; each must keep working.
FLAGS_BEFORE = (
    "--env --utd --steps --seeds --batch-size --lr --critic --critic-width --critic-depth --discount --tau "
    "--start-steps --buffer-size --eval-every --eval-episodes --validation-steps --log-every --out --resume --seed "
    "--progress --no-progress"
).split()


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The configs ``scalerl online`` hands to the online loop (which is not run)."""
    calls = {}

    def fake_run_online(config, agent_config, resume=False, progress=True):
        calls.update(config=config, agent_config=agent_config, resume=resume, progress=progress)
        return str(tmp_path)

    monkeypatch.setattr("scalerl.online.loop.run_online", fake_run_online)
    return calls


def test_every_named_flag_reaches_the_configs(captured, tmp_path):
    out = str(tmp_path / "run")
    flags = [
        "--env", "Hopper-v5", "--utd", "0.5", "--steps", "300", "--seeds", "2", "--batch-size", "32", "--lr", "0.001",
        "--critic", "bro", "--critic-width", "64", "--critic-depth", "3", "--discount", "0.9", "--tau", "0.01",
        "--start-steps", "10", "--buffer-size", "100", "--eval-every", "50", "--eval-episodes", "1",
        "--validation-steps", "0", "--log-every", "25", "--max-episode-steps", "40", "--out", out, "--resume",
        "--seed", "4", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["online", *flags])
    assert result.exit_code == 0, result.output
    assert captured["config"] == OnlineConfig(
        env="Hopper-v5", steps=300, utd=0.5, seeds=2, seed=4, start_steps=10, buffer_size=100, eval_every=50,
        eval_episodes=1, validation_steps=0, log_every=25, max_episode_steps=40, out=out,
    )  # fmt: skip
    assert captured["agent_config"] == SACConfig(
        lr=0.001, batch_size=32, critic_type="bro", critic_width=64, critic_depth=3, discount=0.9, tau=0.01
    )
    assert (captured["resume"], captured["progress"]) == (True, False)


def test_defaults_are_the_config_defaults(captured):
    result = CliRunner().invoke(app, ["online"])
    assert result.exit_code == 0, result.output
    assert captured["config"] == OnlineConfig() and captured["agent_config"] == SACConfig()


def test_agent_flags_set_any_sac_field(captured):
    flags = ["--agent.critic-width", "64", "--agent.actor-hidden-dims", "32", "16", "--agent.num-qs", "3"]
    # Weight decay and resets (issue 14) are --agent.FIELD flags, as every SAC field without a named flag.
    flags += ["--agent.critic-weight-decay", "1e-4", "--agent.reset-every", "5000", "--agent.reset-networks", "critic"]
    result = CliRunner().invoke(app, ["online", *flags, "--agent.critic-type", "bro", "--critic-depth", "4"])
    assert result.exit_code == 0, result.output
    assert captured["agent_config"] == SACConfig(
        critic_width=64, actor_hidden_dims=(32, 16), num_qs=3, critic_type="bro", critic_depth=4,
        critic_weight_decay=1e-4, reset_every=5000, reset_networks="critic",
    )  # fmt: skip


def test_every_field_has_a_flag_with_help():
    options = inspect.signature(online_command()).parameters
    for field in dataclasses.fields(OnlineConfig):
        assert options[field.name].default.help, f"--{field.name.replace('_', '-')} has no help"
    help_text = " ".join(CliRunner().invoke(app, ["online", "--help"]).output.split())
    fields = [f"--{field.name.replace('_', '-')}" for field in dataclasses.fields(OnlineConfig)]
    agent_fields = [f"--agent.{field.name.replace('_', '-')} " for field in dataclasses.fields(SACConfig)]
    for flag in FLAGS_BEFORE + fields + agent_fields:
        assert flag in help_text, flag
    assert "is an error" in help_text  # says what giving a named flag and its --agent.FIELD does


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--agent.x", "1"], "--agent.x: not a field of SACConfig"),
        (["--agent.critic-width", "wide"], "--agent.critic-width: expected int"),
        (["--agent.critic-width", "0"], "--critic-width: expected >= 1"),
        (["--critic-width", "32", "--agent.critic-width", "64"], "--agent.critic-width and --critic-width both set"),
        (["--critic", "mlp", "--agent.critic-type", "bro"], "--agent.critic-type and --critic both set"),
        (["--utdd", "2"], "--utdd: unknown option"),
        (["--agent.reset-networks", "all"], "--agent.reset-networks: expected one of 'critic', 'actor', 'both'"),
        (["--agent.reset-every", "-5"], "--agent.reset-every: expected >= 0"),
        (["--utd", "0"], "--utd"),
    ],
)
def test_bad_flags_give_one_line_errors(flags, expected, tmp_path, monkeypatch, capsys, captured):
    monkeypatch.setattr(sys, "argv", ["scalerl", "online", "--out", str(tmp_path / "run"), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {expected}") and "\n" not in error
    assert not captured
