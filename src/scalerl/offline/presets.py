"""Named hyper-parameter presets: the papers' per-task agent settings, as one table.

``scalerl train --preset NAME --agent AGENT`` starts from the agent's defaults, applies ``PRESETS[(NAME, AGENT)]``
and then any explicit ``--agent.FIELD VALUE`` (defaults < preset < command line). ``scalerl presets`` prints the
table. Two sources:

* **Park et al. 2025**, "Horizon Reduction Makes RL Scalable": the exact flags of the ``horizon-reduction``
  README for its four tasks (``cube-octuple``, ``puzzle-4x5``, ``puzzle-4x6``, ``humanoidmaze-giant``; oraclerep
  goals, 1B datasets), relative to that code's defaults, which are scalerl's defaults for these agents. n-step
  SAC+BC's ``subgoal_steps`` flag is scalerl's ``nstep``; HIQL's ``actor_subgoal_steps`` is ``subgoal_steps``.
  No preset sets ``goal_rep``: ``scalerl train`` takes it from the environment name, so on the paper's
  ``-oraclerep`` environments these presets train on oracle goals, as that code does.
* **OGBench** (Park et al. 2024), ``impls/hyperparameters.sh``: one preset per standard state-based dataset of the
  pointmaze, cube, puzzle and scene families (named like the dataset without ``-v0``). OGBench's flags are relative
  to OGBench's agent defaults (512x3 MLPs, actors without layer norm, discount 0.99, actor goals from the same
  trajectory drawn uniformly, ...), which are not scalerl's (Park et al. 2025's), so each of these presets holds
  those defaults as well.

Fields are written with the agents' config names; a test checks every entry against the registry.
"""

from __future__ import annotations

import dataclasses

import typer

from scalerl.errors import ScalerlError

# --- Park et al. 2025 (horizon-reduction README, "Reproducing the main results") ---------------------------------

_TRAJ_GOALS = {"actor_p_trajgoal": 1.0, "actor_p_randomgoal": 0.0, "actor_geom_sample": True}  # cube-octuple
_MIXED_GOALS = {"actor_p_trajgoal": 0.5, "actor_p_randomgoal": 0.5, "actor_geom_sample": True}  # puzzles
_UNIFORM_GOALS = {"actor_p_trajgoal": 1.0, "actor_p_randomgoal": 0.0, "actor_geom_sample": False}  # humanoidmaze


def _park2025(
    goals: dict,
    subgoal_steps: int,
    agg: str,
    iql: float,
    crl: float,
    sacbc: float,
    fql: float,
    nsacbc: float,
    hiql: dict,
) -> dict:
    """One task's row of Park et al. 2025: agent -> flags."""
    return {
        "fbc": {},
        "gciql": {"alpha": iql, **goals},
        "crl": {"alpha": crl, **goals},
        "sacbc": {"q_agg": agg, "alpha": sacbc, **goals},
        "fql": {"q_agg": agg, "alpha": fql, **goals},
        "nsacbc": {"q_agg": agg, "alpha": nsacbc, "nstep": subgoal_steps, **goals},
        "hfbc": {"subgoal_steps": subgoal_steps},
        "hiql": {**hiql, "subgoal_steps": subgoal_steps, **goals},
        "sharsa": {"q_agg": agg, "subgoal_steps": subgoal_steps, **goals},
        "dsharsa": {"q_agg": agg, "subgoal_steps": subgoal_steps, **goals},
    }


PARK2025 = {
    "cube-octuple": _park2025(
        _TRAJ_GOALS, 50, "min", iql=10.0, crl=3.0, sacbc=10.0, fql=3.0, nsacbc=0.1,
        hiql={"expectile": 0.5, "low_alpha": 10.0, "high_alpha": 10.0},
    ),
    "puzzle-4x5": _park2025(
        _MIXED_GOALS, 25, "min", iql=1.0, crl=1.0, sacbc=0.3, fql=3.0, nsacbc=0.1,
        hiql={"expectile": 0.7, "low_alpha": 3.0, "high_alpha": 3.0},
    ),
    "puzzle-4x6": _park2025(
        _MIXED_GOALS, 25, "min", iql=1.0, crl=1.0, sacbc=0.3, fql=3.0, nsacbc=0.1,
        hiql={"expectile": 0.7, "low_alpha": 3.0, "high_alpha": 3.0},
    ),
    "humanoidmaze-giant": _park2025(
        _UNIFORM_GOALS, 50, "mean", iql=0.3, crl=0.3, sacbc=0.1, fql=3.0, nsacbc=0.03,
        hiql={"expectile": 0.5, "low_alpha": 3.0, "high_alpha": 3.0},
    ),
}  # fmt: skip

