"""``scalerl demo``: a small, real study on the CPU with an embedded default for everything.

It generates a long-horizon navigation dataset with OGBench's environment and scripted waypoint oracle, trains
flow BC (no value function), GCIQL (one-step TD value learning) and SHARSA (horizon reduction: subgoal-level
SARSA with rejection sampling) with small networks, evaluates each with OGBench's protocol and writes a short
report (``report.md`` and ``report.png``). Every stage resumes: run it again after an interruption and it
continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import typer

from scalerl.atomic import atomic_write_json, atomic_write_text, save_figure
from scalerl.errors import ScalerlError


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo's study; every field has an embedded default sized for ~15 minutes on 2 CPU cores."""

    task: str = "pointmaze-medium"
    """Long-horizon navigation task: OGBench's evaluation goals lie hundreds of steps from the start."""
    dataset_type: str = "navigate"
    """OGBench dataset type."""
    transitions: int = 200_000
    """Dataset size (OGBench's navigate layout: 1000-step episodes)."""
    agents: tuple[str, ...] = ("fbc", "gciql", "sharsa")
    """Agents compared, in the report's order."""
    steps: int = 10_000
    """Gradient updates per agent and seed."""
    seeds: int = 2
    """Seeds per agent (vmapped in one process)."""
    hidden: int = 128
    """Width of every MLP (2 hidden layers, layer norm)."""
    batch_size: int = 256
    """Batch size of every agent."""
    eval_episodes: int = 4
    """Evaluation episodes per task (5 tasks), per seed."""
    log_interval: int = 1000
    """Updates fused per jitted call and between metric lines."""
    seed: int = 0
    """Seed of the data generator and of training."""


AGENT_OVERRIDES = {
    # OGBench's pointmaze settings (discount 0.99; GCIQL with DDPG+BC, alpha 0.003); SHARSA with the paper's
    # subgoal_steps and half its samples to keep evaluation cheap on a CPU.
    "fbc": {},
    "gciql": {"discount": 0.99, "actor_loss": "ddpgbc", "alpha": 0.003},
    "sharsa": {"discount": 0.99, "subgoal_steps": 25, "num_samples": 16},
}


