"""``scalerl train``, ``scalerl eval`` and ``scalerl agents``: train, evaluate and list offline agents."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from scalerl.errors import ScalerlError


def agent_help() -> str:
    """Every registered agent's ``--agent.FIELD`` flags, one paragraph each (the epilog of ``scalerl train --help``)."""
    from scalerl.agents import AGENTS
    from scalerl.overrides import describe

    sections = []
    for name, (_, config_cls) in AGENTS.items():
        sections.append(f"Agent '{name}' ({config_cls.__name__}):\n\n" + describe(config_cls).replace("\n", "\n\n"))
    return "\n\n".join(sections)


def train(
    ctx: typer.Context,
    train_fields: dict,
    preset: str = typer.Option(None, help="Named hyper-parameters (`scalerl presets`); --agent.FIELD flags win."),
    opex_steps: int = typer.Option(0, help="OPEX at evaluation: gradient steps on each action along Q (0: off)."),
    opex_lr: float = typer.Option(0.1, help="OPEX step length in action space per gradient step."),
    opex_raw: bool = typer.Option(
        False, "--opex-raw", help="OPEX: plain steps a + lr * grad_a Q (the paper's form) instead of unit-length ones."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train an offline goal-conditioned agent. Set any agent field with --agent.FIELD VALUE (listed below).

    Goals follow the environment name (oracle representations with -oraclerep, full states without) unless
    --agent.goal-rep is given.
    """
    from scalerl.agents import get_agent
    from scalerl.envs import parse_env_name
    from scalerl.offline.loop import TrainConfig
    from scalerl.offline.loop import train as run_train
    from scalerl.offline.opex import from_flags
    from scalerl.offline.presets import preset_values
    from scalerl.overrides import build_config, parse_overrides

    _, config_cls = get_agent(train_fields["agent"])
    env = parse_env_name(train_fields["env"])
    overrides = parse_overrides(config_cls, list(ctx.args))
    if preset is not None:
        overrides = {**preset_values(preset, train_fields["agent"], config_cls), **overrides}
    # Resolved here, so config.json records the representation trained on (and equals an old run's with the flag).
    overrides.setdefault("goal_rep", env_goal_rep(env))
    agent_config = build_config(config_cls, overrides)
    # Paths as pathlib writes them ("d/" -> "d"): config.json has always recorded them so, and --resume compares it.
    paths = {name: str(Path(train_fields[name])) for name in ("data", "out")}
    config = TrainConfig(**{**train_fields, **paths})
    opex = from_flags(opex_steps, opex_lr, normalize=not opex_raw)
    run_dir = run_train(config, agent_config, resume=resume, progress=progress, opex=opex)
    _print_eval_summary(run_dir)


def env_goal_rep(env) -> str:
    """The goal representation an environment name asks for: ``oracle`` for ``-oraclerep`` names, else
    ``observation``.

    ``scalerl train`` uses it unless ``--agent.goal-rep`` (or a preset) sets one, as the reference code of Park et al.
    2025 and OGBench (Park et al. 2024) trains on oracle goals whenever the environment name asks for them.

    Args:
        env: a parsed environment name (:func:`scalerl.envs.parse_env_name`).
    """
    return "oracle" if env.oraclerep else "observation"


def train_command():
    """:func:`train` with its ``train_fields`` as one option per ``TrainConfig`` field.

    Building it imports the config's module and so JAX; ``scalerl.cli`` builds it only when ``train`` is asked for.
    """
    from scalerl.flags import with_field_options
    from scalerl.offline.loop import TrainConfig

    return with_field_options(train_fields=TrainConfig)(train)


def _print_eval_summary(run_dir: str) -> None:
    from scalerl.plots import seed_mean
    from scalerl.runs import EVAL_FILE, read_jsonl

    evals = read_jsonl(os.path.join(run_dir, EVAL_FILE))
    if evals:
        steps, mean, std = seed_mean(evals, "success")
        typer.echo(f"success at step {steps[-1]}: {mean[-1]:.3f} +- {std[-1]:.3f} (over seeds)")
    typer.echo(f"run directory: {os.path.abspath(run_dir)} (metrics.jsonl, eval.jsonl, checkpoints/, curves.png)")


def evaluate_run(
    run_dir: Path = typer.Argument(..., help="A run directory written by `scalerl train`."),
    episodes: int = typer.Option(10, help="Evaluation episodes per task."),
    seed: int = typer.Option(12345, help="Seed of the evaluation episodes."),
    video: bool = typer.Option(False, "--video", help="Render the first episode of each task to RUN_DIR/videos."),
    opex_steps: int = typer.Option(0, help="OPEX: gradient steps on each action along the agent's Q (0: off)."),
    opex_lr: float = typer.Option(0.1, help="OPEX step length in action space per gradient step."),
    opex_raw: bool = typer.Option(
        False, "--opex-raw", help="OPEX: plain steps a + lr * grad_a Q (the paper's form) instead of unit-length ones."
    ),
) -> None:
    """Evaluate a run's latest checkpoint with OGBench's protocol; writes RUN_DIR/eval_final.json."""
    from scalerl.agents import get_agent, sampler_config
    from scalerl.atomic import atomic_write_json
    from scalerl.data import load_dataset
    from scalerl.offline.loop import create_agents, run_evaluation
    from scalerl.offline.opex import check_opex_supported, from_flags
    from scalerl.overrides import build_config
    from scalerl.runs import list_checkpoints, read_config, restore_checkpoint, seed_keys

    saved = read_config(str(run_dir))
    if "train" not in saved:
        raise ScalerlError(f"RUN_DIR: {run_dir}/config.json has no 'train' section; expected a `scalerl train` run")
    agent_cls, config_cls = get_agent(saved["train"]["agent"])
    opex = from_flags(opex_steps, opex_lr, normalize=not opex_raw)
    if opex is not None:
        check_opex_supported(agent_cls, saved["train"]["agent"])
    agent_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["agent"].items()}
    agent_config = build_config(config_cls, agent_fields)
    checkpoints = list_checkpoints(str(run_dir))
    if not checkpoints:
        raise ScalerlError(f"{run_dir}/checkpoints: no checkpoint to evaluate")
    step, path = checkpoints[-1]
    env = saved["train"]["env"]
    # Only shapes are needed: a packed store gives one block, not the whole store.
    dataset = load_dataset(saved["train"]["data"], env_name=env, max_transitions=1)
    template = create_agents(
        agent_cls, agent_config, dataset, sampler_config(agent_config), seed_keys(0, saved["train"]["seeds"])
    )
    agents = restore_checkpoint(path, template)
    video_dir = os.path.join(run_dir, "videos") if video else None
    rows = run_evaluation(agents, env, episodes, seed, step, True, video_dir=video_dir, opex=opex)
    atomic_write_json(os.path.join(run_dir, "eval_final.json"), rows)
    for row in rows:
        typer.echo(f"seed {row['seed']}: success {row['success']:.3f}")
    typer.echo(f"wrote {os.path.join(os.path.abspath(run_dir), 'eval_final.json')}")


def list_agents() -> None:
    """List the registered agents and every field of their configs (settable as --agent.FIELD)."""
    typer.echo(agent_help().replace("\n\n", "\n"))