# --- OGBench (impls/agents/*.py defaults + impls/hyperparameters.sh) ---------------------------------------------

_OGBENCH_GOALS = {
    "actor_p_curgoal": 0.0,
    "actor_p_trajgoal": 1.0,
    "actor_p_randomgoal": 0.0,
    "actor_geom_sample": False,
}
_OGBENCH_VALUE_GOALS = {
    "value_p_curgoal": 0.2,
    "value_p_trajgoal": 0.5,
    "value_p_randomgoal": 0.3,
    "value_geom_sample": True,
}
_OGBENCH_IQL = {"hidden_dims": (512, 512, 512), "layer_norm": True, "discount": 0.99, "tau": 0.005, "expectile": 0.9}
OGBENCH_DEFAULTS = {
    "gcbc": {"hidden_dims": (512, 512, 512), "discount": 0.99, **_OGBENCH_GOALS},
    "gcivl": {**_OGBENCH_IQL, "alpha": 10.0, "gc_negative": True, **_OGBENCH_VALUE_GOALS, **_OGBENCH_GOALS},
    "gciql": {
        **_OGBENCH_IQL, "actor_layer_norm": False, "actor_loss": "ddpgbc", "alpha": 0.3, "const_std": True,
        "gc_negative": True, **_OGBENCH_VALUE_GOALS, **_OGBENCH_GOALS,
    },
    "qrl": {
        "hidden_dims": (512, 512, 512), "latent_dim": 512, "discount": 0.99, "actor_loss": "ddpgbc", "alpha": 0.003,
        "value_p_curgoal": 0.0, "value_p_trajgoal": 0.0, "value_p_randomgoal": 1.0, **_OGBENCH_GOALS,
    },
    "crl": {
        "hidden_dims": (512, 512, 512), "latent_dim": 512, "discount": 0.99, "actor_loss": "ddpgbc", "alpha": 0.1,
        "actor_layer_norm": False, "value_p_curgoal": 0.0, "value_p_trajgoal": 1.0, "value_p_randomgoal": 0.0,
        "value_geom_sample": True, **_OGBENCH_GOALS,
    },
    "hiql": {
        "hidden_dims": (512, 512, 512), "layer_norm": True, "actor_layer_norm": False, "discount": 0.99, "tau": 0.005,
        "expectile": 0.7, "high_alpha": 3.0, "low_alpha": 3.0, "use_rep": True, "rep_dim": 10, "subgoal_steps": 25,
        "gc_negative": True, **_OGBENCH_VALUE_GOALS, **_OGBENCH_GOALS,
    },
}  # fmt: skip


def _ogbench(iql: float, qrl: float, crl: float, hiql_subgoal_steps: int = 25, extra: dict | None = None) -> dict:
    """One dataset's row of OGBench's flags (GCIVL alpha is 10 and HIQL's alphas 3 on every dataset)."""
    extra = extra or {}
    return {
        "gcbc": {},
        "gcivl": {"alpha": 10.0, **extra},
        "gciql": {"alpha": iql, **extra},
        "qrl": {"alpha": qrl, **extra},
        "crl": {"alpha": crl, **extra},
        "hiql": {"high_alpha": 3.0, "low_alpha": 3.0, "subgoal_steps": hiql_subgoal_steps, **extra},
    }


_STITCH = {"actor_p_trajgoal": 0.5, "actor_p_randomgoal": 0.5}
_GIANT = {"discount": 0.995}
OGBENCH_FLAGS = {
    "pointmaze-medium-navigate": _ogbench(0.003, 0.0003, 0.03),
    "pointmaze-large-navigate": _ogbench(0.003, 0.0003, 0.03),
    "pointmaze-giant-navigate": _ogbench(0.003, 0.0003, 0.03, extra=_GIANT),
    "pointmaze-teleport-navigate": _ogbench(0.003, 0.0003, 0.03),
    "pointmaze-medium-stitch": _ogbench(0.003, 0.0003, 0.03, extra=_STITCH),
    "pointmaze-large-stitch": _ogbench(0.003, 0.0003, 0.03, extra=_STITCH),
    "pointmaze-giant-stitch": _ogbench(0.003, 0.0003, 0.03, extra={**_STITCH, **_GIANT}),
    "pointmaze-teleport-stitch": _ogbench(0.003, 0.0003, 0.03, extra=_STITCH),
    **{f"cube-{size}-play": _ogbench(1.0, 0.3, 3.0, 10) for size in ("single", "double", "triple", "quadruple")},
    **{f"cube-{size}-noisy": _ogbench(0.03, 0.03, 0.1, 10) for size in ("single", "double", "triple", "quadruple")},
    **{f"puzzle-{size}-play": _ogbench(1.0, 0.3, 3.0, 10) for size in ("3x3", "4x4", "4x5", "4x6")},
    **{f"puzzle-{size}-noisy": _ogbench(0.03, 0.03, 0.1, 10) for size in ("3x3", "4x4", "4x5", "4x6")},
    "scene-play": _ogbench(1.0, 0.3, 3.0, 10),
    "scene-noisy": _ogbench(0.03, 0.03, 0.1, 10),
}

