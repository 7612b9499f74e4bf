"""Command-line entry points of the horizon testbed: ``scalerl diagnose RUN_DIR`` and the horizon branch of
``scalerl generate`` (``scalerl generate --env maze-n32-navigate --transitions 1M --out DIR``).

JAX is imported only when a command runs, so ``scalerl --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from scalerl.errors import ScalerlError
from scalerl.flags import with_field_options
from scalerl.horizon.config import DiagnoseConfig


def generate_horizon(
    env: str,
    dataset_type: str | None = None,
    transitions: str | None = None,
    out: Path | None = None,
    seed: int = 0,
    episodes_per_shard: int | None = None,
    shards: str | int | None = None,
    noise: float | None = None,
    p_random_action: float | None = None,
    episode_length: int | None = None,
    progress: bool = True,
) -> None:
    """``scalerl generate`` for a horizon task: plan (every flag checked first), generate in this process, report.

    The flags mean what they mean for OGBench tasks; ``--noise`` is the point mass's Gaussian action noise (default
    0.5) and ``--p-random-action`` the noisy expert's random-move probability (default 0.2). ``--workers`` and
    ``--ray`` do not apply (generation is one vectorised JAX program); a shard slice ``A:B`` is refused.
    """
    from scalerl.horizon.datasets import generate_horizon_dataset, plan_horizon_dataset

    if shards is not None and not str(shards).strip().isdigit():
        raise ScalerlError(f"--shards: horizon datasets take a number of shards, not a slice, got '{shards}'")
    plan = plan_horizon_dataset(
        env,
        dataset_type=dataset_type,
        transitions=transitions,
        shards=None if shards is None else int(shards),
        episodes_per_shard=episodes_per_shard,
        seed=seed,
        noise=noise,
        p_random_action=p_random_action,
        episode_length=episode_length,
    )
    out_dir = out if out is not None else Path("data") / plan.dataset_name
    typer.echo(
        f"{plan.dataset_name}: {plan.num_shards} shard(s) x {plan.episodes_per_shard} episodes x "
        f"{plan.episode_length} steps = {plan.transitions:,} transitions, seed {plan.base_seed} -> {out_dir}"
    )
    start = time.perf_counter()
    try:
        manifest = generate_horizon_dataset(plan, out_dir, progress_bar=progress)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to finish {out_dir}", err=True)
        raise typer.Exit(130) from None
    elapsed = time.perf_counter() - start
    size = sum(shard["bytes"] + shard["val"]["bytes"] for shard in manifest["shards"])
    typer.echo(
        f"done in {elapsed:.1f}s: {out_dir} holds {plan.num_shards} shards ({len(manifest['generated'])} generated), "
        f"{plan.transitions:,} transitions, {size / 1e6:.1f} MB; manifest: {out_dir / 'manifest.json'}"
    )


def _diagnose(
    run_dir: Path = typer.Argument(..., help="A run directory written by `scalerl train` on a horizon task."),
    fields: dict = None,
) -> None:
    """Value error by true distance (in steps, and its sign), success by distance, per level of the agent: writes
    RUN_DIR/diagnostics.csv, diagnostics.json and diagnostics.png (see docs/horizon.md)."""
    from scalerl.horizon.diagnostics import diagnose_run

    config = DiagnoseConfig(**fields)
    report, paths = diagnose_run(str(run_dir), config)
    for name, level in report["summary"].items():
        if "abs_error_steps" in level:
            errors = ", ".join(f"{d:.0f}:{e:.1f}" for d, e in zip(level["distance_mean"], level["abs_error_steps"]))
            typer.echo(f"{name}: |error| in steps by distance {errors}")
        if "success" in level:
            rates = ", ".join(f"{d:.0f}:{s:.2f}" for d, s in zip(level["distance_mean"], level["success"]))
            typer.echo(f"{name}: success by distance {rates}")
    typer.echo("wrote " + ", ".join(paths))


diagnose = with_field_options(fields=DiagnoseConfig)(_diagnose)
