"""The packed store at scale (issue 12): pack speed and disk per transition, host memory during training against the
dataset's size, and the start-up time of a run until its first update.

The large datasets are built by tiling, not generated: the episodes of a generated dataset (``--source``) are
repeated into one 1M-transition OGBench-layout file (1000 episodes of 1001 rows for a 1000-step task, compressed as
OGBench's are, with a ``-val`` companion of 10%), which ``scalerl pack`` turns into a store of 8 blocks; the 10M,
100M, ... stores repeat that store's blocks as further source files, by hard links (``--copy`` writes real copies,
which costs the disk the size says and makes reads come from the disk rather than the page cache). A ``.npz``
directory of the same files (hard links) is what today's whole-dataset loader reads.

Measurements (each run in a fresh subprocess):

* ``rss``: ``scalerl train --window W`` on each store, ``--steps`` updates with a small agent: the peak resident set
  (``ru_maxrss``) and the RSS at the end; beside it the whole-dataset loader on the ``.npz`` files up to
  ``--npz-max``. On a CPU the "device" window is host memory, so it is part of the RSS (a GPU holds it instead).
* ``startup``: seconds to import, open the data (the store: ``store.json`` + size checks + the first window; the
  ``.npz`` loader: read, validate, concatenate), create the agents, and run the first update (which compiles).

Usage::

    JAX_PLATFORMS=cpu python benchmarks/bench_store.py --source /tmp/demo_base/data \\
        --env pointmaze-medium-navigate --sizes 1M,10M,100M --window 1M --work /tmp/bench_store
    JAX_PLATFORMS=cpu python benchmarks/bench_store.py --source PUZZLE_4x5_DIR --env puzzle-4x5-play-oraclerep \\
        --sizes 1M,10M,100M,1B --npz-max 10M --work /data/bench_store --copy
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

AGENT_FLAGS = ["--agent.batch-size", "256", "--agent.hidden-dims", "256", "256"]


def _size(text: str) -> int:
    from scalerl.generate.shards import parse_size

    return parse_size(text, "--sizes")


def _count(transitions: int) -> str:
    """``1M``, ``10M``, ``1.1B``: a transition count, short."""
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if transitions >= scale:
            return f"{transitions / scale:.3g}{unit}"
    return str(transitions)


def _du(path: str) -> int:
    """Bytes of the distinct files under ``path`` (hard links counted once)."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for name in files:
            info = os.stat(os.path.join(root, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def build_file(source: str, work: str, transitions: int) -> str:
    """One OGBench-layout file of about ``transitions`` transitions (whole episodes of ``source``, repeated) and its
    ``-val`` companion; returns its path (reused when present)."""
    import numpy as np

    from scalerl.data import read_shard
    from scalerl.manifest import list_shards

    path = os.path.join(work, "tile-v0-00000.npz")
    if os.path.isfile(path):
        return path
    arrays = read_shard(list_shards(source, "train")[0])
    ends = np.flatnonzero(arrays["terminals"])
    episode_rows = int(ends[0]) + 1
    episodes = max(1, round(transitions / (episode_rows - 1)))
    starts = np.concatenate([[0], ends[:-1] + 1])
    picks = [k % ends.size for k in range(episodes)]
    val = [k % ends.size for k in range(max(1, episodes // 10))]
    for target, chosen in ((path, picks), (path[: -len(".npz")] + "-val.npz", val)):
        rows = np.concatenate([np.arange(starts[k], ends[k] + 1) for k in chosen])
        np.savez_compressed(target, **{key: value[rows] for key, value in arrays.items()})
    return path


def tile_store(base: str, work: str, copies: int, copy: bool) -> str:
    """A store holding ``copies`` times the blocks of ``base`` (each copy a further source file)."""
    from scalerl.store import STORE_FILE, block_name

    target = os.path.join(work, f"store-x{copies}")
    if os.path.isfile(os.path.join(target, STORE_FILE)):
        return target
    meta = json.load(open(os.path.join(base, STORE_FILE)))
    sources = len(meta["sources"])
    tiled = dict(meta, sources=[], splits={})
    for split in ("train", "val"):
        blocks = []
        for tile in range(copies):
            for source, part, rows, episodes in meta["splits"][split]["blocks"]:
                index = tile * sources + source
                directory = os.path.join(target, split, block_name(index, part))
                os.makedirs(directory, exist_ok=True)
                for name in os.listdir(os.path.join(base, split, block_name(source, part))):
                    src = os.path.join(base, split, block_name(source, part), name)
                    dst = os.path.join(directory, name)
                    if not os.path.exists(dst):
                        shutil.copyfile(src, dst) if copy else os.link(src, dst)
                blocks.append([index, part, rows, episodes])
        totals = {key: meta["splits"][split][key] * copies for key in ("rows", "transitions", "episodes")}
        tiled["splits"][split] = dict(totals, blocks=blocks)
    tiled["sources"] = [
        dict(source, file=f"{t:05d}-{source['file']}") for t in range(copies) for source in meta["sources"]
    ]
    with open(os.path.join(target, STORE_FILE), "w") as file:
        json.dump(tiled, file)
    return target


def tile_npz(path: str, work: str, copies: int) -> str:
    """A directory of ``copies`` hard links to the file ``path`` and its ``-val`` companion."""
    target = os.path.join(work, f"npz-x{copies}")
    os.makedirs(target, exist_ok=True)
    for tile in range(copies):
        for suffix in ("", "-val"):
            dst = os.path.join(target, f"tile-v0-{tile:05d}{suffix}.npz")
            if not os.path.exists(dst):
                os.link(path[: -len(".npz")] + suffix + ".npz", dst)
    return target


def train_rss(data: str, env: str, window: str, steps: int, refresh: int) -> dict:
    """Peak and final RSS (GB) and wall time of a ``scalerl train`` subprocess."""
    out = tempfile.mkdtemp(prefix="bench-store-run-")
    command = [sys.executable, "-m", "scalerl.cli", "train", "--agent", "gcbc", "--env", env, "--data", data]
    command += ["--out", out, "--steps", str(steps), "--log-interval", str(max(1, steps // 4))]
    command += ["--save-interval", str(max(1, steps // 4) * 4), "--eval-episodes", "0", "--no-progress"]
    command += ["--no-validate", *AGENT_FLAGS]
    command += ["--window", window, "--window-refresh", str(refresh)] if window else []
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_rss = 0
    samples = []
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        last_rss = int(line.split()[1]) * 1024
                        samples.append(last_rss)
        except OSError:
            break
        time.sleep(0.2)
    _, code, usage = os.wait4(process.pid, 0) if process.returncode is None else (0, process.returncode << 8, None)
    output = process.stdout.read()
    shutil.rmtree(out, ignore_errors=True)
    if code:
        raise RuntimeError(f"train failed on {data}:\n{output[-2000:]}")
    peak = usage.ru_maxrss * 1024 if usage is not None else max(samples, default=0)
    late = samples[len(samples) // 2 :] or samples
    return dict(
        peak_gb=peak / 1e9, steady_gb=(sum(late) / max(len(late), 1)) / 1e9, wall_s=time.perf_counter() - started
    )


def startup_phases(data: str, env: str, window: str) -> dict:
    """Seconds of each phase until the first update, in this process (run through ``--phases``)."""
    clock = time.perf_counter()
    timings = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    import jax

    from scalerl.agents import get_agent, sampler_config
    from scalerl.offline.loop import TrainConfig, create_agents, train_chunk
    from scalerl.offline.window import open_training_data
    from scalerl.overrides import build_config
    from scalerl.runs import seed_keys

    lap("import")
    agent_cls, config_cls = get_agent("gcbc")
    config = build_config(config_cls, {"batch_size": 256, "hidden_dims": (256, 256)})
    train_config = TrainConfig(agent="gcbc", env=env, data=data, out="unused", window=window, validate=False)
    data_source = open_training_data(train_config, 0, config.batch_size)
    dataset = jax.block_until_ready(data_source.dataset_at(0))
    lap("open data")
    sampler = sampler_config(config)
    keys = seed_keys(0, 1)
    agents = jax.block_until_ready(create_agents(agent_cls, config, dataset, sampler, keys))
    lap("create agents")
    _, info = train_chunk(agents, dataset, keys, 0, sampler, config.batch_size, 1)
    jax.block_until_ready(info)
    lap("first update (compiles)")
    data_source.close()
    return timings


def main() -> None:
    """Build the tiled datasets and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a generated dataset whose episodes are tiled")
    parser.add_argument("--env", required=True, help="e.g. pointmaze-medium-navigate, puzzle-4x5-play-oraclerep")
    parser.add_argument("--sizes", default="1M,10M,100M", help="store sizes in transitions (multiples of the file)")
    parser.add_argument("--file-transitions", default="1M", help="transitions per tiled source file")
    parser.add_argument("--npz-max", default="10M", help="largest .npz dataset for today's whole-dataset loader")
    parser.add_argument("--window", default="1M", help="--window of the store runs")
    parser.add_argument("--steps", type=int, default=400, help="updates of each RSS run")
    parser.add_argument("--window-refresh", type=int, default=20, help="updates between refreshes in the RSS runs")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_store"))
    parser.add_argument("--copy", action="store_true", help="copy blocks instead of hard-linking them")
    parser.add_argument("--phases", nargs=2, metavar=("DATA", "WINDOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases:
        print(json.dumps(startup_phases(args.phases[0], args.env, "" if args.phases[1] == "-" else args.phases[1])))
        return
    from scalerl.store import PackConfig, pack

    os.makedirs(args.work, exist_ok=True)
    per_file = _size(args.file_transitions)
    started = time.perf_counter()
    path = build_file(args.source, args.work, per_file)
    print(f"tiled source file {path}: {time.perf_counter() - started:.1f} s")
    base = os.path.join(args.work, "store-x1")
    reused = os.path.isdir(base)
    started = time.perf_counter()
    store = pack(PackConfig(os.path.dirname(path), base, env=args.env), progress=False)
    pack_s = time.perf_counter() - started
    transitions = store.transitions() + store.transitions("val")
    npz_bytes = os.path.getsize(path) + os.path.getsize(path[:-4] + "-val.npz")
    timing = "store reused (delete it to time the pack)" if reused else f"{pack_s:.1f} s ({transitions / pack_s:.0f}/s)"
    print(
        f"pack: {transitions} transitions, {timing}; disk per transition: "
        f".npz {npz_bytes / transitions:.0f} B, store {_du(base) / transitions:.0f} B "
        f"(fields {', '.join(store.fields)})"
    )
    sizes = [_size(text) for text in args.sizes.split(",")]
    print("\n| data | transitions | disk (distinct bytes) | peak RSS GB | RSS GB (2nd half) | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        copies = max(1, size // store.transitions())
        tiled = tile_store(base, args.work, copies, args.copy)
        result = train_rss(tiled, args.env, args.window, args.steps, args.window_refresh)
        print(
            f"| store, --window {args.window} | {_count(copies * store.transitions())} | {_du(tiled) / 1e9:.2f} GB | "
            f"{result['peak_gb']:.2f} | {result['steady_gb']:.2f} | {result['wall_s']:.0f} |",
            flush=True,
        )
    for size in sizes:
        if size > _size(args.npz_max):
            continue
        copies = max(1, size // store.transitions())
        npz = tile_npz(path, args.work, copies)
        result = train_rss(npz, args.env, "", args.steps, 0)
        print(
            f"| .npz, whole dataset (today's loader) | {_count(copies * store.transitions())} "
            f"| {_du(npz) / 1e9:.2f} GB | "
            f"{result['peak_gb']:.2f} | {result['steady_gb']:.2f} | {result['wall_s']:.0f} |",
            flush=True,
        )
    print("\n| start-up | " + " | ".join(["import", "open data", "create agents", "first update (compiles)"]) + " |")
    print("|---|---:|---:|---:|---:|")
    largest = tile_store(base, args.work, max(1, max(sizes) // store.transitions()), args.copy)
    runs = [(f"store {_count(max(sizes))}, --window {args.window}", largest, args.window)]
    npz_copies = max(1, min(_size(args.npz_max), max(sizes)) // store.transitions())
    npz = tile_npz(path, args.work, npz_copies)
    runs.append((f".npz {_count(npz_copies * store.transitions())}, whole dataset", npz, "-"))
    for label, data, window in runs:
        command = [sys.executable, __file__, "--env", args.env, "--phases", data, window]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        phases = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"| {label} | " + " | ".join(f"{value:.1f}" for value in phases.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
