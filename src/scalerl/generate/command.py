"""``scalerl generate``: OGBench datasets of any size, generated locally, in parallel and resumably."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from scalerl.errors import ScalerlError
from scalerl.generate.shards import generate_dataset, plan_dataset


def default_workers() -> int:
    """The number of CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} TB"


def generate(
    env: Annotated[
        str,
        typer.Option(
            "--env",
            help="Task, e.g. puzzle-3x3, cube-double, scene, pointmaze-medium; a dataset name such as "
            "puzzle-3x3-play also sets --type.",
        ),
    ],
    dataset_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Dataset type: play or noisy (manipulation), navigate or stitch (pointmaze). "
            "Default: the type in --env, else play / navigate.",
        ),
    ] = None,
    transitions: Annotated[
        str | None,
        typer.Option(
            "--transitions",
            help="Training transitions (episodes x actions per episode), e.g. 200000, 500K, 10M, 1B; rounded up to "
            "whole episodes. Default: the size of OGBench's published dataset.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (shards + manifest.json). Default: data/<task>-<type>-v0."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Worker processes, one shard each at a time. Default: all CPU cores."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Base seed; shard k uses seed + k, so its bytes never depend on --workers.")
    ] = 0,
    episodes_per_shard: Annotated[
        int | None,
        typer.Option(
            "--episodes-per-shard",
            help="Training episodes per shard file (plus 10%, at least 1, in its -val companion). Default: 100, "
            "fewer for small datasets so they still have two shards.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards", help="Number of shards; with --episodes-per-shard it sets the size instead of --transitions."
        ),
    ] = None,
    noise: Annotated[
        float | None,
        typer.Option(
            "--noise",
            help="Override the oracle's noise: play 0.1 (plan noise, smoothed 0.5), noisy 0.1 (max per-episode "
            "Gaussian std), pointmaze 0.5 (Gaussian action std).",
        ),
    ] = None,
    p_random_action: Annotated[
        float | None,
        typer.Option(
            "--p-random-action",
            help="Override the probability of a uniformly random action (OGBench noisy: cube/scene 0.1, puzzle 0.2; "
            "otherwise 0).",
        ),
    ] = None,
    episode_length: Annotated[
        int | None,
        typer.Option(
            "--episode-length",
            help="Override the actions per episode (OGBench: 1000; pointmaze-giant navigate 2000; stitch 200).",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the aggregated progress bar.")
    ] = True,
) -> None:
    """Generate an OGBench dataset locally with OGBench's scripted oracles, in parallel shards that resume after a
    crash; each shard loads with ogbench.load_dataset."""
    if workers is not None and workers < 1:
        raise ScalerlError(f"--workers: expected a positive integer, got {workers}")
    plan = plan_dataset(
        env,
        dataset_type=dataset_type,
        transitions=transitions,
        shards=shards,
        episodes_per_shard=episodes_per_shard,
        seed=seed,
        noise=noise,
        p_random_action=p_random_action,
        episode_length=episode_length,
    )
    out_dir = out if out is not None else Path("data") / plan.dataset_name
    workers = workers if workers is not None else default_workers()
    val_transitions = sum(plan.val_episodes(k) for k in range(plan.num_shards)) * plan.episode_length
    typer.echo(
        f"{plan.dataset_name}: {plan.num_shards} shard(s) x {plan.episodes_per_shard} episodes x "
        f"{plan.episode_length} steps = {plan.transitions:,} transitions (+{val_transitions:,} val), "
        f"seed {plan.base_seed}, {min(workers, plan.num_shards)} worker(s) -> {out_dir}"
    )
    start = time.perf_counter()
    try:
        result = generate_dataset(plan, out_dir, workers=workers, progress_bar=progress)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to finish {out_dir}", err=True)
        raise typer.Exit(130) from None
    elapsed = time.perf_counter() - start
    reused = f", {len(result.reused)} reused after checksum" if result.reused else ""
    typer.echo(
        f"done in {elapsed:.1f}s: {out_dir} holds {plan.num_shards} shards ({len(result.generated)} generated"
        f"{reused}), {plan.transitions:,} transitions + {val_transitions:,} val, "
        f"{_format_bytes(result.bytes)} on disk; manifest: {out_dir / 'manifest.json'}"
    )
