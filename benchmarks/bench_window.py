"""The streaming window of ``scalerl train --window`` (issue 12): refresh bandwidth, sampler and update rates, and how
uniform the sampling is against the reference's one-file rotation.

Three measurements, each a subcommand:

1. ``bandwidth``: a packed store's blocks into device window slots, stage by stage (read from the store into host
   arrays, host -> device, the jitted slot write), in GB/s of device bytes, two passes (the second from the OS page
   cache). On a CPU "device" the transfer is a host copy.
2. ``rates``: on a window of a store, the sampler alone (batches/s of ``sample_batch`` in a ``lax.scan``) and the
   agent's fused updates (updates/s of ``train_chunk``) for the paper configuration (SHARSA, batch 1024, 4x1024 MLPs)
   and a small one (batch 256, 2x256); then the same updates with a window refresh between every two chunks against a
   window that never changes, which is what the device waits for data.
3. ``uniformity``: :func:`scalerl.offline.window.sampling_figures` (expected per-block sample counts over one
   epoch-equivalent, blocks and files per batch, fraction of the data seen) for the whole dataset, the rotation and
   windows of several sizes and refresh rates; on a store's own block layout or on the 1B layout of Park et al. 2025
   (1000 files of 1000 episodes of 1001 rows, 8 blocks each: what ``scalerl pack`` makes of them).

Usage::

    JAX_PLATFORMS=cpu python benchmarks/bench_window.py bandwidth --store STORE --blocks 16
    JAX_PLATFORMS=cpu python benchmarks/bench_window.py rates --store STORE --env puzzle-4x5-play-oraclerep \\
        --window-blocks 8 --configs small,paper --updates 20
    python benchmarks/bench_window.py uniformity --layout 1B
    python benchmarks/bench_window.py uniformity --store STORE --batch-size 1024
"""

from __future__ import annotations

import argparse
import os
import time

CONFIGS = {
    "paper": {"batch_size": 1024, "hidden_dims": (1024, 1024, 1024, 1024)},
    "small": {"batch_size": 256, "hidden_dims": (256, 256)},
}


def _fields(store, env: str | None) -> list[str]:
    from scalerl.envs import parse_env_name
    from scalerl.offline.window import device_fields

    return device_fields(env is not None and parse_env_name(env).oraclerep and "oracle_reps" in store.fields)


