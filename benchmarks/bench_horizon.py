"""Horizon testbed speed on one CPU core: dataset generation (the jitted, vmapped generator) and environment steps.

Runs in one process pinned to one core with XLA's CPU threading off, so the numbers are "per core". Rates are
transitions per second of process CPU time (not distorted by other jobs on a shared machine), wall-clock rates in
brackets; compilation is timed separately (first call) and excluded from the rates (best of ``--repeats`` calls).

Usage::

    python benchmarks/bench_horizon.py                          # the default cases below
    python benchmarks/bench_horizon.py --episodes 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from scalerl.horizon.datasets import episode_keys, generate_episodes, generator_tables, plan_horizon_dataset  # noqa: E402
from scalerl.horizon.env import graph_step  # noqa: E402
from scalerl.horizon.tasks import task_graph  # noqa: E402

CASES = ("maze-n32-navigate", "maze-n32-explore", "pointmaze-n16-navigate", "lock-L256-reset-navigate")


def timed(function):
    """``(result, cpu seconds, wall seconds)`` of ``function()`` with its outputs ready."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = jax.block_until_ready(function())
    return result, time.process_time() - cpu, time.perf_counter() - wall


def bench_generation(name: str, episodes: int, repeats: int) -> dict:
    """Compile time and the best steady rate of :func:`generate_episodes` for ``episodes`` episodes."""
    plan = plan_horizon_dataset(name)
    tables = generator_tables(plan.spec, 0)
    args = (tables, plan.spec, plan.dataset_type, plan.episode_length, plan.p_random_action, plan.noise)
    _, compile_cpu, _ = timed(lambda: generate_episodes(episode_keys(0, "train", 0, episodes), *args))
    best = (np.inf, np.inf)
    for repeat in range(repeats):
        keys = episode_keys(repeat + 1, "train", 0, episodes)
        _, cpu, wall = timed(lambda keys=keys: generate_episodes(keys, *args))
        best = min(best, (cpu, wall))
    transitions = episodes * plan.episode_length
    return dict(case=name, transitions=transitions, compile_s=compile_cpu, cpu=transitions / best[0],
                wall=transitions / best[1])  # fmt: skip


def bench_steps(name: str, batch: int, steps: int, repeats: int) -> dict:
    """The bare jitted :func:`graph_step` of ``batch`` states for ``steps`` steps in a ``lax.scan``."""
    graph = task_graph(plan_horizon_dataset(name).spec)
    next_states = jnp.asarray(graph.next_states)

    @jax.jit
    def run(key):
        actions = jax.random.uniform(key, (steps, batch, 2), minval=-1.0, maxval=1.0)

        def body(states, step_actions):
            return graph_step(next_states, states, step_actions, jnp), None

        return jax.lax.scan(body, jnp.zeros(batch, jnp.int32), actions)[0]

    timed(lambda: run(jax.random.PRNGKey(0)))
    best = min(timed(lambda i=i: run(jax.random.PRNGKey(i + 1)))[1:] for i in range(repeats))
    return dict(case=f"{name} graph_step only", transitions=batch * steps, compile_s=float("nan"),
                cpu=batch * steps / best[0], wall=batch * steps / best[1])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256, help="Episodes per generator call.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls per case (the best is reported).")
    args = parser.parse_args()
    rows = [bench_generation(case, args.episodes, args.repeats) for case in CASES]
    rows.append(bench_steps("maze-n32", 4096, 1000, args.repeats))
    print(f"{'case':<36} {'transitions':>11} {'compile s':>9} {'per CPU-s':>12} {'(wall)':>12}")
    for row in rows:
        print(f"{row['case']:<36} {row['transitions']:>11,} {row['compile_s']:>9.1f} {row['cpu']:>12,.0f} "
              f"({row['wall']:>10,.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
