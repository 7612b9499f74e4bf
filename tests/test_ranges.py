"""Range checks of every numeric config field: the agents of the registry, online SAC and its loop, the offline loop
and the goal sampler. Impossible settings are refused when the config is built, in one line naming the flag."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import typing

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

from scalerl.agents import AGENTS
from scalerl.cli import main
from scalerl.errors import ScalerlError
from scalerl.offline.loop import TrainConfig
from scalerl.online.loop import OnlineConfig
from scalerl.online.sac import SACConfig
from scalerl.overrides import build_config
from scalerl.sampling import GoalSamplerConfig


def _agent_flag(name: str) -> str:
    return "--agent." + name.replace("_", "-")


# The named flags `scalerl online` has always had for SAC fields.
_SAC_NAMED_FLAGS = {
    "batch_size": "--batch-size",
    "lr": "--lr",
    "critic_type": "--critic",
    "critic_width": "--critic-width",
    "critic_depth": "--critic-depth",
    "discount": "--discount",
    "tau": "--tau",
}


def _sac_flag(name: str) -> str:
    """The flag `scalerl online` names a SAC field by: its named flag (--batch-size, --critic) or --agent.FIELD."""
    return _SAC_NAMED_FLAGS.get(name, _agent_flag(name))


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_TRAIN_REQUIRED = dict(agent="gciql", env="pointmaze-medium-navigate", data="data", out="runs/x")

# label -> (config class, required arguments, how its errors spell a field)
CONFIGS = {
    **{name: (config_cls, {}, _agent_flag) for name, (_, config_cls) in AGENTS.items()},
    "sac": (SACConfig, {}, _sac_flag),
    "online": (OnlineConfig, {}, _option_flag),
    "train": (TrainConfig, _TRAIN_REQUIRED, _option_flag),
    "sampler": (GoalSamplerConfig, {}, lambda name: name),
}


def _numeric_fields(config_cls) -> dict[str, tuple[type, bool]]:
    """``{field: (int or float, is a tuple)}`` for every int, float and tuple-of-numbers field."""
    hints = typing.get_type_hints(config_cls)
    fields = {}
    for field in dataclasses.fields(config_cls):
        hint = hints[field.name]
        if hint in (int, float):
            fields[field.name] = (hint, False)
        elif typing.get_origin(hint) is tuple:
            (entry,) = {arg for arg in typing.get_args(hint) if arg is not Ellipsis}
            assert entry in (int, float), f"{config_cls.__name__}.{field.name}: {hint}"
            fields[field.name] = (entry, True)
    return fields


def _out_of_range_values(allowed, kind: type) -> list:
    """Values just outside a declared range, plus non-finite ones and a float for an int field."""
    step = 1 if kind is int else 1e-3
    values = [math.nan, math.inf, -math.inf]
    if kind is int:
        values.append(2.5)
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - step)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + step)
    return [kind(value) if kind is int and float(value).is_integer() else value for value in values]


def _build(label: str, **values):
    config_cls, required, _ = CONFIGS[label]
    return config_cls(**required, **values)


FIELD_CASES = [(label, name) for label, (config_cls, _, _) in CONFIGS.items() for name in _numeric_fields(config_cls)]


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_every_default_config_is_accepted(label):
    config = _build(label)
    assert dataclasses.asdict(config)


@pytest.mark.parametrize("label, name", FIELD_CASES, ids=[f"{label}-{name}" for label, name in FIELD_CASES])
def test_every_numeric_field_refuses_out_of_range_values(label, name):
    """Every numeric field has a declared range; values outside it raise one line naming the field's flag."""
    from scalerl.ranges import declared_ranges

    config_cls, _, flag = CONFIGS[label]
    ranges, _ = declared_ranges(config_cls)
    assert name in ranges, f"{config_cls.__name__}.{name}: no declared range (add it to the class's RANGES)"
    kind, is_tuple = _numeric_fields(config_cls)[name]
    default = getattr(_build(label), name)
    for bad in _out_of_range_values(ranges[name], kind):
        value = (bad, *default[1:]) if is_tuple else bad
        with pytest.raises(ScalerlError) as error:
            _build(label, **{name: value})
        message = str(error.value)
        assert message.startswith(f"{flag(name)}: expected ") and "\n" not in message, (value, message)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_impossible_agent_settings_are_refused(name):
    """The settings of the issue and their kin, for every agent: each names its --agent flag."""
    _, config_cls = AGENTS[name]
    fields = {field.name for field in dataclasses.fields(config_cls)}
    cases = {
        "batch_size": [0, -8],
        "lr": [-1.0, 0.0],
        "hidden_dims": [(256, 0)],
        "discount": [0.0, 1.0, 1.5],  # geometric goal offsets need 0 < discount < 1
        "actor_p_trajgoal": [-0.5],
        "tau": [0.0, 1.5],
        "expectile": [0.0, 1.0],
        "alpha": [-0.1],
        "temperature": [-1.0],
        "flow_steps": [0],
        "num_samples": [0],
        "num_qs": [0],
        "subgoal_steps": [0],
        "nstep": [0],
        "low_discount": [-0.1, 1.0],
        "latent_dim": [0],
        "component_dim": [0],
        "rep_dim": [0],
        "high_alpha": [-1.0],
        "low_alpha": [-1.0],
        "eps": [-0.01],
        "entropy_coef": [0.0],
    }
    for field, values in cases.items():
        if field not in fields:
            continue
        for value in values:
            with pytest.raises(ScalerlError) as error:
                config_cls(**{field: value})
            message = str(error.value)
            assert message.startswith(f"--agent.{field.replace('_', '-')}: expected "), message
            assert "\n" not in message and f"got {value}" in message, message


