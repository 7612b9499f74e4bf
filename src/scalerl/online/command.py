"""``scalerl online``: train SAC online with a controllable updates-to-data ratio."""

from __future__ import annotations

import typer


def online(
    env: str = typer.Option(
        "dmc:cartpole-swingup", help="Gymnasium MuJoCo id (Hopper-v5) or DMC task (dmc:cheetah-run)."
    ),
    utd: float = typer.Option(1.0, help="Updates-to-data ratio sigma (gradient updates per env step; < 1 allowed)."),
    steps: int = typer.Option(100_000, help="Environment steps per seed."),
    seeds: int = typer.Option(1, help="Seeds trained together in one process (vmapped; one environment each)."),
    batch_size: int = typer.Option(256, help="Transitions per gradient update (B)."),
    lr: float = typer.Option(3e-4, help="Adam learning rate (eta) of actor, critics and entropy coefficient."),
    critic: str = typer.Option("mlp", help="Critic architecture: mlp, or bro (residual blocks + layer norm)."),
    critic_width: int = typer.Option(256, help="Critic hidden width (N scales with width and depth)."),
    critic_depth: int = typer.Option(2, help="Critic hidden layers (mlp) or residual blocks (bro)."),
    discount: float = typer.Option(0.99, help="Discount factor gamma."),
    tau: float = typer.Option(0.005, help="Polyak rate of the target critics."),
    start_steps: int = typer.Option(5000, help="Random-action steps before the first update."),
    buffer_size: int = typer.Option(
        1_000_000, help="Replay capacity in transitions per seed (oldest overwritten first)."
    ),
    eval_every: int = typer.Option(10_000, help="Env steps between evaluations, TD diagnostics and checkpoints."),
    eval_episodes: int = typer.Option(5, help="Deterministic evaluation episodes per seed and evaluation."),
    validation_steps: int = typer.Option(1000, help="Fresh transitions for the validation TD loss (0: off)."),
    log_every: int = typer.Option(1000, help="Env steps between training-loss lines in metrics.jsonl."),
    out: str = typer.Option("runs/online", help="Run directory (config.json, eval.jsonl, metrics.jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    seed: int = typer.Option(0, help="Base random seed."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train SAC online (Gymnasium MuJoCo or DMC) with UTD, batch size, learning rate and critic size as flags."""
    from scalerl.online.loop import OnlineConfig, run_online
    from scalerl.online.sac import SACConfig

    config = OnlineConfig(
        env=env, steps=steps, utd=utd, seeds=seeds, seed=seed, start_steps=start_steps, buffer_size=buffer_size,
        eval_every=eval_every, eval_episodes=eval_episodes, validation_steps=validation_steps, log_every=log_every,
        out=out,
    )  # fmt: skip
    agent_config = SACConfig(
        lr=lr, batch_size=batch_size, critic_type=critic, critic_width=critic_width, critic_depth=critic_depth,
        discount=discount, tau=tau,
    )  # fmt: skip
    run_dir = run_online(config, agent_config, resume=resume, progress=progress)
    typer.echo(_summary(run_dir))


def _summary(run_dir: str) -> str:
    """One line: the last evaluation's mean return over seeds and where the run's files are."""
    import json
    import os

    eval_path = os.path.join(run_dir, "eval.jsonl")
    rows = []
    if os.path.isfile(eval_path):
        with open(eval_path) as f:
            rows = [json.loads(line) for line in f]
    last = [row["return"] for row in rows if rows and row["step"] == rows[-1]["step"]]
    result = f"eval return {sum(last) / len(last):.1f} at step {rows[-1]['step']}; " if last else ""
    return f"done: {result}run directory {run_dir} (config.json, eval.jsonl, metrics.jsonl, curves.png, checkpoints/)"