def bandwidth(store_path: str, blocks: int, env: str | None) -> None:
    """GB/s of each stage of a window refresh, over the first ``blocks`` blocks, twice."""
    import jax

    from scalerl.offline.window import _empty_window, slot_arrays, write_slot
    from scalerl.store import Store

    store = Store(store_path)
    fields = _fields(store, env)
    chosen = store.blocks["train"][:blocks]
    slot_rows = max(b.rows for b in store.blocks["train"])
    slot_valid = max(b.transitions for b in store.blocks["train"])
    window = None
    print(f"store {store_path}: {len(store.blocks['train'])} blocks, fields {fields}, device: {jax.devices()[0]}")
    print("| pass | blocks | GB | read GB/s | host->device GB/s | slot write GB/s | end to end GB/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for attempt in (1, 2):
        read_s = put_s = write_s = 0.0
        total = 0
        for slot, block in enumerate(chosen):
            started = time.perf_counter()
            part = slot_arrays(store, block, fields, slot_rows, slot_valid)
            read = time.perf_counter()
            part = jax.block_until_ready(jax.device_put(part))
            put = time.perf_counter()
            if window is None:
                window = jax.block_until_ready(_empty_window(part, len(chosen)))
                put = time.perf_counter()
            window = jax.block_until_ready(write_slot(window, part, slot))
            written = time.perf_counter()
            read_s, put_s, write_s = read_s + read - started, put_s + put - read, write_s + written - put
            total += sum(leaf.nbytes for leaf in jax.tree.leaves(part))
        gb = total / 1e9
        print(
            f"| {attempt} | {len(chosen)} | {gb:.3f} | {gb / read_s:.2f} | {gb / put_s:.2f} | {gb / write_s:.2f} | "
            f"{gb / (read_s + put_s + write_s):.2f} |"
        )


def draw_batches(key, dataset, sampler, batch_size: int, count: int):
    """``count`` batches drawn in one jitted ``lax.scan`` (each batch reduced to one number, so none is dropped)."""
    import jax

    from scalerl.sampling import sample_batch

    def body(total, index):
        batch = sample_batch(jax.random.fold_in(key, index), dataset, sampler, batch_size)
        return total + sum(value.reshape(-1)[0].astype("float32") for value in batch.values()), None

    return jax.lax.scan(body, 0.0, jax.numpy.arange(count))[0]


def rates(store_path: str, env: str, window_blocks: int, configs: list[str], updates: int, agent: str) -> None:
    """Sampler batches/s, updates/s, and updates/s with refreshes, per configuration."""
    import jax

    from scalerl.agents import get_agent, sampler_config
    from scalerl.offline.loop import create_agents, train_chunk
    from scalerl.offline.window import StreamingWindow, WindowSchedule
    from scalerl.overrides import build_config
    from scalerl.runs import seed_keys
    from scalerl.store import Store

    store = Store(store_path)
    fields = _fields(store, env)
    blocks = len(store.blocks["train"])
    window_blocks = min(window_blocks, blocks - 1)
    print(f"store {store_path}: window of {window_blocks} of {blocks} blocks, device: {jax.devices()[0]}")
    print("| config | sampler batches/s | updates/s (fixed window) | updates/s (refresh every chunk) | slowdown |")
    print("|---|---:|---:|---:|---:|")
    agent_cls, config_cls = get_agent(agent)
    for name in configs:
        overrides = dict(CONFIGS[name])
        if env.endswith("oraclerep") or "-oraclerep" in env:
            overrides["goal_rep"] = "oracle"
        config = build_config(config_cls, overrides)
        sampler = sampler_config(config)
        batch = config.batch_size
        # A refresh of one block before every chunk of `updates` updates: far more often than the defaults.
        schedule = WindowSchedule(blocks, window_blocks, updates, 1, seed=0)
        window = StreamingWindow(store, fields, schedule, 0, None)
        try:
            dataset = window.dataset_at(0)

            draw = jax.jit(draw_batches, static_argnums=(2, 3, 4))
            jax.block_until_ready(draw(jax.random.PRNGKey(0), dataset, sampler, batch, 100))
            started = time.perf_counter()
            for repeat in range(5):
                jax.block_until_ready(draw(jax.random.PRNGKey(repeat), dataset, sampler, batch, 100))
            sampler_rate = 500 / (time.perf_counter() - started)

            keys = seed_keys(0, 1)
            agents = create_agents(agent_cls, config, dataset, sampler, keys)
            agents, info = train_chunk(agents, dataset, keys, 0, sampler, batch, updates)  # compiles
            jax.block_until_ready(info)
            chunks = 4
            started = time.perf_counter()
            for chunk in range(chunks):
                agents, info = train_chunk(agents, dataset, keys, chunk * updates, sampler, batch, updates)
                jax.block_until_ready(info)
            fixed = chunks * updates / (time.perf_counter() - started)
            started = time.perf_counter()
            for chunk in range(chunks):
                step = (chunk + 1) * updates
                current = window.dataset_at(step)  # one block written into the window before the chunk
                agents, info = train_chunk(agents, current, keys, step, sampler, batch, updates)
                jax.block_until_ready(info)
            refreshed = chunks * updates / (time.perf_counter() - started)
        finally:
            window.close()
        print(
            f"| {name} (batch {batch}, {'x'.join(map(str, config.hidden_dims))}) | {sampler_rate:.1f} | "
            f"{fixed:.2f} | {refreshed:.2f} | {100 * (fixed / refreshed - 1):+.1f}% |"
        )


def uniformity(
    store_path: str | None, layout: str, batch_size: int, windows: list[int], refreshes: list[str], epochs: float
) -> None:
    """The uniformity figures of the whole dataset, the rotation and windows, over ``epochs`` epoch-equivalents."""
    from scalerl.offline.window import sampling_figures

    if store_path:
        from scalerl.store import Store

        blocks = Store(store_path).blocks["train"]
        sizes, sources = [b.transitions for b in blocks], [b.source for b in blocks]
        where = store_path
    else:
        files = {"1B": 1000, "100M": 100, "10M": 10}[layout]
        # 1000 episodes of 1000 transitions per file, split by `scalerl pack` into 8 blocks of 125 episodes.
        sizes, sources = [125_000] * (8 * files), [b // 8 for b in range(8 * files)]
        where = f"{layout} layout ({files} files x 8 blocks of 125k transitions)"
    total = sum(sizes)
    updates = int(epochs * total / batch_size)
    auto = max(1, round(max(sizes) / batch_size))  # scalerl train's default --window-refresh
    print(f"{where}: {len(sizes)} blocks, {total} transitions, batch {batch_size}, {updates} updates ({epochs} epochs)")
    print(
        "| data path | turnover (updates) | max rate | min rate | rate CV | TV distance | blocks/batch | files/batch | "
        "blocks seen | transitions sampled |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(label: str, turnover: str, figures: dict) -> None:
        print(
            f"| {label} | {turnover} | {figures['max_rate']:.3f} | {figures['min_rate']:.3f} "
            f"| {figures['rate_cv']:.3f} | {figures['tv_distance']:.3f} | {figures['blocks_per_batch']:.1f} "
            f"| {figures['sources_per_batch']:.1f} | {figures['blocks_seen']:.3f} "
            f"| {figures['transitions_sampled']:.3f} |"
        )

    row("whole dataset (uniform)", "-", sampling_figures(sizes, sources, "uniform", batch_size, updates))
    intervals = [auto if text == "auto" else int(text) for text in refreshes]
    for interval in sorted({int(text) for text in refreshes if text != "auto"} | {1000}):
        figures = sampling_figures(sizes, sources, "rotation", batch_size, updates, refresh_interval=interval)
        row(f"rotation, next file every {interval}", str(interval), figures)
    for window in windows:
        if window >= len(sizes):
            continue
        for interval in intervals:
            started = time.perf_counter()
            figures = sampling_figures(
                sizes, sources, "window", batch_size, updates, window, refresh_interval=interval, refresh_blocks=1
            )
            default = " (default)" if interval == auto else ""
            label = f"window {window} blocks ({window * max(sizes) / 1e6:.1f}M), 1 block every {interval}{default}"
            row(label, str(window * interval), figures)
            if time.perf_counter() - started > 120:
                print(f"(window {window}, refresh {interval}: {time.perf_counter() - started:.0f} s to compute)")


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    band = commands.add_parser("bandwidth", help="store -> device window GB/s")
    band.add_argument("--store", required=True)
    band.add_argument("--blocks", type=int, default=16)
    band.add_argument("--env", default=None, help="an -oraclerep name also moves oracle_reps")
    rate = commands.add_parser("rates", help="sampler batches/s and updates/s, with and without refreshes")
    rate.add_argument("--store", required=True)
    rate.add_argument("--env", required=True)
    rate.add_argument("--agent", default="sharsa")
    rate.add_argument("--window-blocks", type=int, default=8)
    rate.add_argument("--configs", default="small,paper")
    rate.add_argument("--updates", type=int, default=20, help="updates per chunk")
    uni = commands.add_parser("uniformity", help="sampling figures of the rotation and of windows")
    uni.add_argument("--store", default=None)
    uni.add_argument("--layout", default="1B", choices=("1B", "100M", "10M"))
    uni.add_argument("--batch-size", type=int, default=1024)
    uni.add_argument("--windows", default="8,64,512", help="window sizes in blocks")
    uni.add_argument(
        "--refreshes", default="auto,1000", help="updates between refreshes (auto: the default; rotation: files)"
    )
    uni.add_argument("--epochs", type=float, default=1.0, help="epoch-equivalents (N / batch size updates)")
    args = parser.parse_args()
    os.environ.setdefault("SCALERL_COMPILE_CACHE", "off")
    if args.command == "bandwidth":
        bandwidth(args.store, args.blocks, args.env)
    elif args.command == "rates":
        rates(args.store, args.env, args.window_blocks, args.configs.split(","), args.updates, args.agent)
    else:
        windows = [int(w) for w in args.windows.split(",")]
        uniformity(args.store, args.layout, args.batch_size, windows, args.refreshes.split(","), args.epochs)


if __name__ == "__main__":
    main()