# --- The table -----------------------------------------------------------------------------------------------------

PRESETS: dict[tuple[str, str], dict] = {
    **{(task, agent): flags for task, row in PARK2025.items() for agent, flags in row.items()},
    **{
        (dataset, agent): {**OGBENCH_DEFAULTS[agent], **flags}
        for dataset, row in OGBENCH_FLAGS.items()
        for agent, flags in row.items()
    },
}
"""``(preset, agent) -> {field: value}``: every preset, flat."""

_PARK2025_SOURCE = "Park et al. 2025, Horizon Reduction Makes RL Scalable: horizon-reduction README"
_OGBENCH_SOURCE = "OGBench, Park et al. 2024: impls/hyperparameters.sh and the agents' defaults"
SOURCES = {
    **dict.fromkeys(PARK2025, _PARK2025_SOURCE),
    **dict.fromkeys(OGBENCH_FLAGS, _OGBENCH_SOURCE),
}
"""Where each preset comes from."""


def preset_names() -> list[str]:
    """Every preset name, in table order."""
    return list(dict.fromkeys(name for name, _ in PRESETS))


def preset_values(preset: str, agent: str, config_cls: type | None = None) -> dict:
    """The fields ``PRESETS[(preset, agent)]`` sets, checked against ``config_cls`` when given.

    Raises:
        ScalerlError: an unknown preset, a preset not defined for the agent, or fields the agent's config lacks
            (one line each).
    """
    names = preset_names()
    if preset not in names:
        raise ScalerlError(f"--preset: unknown preset '{preset}'; expected one of {', '.join(names)}")
    if (preset, agent) not in PRESETS:
        defined = ", ".join(sorted(a for p, a in PRESETS if p == preset))
        raise ScalerlError(f"--preset: preset '{preset}' is not defined for agent '{agent}'; it is for: {defined}")
    values = dict(PRESETS[(preset, agent)])
    if config_cls is not None:
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(config_cls)})
        if unknown:
            raise ScalerlError(f"--preset: preset '{preset}' sets fields agent '{agent}' does not have: {unknown}")
    return values


def as_flags(values: dict) -> str:
    """``{field: value}`` as the equivalent ``--agent.FIELD VALUE`` flags."""

    def show(value):
        return " ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)

    return " ".join(f"--agent.{name.replace('_', '-')} {show(value)}" for name, value in values.items())


def format_table(preset: str | None = None, agent: str | None = None) -> str:
    """The table as text: one block per preset (with its source), one line of flags per agent.

    Raises:
        ScalerlError: an unknown preset, a preset not defined for ``agent``, or an agent in no preset.
    """
    if preset is not None and (preset not in preset_names() or agent is not None):
        preset_values(preset, agent or "")
    blocks = []
    for name in preset_names():
        rows = [(a, values) for (p, a), values in PRESETS.items() if p == name and agent in (None, a)]
        if rows and preset in (None, name):
            lines = [f"{name}  ({SOURCES[name]})"]
            lines += [f"  {a:<8} {as_flags(values) or '(the agent defaults)'}" for a, values in rows]
            blocks.append("\n".join(lines))
    if not blocks:
        raise ScalerlError(f"--agent: no preset is defined for agent '{agent}'")
    return "\n\n".join(blocks)


def list_presets(
    preset: str = typer.Option(None, help="Show only this preset (e.g. puzzle-4x5, pointmaze-medium-navigate)."),
    agent: str = typer.Option(None, help="Show only this agent's settings."),
) -> None:
    """Print the hyper-parameter presets (`scalerl train --preset NAME`) as --agent.FIELD flags per agent."""
    typer.echo(format_table(preset, agent))