def _agent_config(name: str, demo: DemoConfig):
    from scalerl.agents import get_agent
    from scalerl.overrides import build_config

    _, config_cls = get_agent(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {k: v for k, v in AGENT_OVERRIDES.get(name, {}).items() if k in fields}
    for field_name in ("hidden_dims", "actor_hidden_dims", "value_hidden_dims"):
        if field_name in fields:
            overrides[field_name] = (demo.hidden, demo.hidden)
    overrides["batch_size"] = demo.batch_size
    return build_config(config_cls, overrides)


def run_demo(demo: DemoConfig, out: str, progress: bool = True) -> str:
    """Run the study into ``out``; returns the path of ``report.md``."""
    from scalerl.generate.shards import generate_dataset, plan_dataset
    from scalerl.offline.loop import TrainConfig, train

    os.makedirs(out, exist_ok=True)
    data_dir = os.path.join(out, "data")
    env_name = f"{demo.task}-{demo.dataset_type}"
    timings: dict[str, float] = {}
    started = time.time()
    plan = plan_dataset(demo.task, demo.dataset_type, transitions=demo.transitions, seed=demo.seed)
    generate_dataset(plan, data_dir, workers=os.cpu_count() or 1, progress_bar=progress)
    timings["generate"] = time.time() - started
    for name in demo.agents:
        run_dir = os.path.join(out, "runs", name)
        log_interval = min(demo.log_interval, demo.steps)
        quarter = max(log_interval, demo.steps // 4 // log_interval * log_interval)
        config = TrainConfig(
            agent=name,
            env=env_name,
            data=data_dir,
            out=run_dir,
            steps=demo.steps,
            seeds=demo.seeds,
            seed=demo.seed,
            log_interval=log_interval,
            eval_interval=quarter,
            eval_episodes=demo.eval_episodes,
            save_interval=quarter,
        )
        resume = os.path.isfile(os.path.join(run_dir, "config.json"))
        started = time.time()
        if progress:
            typer.echo(f"training {name} ({demo.seeds} seeds, {demo.steps} updates each)")
        train(config, _agent_config(name, demo), resume=resume, progress=progress)
        timings[name] = time.time() - started
    return write_report(demo, out, timings)


def write_report(demo: DemoConfig, out: str, timings: dict[str, float]) -> str:
    """``report.md`` and ``report.png`` (learning curves and final success per agent) from the run directories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from scalerl.plots import seed_mean
    from scalerl.runs import read_jsonl

    fig, (ax_loss, ax_eval, ax_bar) = plt.subplots(1, 3, figsize=(15, 4))
    rows = []
    for name in demo.agents:
        run_dir = os.path.join(out, "runs", name)
        metrics = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
        evals = read_jsonl(os.path.join(run_dir, "eval.jsonl"))
        loss_key = next((k for k in ("train/actor/loss", "train/low_actor/loss") if metrics and k in metrics[0]), None)
        if loss_key:
            steps, mean, _ = seed_mean(metrics, loss_key)
            ax_loss.plot(steps, mean / abs(mean[0]), label=f"{name} {loss_key[6:]}")
        steps, mean, std = seed_mean(evals, "success")
        ax_eval.errorbar(steps, mean, yerr=std, marker="o", capsize=3, label=name)
        final = [r["success"] for r in evals if r["step"] == demo.steps]
        per_task = {k: np.mean([r[k] for r in evals if r["step"] == demo.steps]) for k in evals[-1] if "/" in k}
        rows.append((name, float(np.mean(final)), float(np.std(final)), per_task, timings.get(name, float("nan"))))
    ax_loss.set_title("actor loss (train), relative to the first log")
    ax_loss.set_xlabel("updates")
    ax_loss.legend(fontsize=7)
    ax_eval.set_title("success (mean +- std over seeds)")
    ax_eval.set_xlabel("updates")
    ax_eval.set_ylim(-0.02, 1.02)
    ax_eval.legend(fontsize=7)
    names = [r[0] for r in rows]
    ax_bar.bar(
        names, [r[1] for r in rows], yerr=[r[2] for r in rows], capsize=4, color=["C0", "C1", "C2", "C3"][: len(rows)]
    )
    ax_bar.set_ylim(0, 1)
    ax_bar.set_title(f"final success, {demo.task}-{demo.dataset_type}")
    fig.tight_layout()
    png = os.path.join(out, "report.png")
    save_figure(fig, png, dpi=90)

    task_names = sorted({k for r in rows for k in r[3]})
    lines = [
        "# scalerl demo report",
        "",
        f"Task: `{demo.task}` (`{demo.dataset_type}` data, {demo.transitions:,} transitions generated with OGBench's "
        f"scripted oracle, seed {demo.seed}). Each agent: {demo.steps:,} updates, batch {demo.batch_size}, "
        f"2x{demo.hidden} MLPs, {demo.seeds} seeds; evaluation: OGBench's 5 tasks x {demo.eval_episodes} episodes "
        "per seed.",
        "",
        "| agent | success (mean +- std over seeds) | "
        + " | ".join(t.split("/")[-1] for t in task_names)
        + " | wall time |",
        "|---|---|" + "---|" * len(task_names) + "---|",
    ]
    for name, mean, std, per_task, seconds in rows:
        cells = " | ".join(f"{per_task.get(t, float('nan')):.2f}" for t in task_names)
        lines.append(f"| {name} | {mean:.3f} +- {std:.3f} | {cells} | {seconds:.0f} s |")
    lines += [
        "",
        f"Data generation: {timings.get('generate', float('nan')):.0f} s.",
        "",
        "![learning curves and success](report.png)",
        "",
        "Run directories (config, metrics.jsonl, eval.jsonl, checkpoints, curves.png): `runs/<agent>/`.",
    ]
    report = os.path.join(out, "report.md")
    atomic_write_text(report, "\n".join(lines) + "\n")
    atomic_write_json(os.path.join(out, "timings.json"), timings)
    return report


def demo(
    out: Path = typer.Option(Path("scalerl-demo"), help="Output directory (data, runs, report.md, report.png)."),
    task: str = typer.Option(DemoConfig.task, help="Task (a pointmaze-* task with navigate data by default)."),
    hidden: int = typer.Option(DemoConfig.hidden, help="Width of the 2-layer MLPs of every agent."),
    steps: int = typer.Option(DemoConfig.steps, help="Gradient updates per agent and seed."),
    seeds: int = typer.Option(DemoConfig.seeds, help="Seeds per agent."),
    transitions: int = typer.Option(DemoConfig.transitions, help="Dataset size in transitions."),
    eval_episodes: int = typer.Option(DemoConfig.eval_episodes, help="Evaluation episodes per task and seed."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run a small real study on the CPU: generate data, train flow BC / GCIQL / SHARSA, evaluate, report."""
    if steps <= 0 or seeds <= 0 or transitions <= 0 or eval_episodes <= 0:
        raise ScalerlError("--steps, --seeds, --transitions and --eval-episodes: expected positive integers")
    from scalerl.envs import parse_env_name

    parsed = parse_env_name(task)
    if hidden <= 0:
        raise ScalerlError(f"--hidden: expected a positive integer, got {hidden}")
    config = DemoConfig(
        task=parsed.task.name,
        dataset_type=parsed.dataset_type or parsed.task.types[0],
        steps=steps,
        seeds=seeds,
        transitions=transitions,
        eval_episodes=eval_episodes,
        hidden=hidden,
    )
    report = run_demo(config, str(out), progress=progress)
    typer.echo(f"report: {os.path.abspath(report)} (plot: {os.path.join(os.path.abspath(out), 'report.png')})")
