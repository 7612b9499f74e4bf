"""Synthetic agents whose values are tables over the states of a horizon task (exact, shifted or learned)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalerl.horizon.tasks import MOVES, distances_to, optimal_values, task_graph


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """What the diagnostics read from an agent's config."""

    discount: float = 0.9
    gc_negative: bool = False
    goal_rep: str = "observation"


class TableAgent(struct.PyTreeNode):
    """``V(s, g) = values[g, s]`` on the states nearest to the observations; acts greedily on ``V(next(s, m), g)``."""

    values: jax.Array  # [S goals, S states]
    observations: jax.Array  # [S, obs_dim]
    next_states: jax.Array  # [S, 4]

    def states(self, points):
        return jnp.argmin(jnp.sum((points[..., None, :] - self.observations) ** 2, axis=-1), axis=-1)

    def value(self, observations, goals):
        return self.values[self.states(goals), self.states(observations)]

    def sample_actions(self, observations, goals, key):
        states, goal_states = self.states(observations), self.states(goals)
        ahead = self.values[goal_states[:, None], self.next_states[states]]  # [B, 4]
        return jnp.asarray(MOVES)[jnp.argmax(ahead, axis=-1)]


class DistanceTableAgent(TableAgent):
    """A quasimetric-style agent: ``distance(s, g) = values[g, s]`` in steps (its value is ``-distance``)."""

    value_in_reward_units = False

    def distance(self, observations, goals):
        return self.values[self.states(goals), self.states(observations)]

    def sample_actions(self, observations, goals, key):
        states, goal_states = self.states(observations), self.states(goals)
        return jnp.asarray(MOVES)[jnp.argmin(self.values[goal_states[:, None], self.next_states[states]], axis=-1)]


def table_agents(spec, values: np.ndarray, seeds: int = 2, cls=TableAgent):
    """``seeds`` copies of a table agent (a leading seed axis, as the training loop's agents have)."""
    graph = task_graph(spec)
    agent = cls(
        values=jnp.asarray(values, jnp.float32),
        observations=jnp.asarray(graph.observations),
        next_states=jnp.asarray(graph.next_states),
    )
    return jax.tree.map(lambda leaf: jnp.stack([leaf] * seeds), agent)


def exact_values(spec, discount: float, extra_steps: float = 0.0, gc_negative: bool = False) -> np.ndarray:
    """``[g, s]`` values of ``gamma ** (d + extra_steps)`` (or the gc_negative form of ``d + extra_steps``)."""
    distances = distances_to(task_graph(spec), np.arange(task_graph(spec).num_states)).astype(np.float64)
    return optimal_values(distances + extra_steps, discount, gc_negative)
