"""``scalerl generate``: OGBench datasets of any size, in parallel shards (local processes or a Ray cluster) that
resume after a crash and grow on a rerun."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from scalerl.errors import ScalerlError
from scalerl.generate.shards import generate_dataset, parse_shards, plan_dataset, resolve_shard_slice
from scalerl.horizon.command import generate_horizon
from scalerl.horizon.tasks import is_horizon_name
from scalerl.manifest import read_manifest


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
            "whole episodes. Larger than the dataset already in --out: grow it (its shards are kept; only a partial "
            "last shard is regenerated). Default: the size of the dataset in --out, else of OGBench's published one.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (shards + manifest.json). Default: data/<task>-<type>-v0."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes, one shard each at a time. Default: all CPU cores. With --ray: the most shards in "
            "flight (default: the cluster's CPUs).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Base seed; shard k uses seed + k, so its bytes never depend on --workers.")
    ] = 0,
    episodes_per_shard: Annotated[
        int | None,
        typer.Option(
            "--episodes-per-shard",
            help="Training episodes per shard file (plus 10%, at least 1, in its -val companion). Default: that of the "
            "dataset in --out, else 100, fewer for small datasets so they still have two shards.",
        ),
    ] = None,
    shards: Annotated[
        str | None,
        typer.Option(
            "--shards",
            help="A number N: the number of shards (with --episodes-per-shard it sets the size instead of "
            "--transitions). A slice A:B: generate only shards A to B-1 of the plan here (A: or :B leave an end "
            "open); slices made in separate --out directories merge by copying their files into one directory.",
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
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Before reusing the shards already in --out, check their sha256 against the manifest (reads every "
            "byte). Default: check their sizes only.",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Generate each shard as a Ray task: 'local' (start a cluster here), 'auto' (the running cluster) or "
            "its address. --out must be the same shared directory on every node, and scalerl installed on each.",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the aggregated progress bar.")
    ] = True,
) -> None:
    """Generate an OGBench dataset with OGBench's scripted oracles, in parallel shards that resume after a crash;
    each shard loads with ogbench.load_dataset. Rerun with a larger --transitions to grow a dataset, --shards A:B to
    generate a slice on one machine, --ray to spread the shards over a Ray cluster (docs/generate.md)."""
    if workers is not None and workers < 1:
        raise ScalerlError(f"--workers: expected a positive integer, got {workers}")
    if is_horizon_name(env):  # maze-nN, pointmaze-nN, lock-LN: generated in one JAX program (scalerl.horizon)
        if ray is not None:
            raise ScalerlError("--ray: horizon tasks are generated in one process (millions of transitions per second)")
        return generate_horizon(env, dataset_type, transitions, out, seed, episodes_per_shard, shards, noise,
                                p_random_action, episode_length, progress)  # fmt: skip
    shard_count, shard_bounds = parse_shards(shards)
    settings = dict(
        dataset_type=dataset_type,
        transitions=transitions,
        shards=shard_count,
        episodes_per_shard=episodes_per_shard,
        seed=seed,
        noise=noise,
        p_random_action=p_random_action,
        episode_length=episode_length,
    )
    plan = plan_dataset(env, **settings)
    out_dir = out if out is not None else Path("data") / plan.dataset_name
    existing = read_manifest(out_dir, journals=False) if out_dir.is_dir() else None
    if existing is not None and shard_count is None:  # grow or resume with the layout (and size) already on disk
        if episodes_per_shard is None and isinstance(existing.get("episodes_per_shard"), int):
            settings["episodes_per_shard"] = existing["episodes_per_shard"]
        if transitions is None and isinstance(existing.get("total_episodes"), int):
            settings["transitions"] = existing["total_episodes"] * plan.episode_length
        plan = plan_dataset(env, **settings)
    start, stop = resolve_shard_slice(shard_bounds, plan.num_shards)
    if ray is None and workers is None:
        workers = default_workers()
    val_transitions = sum(plan.val_episodes(k) for k in range(plan.num_shards)) * plan.episode_length
    where = f"on Ray ({ray})" if ray else f"{min(workers, stop - start)} worker(s)"
    part = f", shards {start}:{stop}" if (start, stop) != (0, plan.num_shards) else ""
    typer.echo(
        f"{plan.dataset_name}: {plan.num_shards} shard(s) x {plan.episodes_per_shard} episodes x "
        f"{plan.episode_length} steps = {plan.transitions:,} transitions (+{val_transitions:,} val), "
        f"seed {plan.base_seed}{part}, {where} -> {out_dir}"
    )
    began = time.perf_counter()
    try:
        result = generate_dataset(
            plan,
            out_dir,
            workers=workers,
            progress_bar=progress,
            shard_slice=(start, stop),
            verify=verify,
            ray_address=ray,
        )
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to finish {out_dir}", err=True)
        raise typer.Exit(130) from None
    elapsed = time.perf_counter() - began
    check = "checksum" if verify else "size check"
    reused = f", {len(result.reused)} reused after {check}" if result.reused else ""
    recorded = result.manifest["shards"]
    holds = f"{len(recorded)} of {plan.num_shards}" if len(recorded) != plan.num_shards else f"{plan.num_shards}"
    typer.echo(
        f"done in {elapsed:.1f}s: {out_dir} holds {holds} shards ({len(result.generated)} generated"
        f"{reused}), {sum(r['transitions'] for r in recorded):,} transitions + "
        f"{sum(r['val']['transitions'] for r in recorded):,} val, "
        f"{_format_bytes(result.bytes)} on disk; manifest: {out_dir / 'manifest.json'}"
    )
