"""Updates per second of each agent: scalerl's fused loop vs a naive one-dispatch-per-update loop.

Fused (scalerl): ``train_chunk`` = K updates in one ``lax.scan`` per jitted call, batches sampled inside the jit
from the device-resident dataset.

Naive (the way the reference implementations train): per update, one host-side numpy batch (drawn by a jitted
sampler call and copied to the host, as a host data loader hands it over) and one jitted ``update`` call.

Both run in the same process on the same dataset, agent config and seed count (1 seed), after a warm-up that
excludes compilation. Usage::

    JAX_PLATFORMS=cpu python benchmarks/bench_train.py --data DATASET_DIR --env pointmaze-large-navigate
    JAX_PLATFORMS=cpu python benchmarks/bench_train.py --data DIR --env ENV --configs small --agents fbc gciql
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np

from scalerl.agents import get_agent, sampler_config
from scalerl.data import load_dataset
from scalerl.offline.loop import create_agents, train_chunk
from scalerl.overrides import build_config
from scalerl.runs import seed_keys
from scalerl.sampling import sample_batch

CONFIGS = {
    "small": dict(hidden_dims=(256, 256), batch_size=256),
    "paper": dict(hidden_dims=(1024, 1024, 1024, 1024), batch_size=1024),
}


def fused_rate(agents, dataset, data_keys, sampler, batch_size, chunk, seconds):
    agents, _ = train_chunk(agents, dataset, data_keys, 0, sampler, batch_size, chunk)  # compile + warm up
    jax.block_until_ready(agents)
    done, step, start = 0, chunk, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agents, info = train_chunk(agents, dataset, data_keys, step, sampler, batch_size, chunk)
        jax.block_until_ready(info)
        done += chunk
        step += chunk
    return done / (time.perf_counter() - start)


def naive_rate(agent, dataset, sampler, batch_size, seconds):
    sample = jax.jit(sample_batch, static_argnames=("config", "batch_size"))
    update = jax.jit(lambda agent, batch: agent.update(batch))
    key = jax.random.PRNGKey(0)
    batch = jax.device_get(sample(key, dataset, sampler, batch_size))
    agent, info = update(agent, batch)  # compile + warm up
    jax.block_until_ready(info)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = jax.device_get(sample(jax.random.fold_in(key, done), dataset, sampler, batch_size))  # host numpy
        agent, info = update(agent, batch)
        jax.block_until_ready(info)
        done += 1
    return done / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset directory (scalerl generate) or OGBench .npz")
    parser.add_argument("--env", required=True, help="environment name of the dataset")
    parser.add_argument("--agents", nargs="+", default=["fbc", "gciql", "sharsa"], help="agents to measure")
    parser.add_argument("--configs", nargs="+", default=["small", "paper"], choices=sorted(CONFIGS))
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per cell")
    parser.add_argument("--chunk", type=int, default=100, help="updates fused per jitted call")
    args = parser.parse_args()

    dataset = load_dataset(args.data, env_name=args.env)
    print(f"device: {jax.devices()[0].device_kind}, dataset: {dataset.num_transitions:,} transitions")
    print("| agent | config | fused upd/s | naive upd/s | ratio |\n|---|---|---|---|---|")
    for config_name in args.configs:
        for name in args.agents:
            agent_cls, config_cls = get_agent(name)
            config = build_config(config_cls, CONFIGS[config_name])
            sampler = sampler_config(config)
            keys = seed_keys(0, 1)
            agents = create_agents(agent_cls, config, dataset, sampler, keys)
            single = jax.tree.map(lambda x: x[0].copy(), agents)
            fused = fused_rate(agents, dataset, keys, sampler, config.batch_size, args.chunk, args.seconds)
            naive = naive_rate(single, dataset, sampler, config.batch_size, args.seconds)
            print(f"| {name} | {config_name} | {fused:.1f} | {naive:.1f} | {fused / naive:.2f}x |", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
