"""Paper presets: every preset builds a valid config, the papers' settings, precedence (defaults, preset, flags) and
one-line errors, also through the ``scalerl train`` and ``scalerl presets`` commands."""

import dataclasses
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest
from typer.testing import CliRunner

from scalerl.agents import AGENTS
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig
from scalerl.offline.presets import PRESETS, format_table, preset_names, preset_values
from scalerl.overrides import build_config, parse_overrides


def test_every_preset_builds_a_valid_config_for_its_registered_agent():
    built = 0
    for (preset, agent), values in PRESETS.items():
        if agent in AGENTS:
            config = build_config(AGENTS[agent][1], preset_values(preset, agent, AGENTS[agent][1]))
            assert all(getattr(config, field) == value for field, value in values.items() if field != "low_discount")
            built += 1
    assert built >= 150
    assert {"cube-octuple", "puzzle-4x5", "puzzle-4x6", "humanoidmaze-giant"} <= set(preset_names())
    assert {"pointmaze-medium-navigate", "cube-single-play", "puzzle-3x3-play"} <= set(preset_names())


def test_paper_settings_in_the_presets():
    assert PRESETS[("puzzle-4x5", "hiql")]["subgoal_steps"] == 25
    assert PRESETS[("cube-octuple", "dsharsa")]["subgoal_steps"] == 50
    assert PRESETS[("humanoidmaze-giant", "nsacbc")] == {
        "q_agg": "mean", "alpha": 0.03, "nstep": 50,
        "actor_p_trajgoal": 1.0, "actor_p_randomgoal": 0.0, "actor_geom_sample": False,
    }  # fmt: skip
    assert PRESETS[("cube-octuple", "gciql")]["alpha"] == 10.0
    assert PRESETS[("humanoidmaze-giant", "sharsa")]["q_agg"] == "mean"
    assert PRESETS[("cube-octuple", "sharsa")]["q_agg"] == "min"
    for agent in ("crl", "gciql", "hiql"):  # OGBench's actors have no layer norm; its values and phi have
        assert PRESETS[("puzzle-4x4-play", agent)]["actor_layer_norm"] is False
        assert PRESETS[("puzzle-4x4-play", agent)].get("layer_norm", True) is True
    assert all(PRESETS[("puzzle-4x5", agent)].get("actor_layer_norm", True) for agent in ("gciql", "hiql", "crl"))
    # No preset sets the goal representation: `scalerl train` takes it from the environment name.
    assert not any("goal_rep" in values for values in PRESETS.values())
    ogbench_hiql = PRESETS[("puzzle-4x4-play", "hiql")]
    assert (ogbench_hiql["subgoal_steps"], ogbench_hiql["discount"], ogbench_hiql["rep_dim"]) == (10, 0.99, 10)
    assert PRESETS[("pointmaze-giant-stitch", "gciql")]["discount"] == 0.995
    assert PRESETS[("pointmaze-giant-stitch", "gciql")]["actor_p_randomgoal"] == 0.5


def test_preset_precedence_defaults_then_preset_then_flags():
    _, config_cls = AGENTS["hiql"]
    flags = parse_overrides(config_cls, ["--agent.high-alpha", "7", "--agent.hidden-dims", "8", "8"])
    config = build_config(config_cls, {**preset_values("cube-octuple", "hiql", config_cls), **flags})
    assert config.high_alpha == 7.0  # the flag beats the preset's 10
    assert config.low_alpha == 10.0 and config.expectile == 0.5  # the preset beats the defaults (3, 0.7)
    assert config.tau == config_cls().tau  # untouched fields keep the defaults


def test_preset_errors_are_one_line():
    for call, message in (
        (lambda: preset_values("nope", "hiql"), "unknown preset 'nope'"),
        (lambda: preset_values("puzzle-4x5", "gcbc"), "not defined for agent 'gcbc'"),
        (lambda: format_table(agent="nope"), "no preset is defined for agent 'nope'"),
    ):
        with pytest.raises(ScalerlError, match=message) as error:
            call()
        assert "\n" not in str(error.value)

    @dataclasses.dataclass(frozen=True)
    class Narrow:
        alpha: float = 1.0

    with pytest.raises(ScalerlError, match="does not have"):
        preset_values("puzzle-4x5", "gciql", Narrow)


def test_train_command_applies_the_preset_and_opex(monkeypatch, tmp_path):
    from scalerl.cli import app

    captured = {}

    def fake_train(config, agent_config, resume=False, progress=True, opex=None):
        captured.update(config=config, agent_config=agent_config, opex=opex)
        return str(tmp_path)

    monkeypatch.setattr("scalerl.offline.loop.train", fake_train)
    args = ["train", "--agent", "gciql", "--env", "pointmaze-medium-navigate", "--data", "D", "--out", str(tmp_path)]
    result = CliRunner().invoke(
        app, [*args, "--preset", "puzzle-4x5", "--agent.actor-loss", "awr", "--opex-steps", "2", "--opex-lr", "0.3"]
    )
    assert result.exit_code == 0, result.output
    config = captured["agent_config"]
    assert (config.alpha, config.actor_p_randomgoal, config.actor_loss) == (1.0, 0.5, "awr")
    assert captured["opex"] == OpexConfig(steps=2, lr=0.3)
    failed = CliRunner().invoke(app, [*args, "--preset", "puzzle-4x5x"])
    assert isinstance(failed.exception, ScalerlError) and "unknown preset" in str(failed.exception)
    listing = CliRunner().invoke(app, ["presets", "--preset", "humanoidmaze-giant", "--agent", "nsacbc"])
    assert listing.exit_code == 0 and "--agent.q-agg mean --agent.alpha 0.03 --agent.nstep 50" in listing.output
