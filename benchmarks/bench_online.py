"""Online SAC throughput: scalerl's fused step vs a plain Python loop of single jitted updates.

Fused (scalerl): per environment step ONE jitted call (``scalerl.online.loop.train_step``) adds the transition to the
device buffer, runs the sigma updates in a ``lax.scan`` and samples the next action.

Plain (the usual online loop): per environment step one jitted ``add``, sigma jitted single-update calls from a
Python loop (the batch is sampled inside each call, from the same device buffer), and one jitted action call.

Both run in the same process on the same environment, SAC config and seed count, from the same state (a buffer
prefilled with random-action steps), after a warm-up that excludes compilation. Reported: environment steps per
second at sigma 1 and gradient updates per second at sigma 8, by wall clock and by process CPU time. Usage::

    JAX_PLATFORMS=cpu python benchmarks/bench_online.py
    JAX_PLATFORMS=cpu python benchmarks/bench_online.py --env Hopper-v5 --steps 500 --critic-width 512
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np

from scalerl.online import buffer as replay
from scalerl.online.loop import OnlineConfig, _act, _Envs, create_state, first_actions, train_step, update_once
from scalerl.online.sac import SACConfig


def fused_steps(state, envs, actions, steps: int, num_updates: int, batch_size: int):
    """``steps`` environment steps with scalerl's fused call; returns ``(state, actions)``."""
    for _ in range(steps):
        transition, observations = envs.step(actions)
        state, actions, _ = train_step(
            state, transition, observations, False, num_updates=num_updates, batch_size=batch_size
        )
        actions = np.asarray(actions)
    return state, actions


@jax.jit
def _plain_add(buffer, transition):
    return jax.vmap(replay.add)(buffer, transition)


@jax.jit
def _plain_act(agent, observations, keys):
    return jax.vmap(lambda a, o, k: _act(a, o, k, False))(agent, observations, keys)


def _plain_update(agent, buffer, keys, batch_size):
    return jax.vmap(lambda a, b, k: update_once(a, b, k, batch_size))(agent, buffer, keys)


_plain_update = jax.jit(_plain_update, static_argnums=3, donate_argnums=0)


def plain_steps(state, envs, actions, steps: int, num_updates: int, batch_size: int):
    """``steps`` environment steps with one jitted call per add, per update and per action."""
    agent, buffer, key = state.agent, state.buffer, np.asarray(state.key)
    for step in range(steps):
        transition, observations = envs.step(actions)
        buffer = _plain_add(buffer, transition)
        step_keys = jax.random.split(jax.random.fold_in(key[0], step), num_updates + 1)
        for k in range(num_updates):
            seed_keys = jax.random.split(step_keys[k], len(envs.envs))
            agent, _ = _plain_update(agent, buffer, seed_keys, batch_size)
        actions = np.asarray(_plain_act(agent, observations, jax.random.split(step_keys[-1], len(envs.envs))))
    return state.replace(agent=agent, buffer=buffer), actions


def timed(run, state, envs, actions, steps, num_updates, batch_size):
    """``(state, actions, wall seconds, CPU seconds)`` of ``steps`` steps after a 3-step warm-up."""
    state, actions = run(state, envs, actions, 3, num_updates, batch_size)
    jax.block_until_ready(state)
    wall, cpu = time.perf_counter(), time.process_time()
    state, actions = run(state, envs, actions, steps, num_updates, batch_size)
    jax.block_until_ready(state)
    return state, actions, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="dmc:cartpole-swingup")
    parser.add_argument("--steps", type=int, default=300, help="timed environment steps per measurement")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--critic-width", type=int, default=256)
    parser.add_argument("--critic-depth", type=int, default=2)
    parser.add_argument("--critic", default="mlp", choices=("mlp", "bro"))
    args = parser.parse_args()

    config = OnlineConfig(env=args.env, steps=10**6, seeds=args.seeds, buffer_size=100_000, out="/dev/null")
    agent_config = SACConfig(
        batch_size=args.batch_size,
        critic_type=args.critic,
        critic_width=args.critic_width,
        critic_depth=args.critic_depth,
    )
    envs = _Envs(config)
    state = create_state(config, agent_config, envs.observation_dim, envs.action_dim)
    state, actions = first_actions(state, envs.observations, True)
    state, actions = fused_steps(state, envs, np.asarray(actions), 1000, 0, args.batch_size)  # prefill the buffer
    print(f"{args.env}, {args.seeds} seed(s), batch {args.batch_size}, {args.critic} critic "
          f"{args.critic_depth}x{args.critic_width}, {args.steps} timed steps; rates: wall (CPU time)")  # fmt: skip
    print("| sigma | loop  | env steps/s     | updates/s        |")
    print("|------:|-------|----------------:|-----------------:|")
    for sigma in (1, 8):
        steps = args.steps if sigma == 1 else max(args.steps // 4, 10)
        for name, run in (("fused", fused_steps), ("plain", plain_steps)):
            state, actions, wall, cpu = timed(run, state, envs, actions, steps, sigma, args.batch_size)
            updates = steps * sigma * args.seeds
            print(
                f"| {sigma:5d} | {name} | {steps / wall:7.1f} ({steps / cpu:6.1f}) "
                f"| {updates / wall:7.1f} ({updates / cpu:7.1f}) |"
            )


if __name__ == "__main__":
    main()
