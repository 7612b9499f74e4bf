"""A device-resident replay buffer as a pytree with pure ``add`` and ``sample`` (purejaxrl / rejax style).

The buffer is a ring: ``add`` writes at ``pointer`` and wraps around after ``capacity`` transitions, ``size``
counts the written slots (at most ``capacity``), and ``sample`` draws uniformly from the written slots only. Both
functions are pure, so the training loop donates the buffer into its jitted step and XLA updates it in place;
``jax.vmap`` gives one buffer per seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


class ReplayBuffer(struct.PyTreeNode):
    """Transitions ``(s, a, r, s', d)`` in fixed-size arrays.

    Attributes:
        data: ``{"observations" [C, obs_dim], "actions" [C, A], "rewards" [C], "next_observations" [C, obs_dim],
            "terminals" [C]}`` (``terminals`` is 1 where the episode ended by termination, not by the time limit).
        pointer: the next slot to write (``int32`` scalar).
        size: written slots, at most the capacity (``int32`` scalar).
    """

    data: dict
    pointer: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        """Slots in the buffer (static)."""
        return self.data["rewards"].shape[-1]

    @classmethod
    def create(cls, capacity: int, observation_dim: int, action_dim: int) -> ReplayBuffer:
        """An empty buffer of ``capacity`` float32 transitions."""
        data = {
            "observations": jnp.zeros((capacity, observation_dim), jnp.float32),
            "actions": jnp.zeros((capacity, action_dim), jnp.float32),
            "rewards": jnp.zeros((capacity,), jnp.float32),
            "next_observations": jnp.zeros((capacity, observation_dim), jnp.float32),
            "terminals": jnp.zeros((capacity,), jnp.float32),
        }
        return cls(data=data, pointer=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, transition: dict) -> ReplayBuffer:
    """The buffer with one transition (a dict of unbatched arrays with the keys of ``data``) written at ``pointer``."""
    data = {
        name: column.at[buffer.pointer].set(jnp.asarray(transition[name], column.dtype))
        for name, column in buffer.data.items()
    }
    return buffer.replace(
        data=data,
        pointer=(buffer.pointer + 1) % buffer.capacity,
        size=jnp.minimum(buffer.size + 1, buffer.capacity),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> dict:
    """``batch_size`` transitions drawn uniformly with replacement from the written slots (``[B, ...]`` arrays).

    The buffer must hold at least one transition.
    """
    indices = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda column: column[indices], buffer.data)
