"""``scalerl train`` and ``scalerl eval``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from scalerl.errors import ScalerlError


def agent_help() -> str:
    from scalerl.agents import AGENTS
    from scalerl.overrides import describe

    sections = []
    for name, (_, config_cls) in AGENTS.items():
        sections.append(f"Agent '{name}' ({config_cls.__name__}):\n\n" + describe(config_cls).replace("\n", "\n\n"))
    return "\n\n".join(sections)


def train(
    ctx: typer.Context,
    agent: str = typer.Option(
        ...,
        help=(
            "Agent registry name: fbc, gcbc, gciql, gcivl, crl, sacbc, fql, qrl, nsacbc, hfbc, hiql, sharsa, "
            "dsharsa (`scalerl agents` lists their fields)."
        ),
    ),
    env: str = typer.Option(..., help="Environment / dataset name, e.g. puzzle-3x3-play-oraclerep."),
    data: Path = typer.Option(..., help="Dataset directory (from `scalerl generate`) or an OGBench .npz file."),
    out: Path = typer.Option(..., help="Run directory (config, metrics.jsonl, eval.jsonl, checkpoints, curves.png)."),
    steps: int = typer.Option(100_000, help="Gradient updates per seed."),
    seeds: int = typer.Option(1, help="Independent seeds trained together in one process (vmapped)."),
    seed: int = typer.Option(0, help="Base random seed."),
    log_interval: int = typer.Option(1000, help="Updates between metric lines = updates fused per jitted call."),
    eval_interval: int = typer.Option(0, help="Updates between evaluations (0: only at the end)."),
    eval_episodes: int = typer.Option(10, help="Evaluation episodes per task (0: no evaluation)."),
    save_interval: int = typer.Option(10_000, help="Updates between checkpoints."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Log the loss on the -val data."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log to TensorBoard (needs tensorboardX)."),
    wandb_project: str = typer.Option(None, help="Also log to this Weights & Biases project (needs wandb)."),
    preset: str = typer.Option(None, help="Named hyper-parameters (`scalerl presets`); --agent.FIELD flags win."),
    opex_steps: int = typer.Option(0, help="OPEX at evaluation: gradient steps on each action along Q (0: off)."),
    opex_lr: float = typer.Option(0.1, help="OPEX step length in action space per gradient step."),
    opex_raw: bool = typer.Option(
        False, "--opex-raw", help="OPEX: plain steps a + lr * grad_a Q (the paper's form) instead of unit-length ones."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train an offline goal-conditioned agent. Set any agent field with --agent.FIELD VALUE (listed below)."""
    from scalerl.agents import get_agent
    from scalerl.envs import parse_env_name
    from scalerl.offline.loop import TrainConfig
    from scalerl.offline.loop import train as run_train
    from scalerl.offline.opex import from_flags
    from scalerl.offline.presets import preset_values
    from scalerl.overrides import build_config, parse_overrides

    _, config_cls = get_agent(agent)
    parse_env_name(env)
    overrides = parse_overrides(config_cls, list(ctx.args))
    if preset is not None:
        overrides = {**preset_values(preset, agent, config_cls), **overrides}
    agent_config = build_config(config_cls, overrides)
    config = TrainConfig(
        agent=agent,
        env=env,
        data=str(data),
        out=str(out),
        steps=steps,
        seeds=seeds,
        seed=seed,
        log_interval=log_interval,
        eval_interval=eval_interval,
        eval_episodes=eval_episodes,
        save_interval=save_interval,
        validate=validate,
        tensorboard=tensorboard,
        wandb_project=wandb_project,
    )
    opex = from_flags(opex_steps, opex_lr, normalize=not opex_raw)
    run_dir = run_train(config, agent_config, resume=resume, progress=progress, opex=opex)
    _print_eval_summary(run_dir)


def _print_eval_summary(run_dir: str) -> None:
    from scalerl.plots import read_jsonl, seed_mean

    evals = read_jsonl(os.path.join(run_dir, "eval.jsonl"))
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
    from scalerl.offline.loop import (
        create_agents,
        list_checkpoints,
        restore_checkpoint,
        run_evaluation,
        seed_keys,
    )
    from scalerl.offline.opex import check_opex_supported, from_flags
    from scalerl.overrides import build_config

    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise ScalerlError(f"{config_path}: not found; RUN_DIR must be a directory written by `scalerl train`")
    with open(config_path) as f:
        saved = json.load(f)
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
    dataset = load_dataset(saved["train"]["data"], env_name=env)
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
