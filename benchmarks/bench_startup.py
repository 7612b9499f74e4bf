"""Start-up time of ``scalerl train``: where the seconds before and around the updates go, and the compile cache.

Two measurements on one dataset and one configuration (the issue's: SHARSA, 1000 updates at batch 256, 2x256 MLPs):

1. ``phases``: the training loop's steps run one by one in this process (imports, data loading, agent creation, the
   first fused chunk = compilation + updates, a second identical chunk = updates alone, the validation program, a
   checkpoint, the plot), each timed with the device synchronised.
2. ``runs``: the real command, ``scalerl train ... --steps 1000 --log-interval 1000`` in a subprocess, twice with the
   persistent compilation cache off and twice with a fresh cache directory (the first run fills it, the second reads
   it). Start-up = wall time minus the steady time of the 1000 updates measured in 1.

Usage::

    JAX_PLATFORMS=cpu python benchmarks/bench_startup.py --data DATASET_DIR --env pointmaze-medium-navigate
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

AGENT_FLAGS = ["--agent.batch-size", "256", "--agent.hidden-dims", "256", "256"]


def phases(data: str, env: str, steps: int) -> dict[str, float]:
    """Seconds of each step of a training run's start, in this process (no compilation cache)."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    import jax

    from scalerl.agents import get_agent, sampler_config
    from scalerl.data import load_dataset
    from scalerl.offline.loop import create_agents, train_chunk, validation_info
    from scalerl.overrides import build_config
    from scalerl.runs import save_checkpoint, seed_keys

    lap("import jax + scalerl")
    agent_cls, config_cls = get_agent("sharsa")
    config = build_config(config_cls, {"batch_size": 256, "hidden_dims": (256, 256)})
    sampler = sampler_config(config)
    dataset = load_dataset(data, env_name=env)
    val_dataset = load_dataset(data, env_name=env, split="val", check_obs_dim=False)
    lap("load + validate data (train and -val)")
    keys = seed_keys(0, 1)
    agents = create_agents(agent_cls, config, dataset, sampler, keys)
    jax.block_until_ready(agents)
    lap("create agents")
    agents, info = train_chunk(agents, dataset, keys, 0, sampler, 256, steps)
    jax.block_until_ready(info)
    lap(f"first chunk: compile + {steps} updates")
    agents, info = train_chunk(agents, dataset, keys, steps, sampler, 256, steps)
    jax.block_until_ready(info)
    lap(f"second chunk: {steps} updates")
    jax.block_until_ready(validation_info(agents, val_dataset, keys, sampler, 256))
    lap("validation loss: compile + 1 batch")
    with tempfile.TemporaryDirectory() as scratch:
        save_checkpoint(scratch, steps, agents, 2)
        lap("checkpoint")
        from scalerl.plots import plot_run

        os.makedirs(scratch, exist_ok=True)
        plot_run(scratch)
        lap("import matplotlib + plot")
    return timings


def command_wall(data: str, env: str, steps: int, out: str, cache: str) -> float:
    """Wall seconds of one ``scalerl train`` subprocess (cache: ``off`` or a directory)."""
    command = [
        sys.executable, "-m", "scalerl.cli", "train", "--agent", "sharsa", "--env", env, "--data", data,
        "--steps", str(steps), "--log-interval", str(steps), "--save-interval", str(steps), "--eval-episodes", "0",
        "--no-progress", "--out", out, *AGENT_FLAGS,
    ]  # fmt: skip
    environment = {**os.environ, "SCALERL_COMPILE_CACHE": cache}
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset directory (e.g. from `scalerl generate`)")
    parser.add_argument("--env", required=True, help="environment / dataset name")
    parser.add_argument("--steps", type=int, default=1000, help="updates of the run")
    args = parser.parse_args()

    timings = phases(args.data, args.env, args.steps)
    print("in-process phases (s):")
    for name, seconds in timings.items():
        print(f"  {name:45s} {seconds:7.2f}")
    steady = timings[f"second chunk: {args.steps} updates"]
    with tempfile.TemporaryDirectory() as scratch:
        cache = os.path.join(scratch, "cache")
        print(f"\n`scalerl train` subprocess, start-up = wall - {steady:.1f} s of steady updates:")
        for label, setting in (("cache off", "off"), ("cache off", "off"), ("cache on", cache), ("cache on", cache)):
            out = os.path.join(scratch, "run")
            wall = command_wall(args.data, args.env, args.steps, out, setting)
            shutil.rmtree(out)
            print(f"  {label:10s} wall {wall:6.1f} s   start-up {wall - steady:6.1f} s")


if __name__ == "__main__":
    main()
