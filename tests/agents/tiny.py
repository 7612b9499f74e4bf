"""Tiny agents on random trajectories, shared by the agent tests and the OPEX tests.

Goals use a 3-dimensional oracle representation while observations have 5 dimensions, so goal/observation shape
mix-ups fail.
"""

import dataclasses
import functools

import jax
import numpy as np

from scalerl.agents import AGENTS, sampler_config
from scalerl.data import compact
from scalerl.sampling import sample_batch

OBS_DIM, GOAL_DIM, ACTION_DIM, BATCH = 5, 3, 2, 16
TINY = {
    "hidden_dims": (16, 16),
    "batch_size": BATCH,
    "num_samples": 6,
    "flow_steps": 3,
    "subgoal_steps": 3,
    "rep_dim": 6,
}


def random_dataset(seed, trajectories=6, length=20):
    """Random trajectories with 5-dim observations, 3-dim oracle goals and actions in [-1, 1]."""
    rng = np.random.default_rng(seed)
    rows = trajectories * length
    terminals = np.zeros(rows, np.float32)
    terminals[length - 1 :: length] = 1.0
    arrays = {
        "observations": rng.normal(size=(rows, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(rows, ACTION_DIM)).astype(np.float32),
        "terminals": terminals,
    }
    return compact(arrays, goal_reps=rng.normal(size=(rows, GOAL_DIM)).astype(np.float32))


def tiny_config(config_cls, tiny=None, **overrides):
    """The agent's defaults with small networks and batches and oracle goals (only fields the config has are set)."""
    names = {field.name for field in dataclasses.fields(config_cls)}
    values = {**(TINY if tiny is None else tiny), "goal_rep": "oracle", **overrides}
    return config_cls(**{name: value for name, value in values.items() if name in names})


@functools.lru_cache
def tiny_agent(name, seed=0, **overrides):
    """``(agent, batch)``: the agent's tiny config (:data:`TINY`), created on a batch of random trajectories.

    Cached: tests share one compiled ``create`` per configuration (agents and batches are immutable).
    """
    agent_cls, config_cls = AGENTS[name]
    config = tiny_config(config_cls, **overrides)
    batch = sample_batch(jax.random.PRNGKey(seed), random_dataset(seed), sampler_config(config), BATCH)
    agent = jax.jit(lambda key: agent_cls.create(key, batch, config))(jax.random.PRNGKey(seed + 1))
    return agent, batch