def test_errors_read_as_the_issue_asks():
    _, sharsa = AGENTS["sharsa"]
    with pytest.raises(ScalerlError, match=r"^--agent\.batch-size: expected an integer >= 1, got 0$"):
        sharsa(batch_size=0)
    with pytest.raises(ScalerlError, match=r"^--agent\.lr: expected a number > 0, got -1$"):
        sharsa(lr=-1)
    with pytest.raises(ScalerlError, match=r"^--agent\.hidden-dims: expected integers >= 1, got \(256, 0\)$"):
        sharsa(hidden_dims=(256, 0))
    with pytest.raises(ScalerlError, match=r"^--agent\.discount: expected a number in \(0, 1\), got 1.0$"):
        sharsa(discount=1.0)
    with pytest.raises(ScalerlError, match=r"^--agent\.value-p-curgoal, --agent\.value-p-trajgoal and --agent\."):
        sharsa(value_p_curgoal=0.5)  # 0.5 + 0.5 + 0.3
    # scalerl online and scalerl train keep their wording.
    with pytest.raises(ScalerlError, match=r"^--critic-width: expected >= 1, got 0$"):
        SACConfig(critic_width=0)
    with pytest.raises(ScalerlError, match=r"^--agent\.num-qs: expected >= 1, got 0$"):
        SACConfig(num_qs=0)
    with pytest.raises(ScalerlError, match=r"^--utd: expected > 0, got 0$"):
        OnlineConfig(utd=0)
    with pytest.raises(ScalerlError, match=r"^--steps: expected a positive integer, got 0$"):
        TrainConfig(**_TRAIN_REQUIRED, steps=0)


def test_zero_where_the_math_allows_it_is_accepted():
    """Coefficients that may be 0 accept 0; closed bounds accept their end point."""
    for _, config_cls in AGENTS.values():
        fields = {field.name for field in dataclasses.fields(config_cls)}
        allowed = {
            "alpha": 0.0,
            "temperature": 0.0,
            "high_alpha": 0.0,
            "low_alpha": 0.0,
            "eps": 0.0,
            "tau": 1.0,
            "discount": 0.9999,
            "actor_p_curgoal": 1.0,
            "actor_p_trajgoal": 0.0,
            "actor_p_randomgoal": 0.0,
            "target_entropy_multiplier": -0.5,
            "batch_size": 1,
            "hidden_dims": (1,),
        }
        config_cls(**{field: value for field, value in allowed.items() if field in fields})
    SACConfig(discount=1.0, tau=1.0)  # episodes end, so an undiscounted return is finite
    OnlineConfig(start_steps=0, eval_episodes=0, validation_steps=0, utd=0.25)
    TrainConfig(**_TRAIN_REQUIRED, eval_interval=0, eval_episodes=0, seed=0)
    GoalSamplerConfig(subgoal_steps=0, low_discount=0.0)


def test_build_config_names_the_flag_of_other_field_errors():
    _, sharsa = AGENTS["sharsa"]
    with pytest.raises(ScalerlError, match=r"^--agent\.q-agg: expected 'min' or 'mean', got 'max'$"):
        build_config(sharsa, {"q_agg": "max"})
    _, dsharsa = AGENTS["dsharsa"]
    with pytest.raises(ScalerlError, match=r"^--agent\.subgoal-steps: expected >= 2 while low_discount is 0"):
        build_config(dsharsa, {"subgoal_steps": 1})  # 1 - 1/1 = 0 would leave the low level without goals
    assert build_config(dsharsa, {"subgoal_steps": 1, "low_discount": 0.5}).low_discount == 0.5


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--agent.batch-size", "0"], "--agent.batch-size: expected an integer >= 1, got 0"),
        (["--agent.lr", "-1"], "--agent.lr: expected a number > 0, got -1.0"),
    ],
)
def test_train_refuses_impossible_agent_settings_before_any_work(flags, expected, tmp_path, monkeypatch, capsys):
    from scalerl.offline import loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: calls.append(args) or str(tmp_path))
    out = tmp_path / "run"
    argv = ["scalerl", "train", "--agent", "sharsa", "--env", "puzzle-3x3-play", "--data", str(tmp_path / "data")]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not calls and not out.exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--agent.num-qs", "0"], "--agent.num-qs: expected >= 1, got 0"),
        (["--agent.actor-hidden-dims", "64", "0"], "--agent.actor-hidden-dims: expected integers >= 1, got (64, 0)"),
        (["--batch-size", "0"], "--batch-size: expected >= 1, got 0"),
        (["--lr", "-1"], "--lr: expected > 0, got -1.0"),
        (["--seed", "-1"], "--seed: expected >= 0, got -1"),
    ],
)
def test_online_refuses_impossible_settings_before_any_work(flags, expected, tmp_path, monkeypatch, capsys):
    from scalerl.online import loop

    calls = []
    monkeypatch.setattr(loop, "run_online", lambda *args, **kwargs: calls.append(args) or str(tmp_path))
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["scalerl", "online", "--out", str(out), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not calls and not out.exists()
