"""Goal-conditioned flow behaviour cloning (flow BC).

The baseline policy of "Horizon Reduction Makes RL Scalable" (Park et al. 2025), in OGBench's goal-conditioned
setting (Park et al. 2024): a velocity field ``v(s, g, x_t, t)`` is trained by flow matching to carry Gaussian noise
to the dataset action, with goals ``g`` drawn from the same trajectory (hindsight relabelling)::

    x_0 ~ N(0, I),  t ~ U[0, 1),  x_t = (1 - t) x_0 + t a
    L(theta) = E || v_theta(s, g, x_t, t) - (a - x_0) ||^2

Actions are drawn by integrating the field from noise with ``flow_steps`` Euler steps and clipping to ``[-1, 1]``.
There is no value function.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, optimizer
from scalerl.agents.config import AgentConfig
from scalerl.networks import VelocityField, euler_sample
from scalerl.sampling import ActorGoalConfig


@dataclasses.dataclass(frozen=True)
class FBCConfig(ActorGoalConfig, AgentConfig):
    """Hyper-parameters of flow BC (defaults: Park et al. 2025); policy goals come from the same trajectory."""

    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    flow_steps: int = 10
    """Euler steps when sampling actions."""

    RANGES = {"flow_steps": ">= 1"}


def build_actor(config: FBCConfig, action_dim: int) -> VelocityField:
    """The velocity field ``v(s, g, x_t, t)`` over actions."""
    return VelocityField(hidden_dims=config.hidden_dims, output_dim=action_dim, layer_norm=config.layer_norm)


class FBCAgent(struct.PyTreeNode):
    """Goal-conditioned flow BC agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"actor": ...}``.
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`FBCConfig`.
    """

    rng: jax.Array
    params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: FBCConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: FBCConfig) -> FBCAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, init_key = jax.random.split(key)
        actions = example_batch["actions"]
        action_dim = actions.shape[-1]
        actor = build_actor(config, action_dim)
        params = {
            "actor": actor.init(
                init_key, example_batch["observations"], example_batch["actor_goals"], actions, actions[..., :1]
            )
        }
        opt_state = optimizer(config.lr).init(params)
        return cls(rng=rng, params=params, opt_state=opt_state, action_dim=action_dim, config=config)

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Flow-matching BC loss on ``batch``; returns ``(loss, info)``."""
        actor = build_actor(self.config, self.action_dim)

        def velocity_fn(noisy, times):
            return actor.apply(params["actor"], batch["observations"], batch["actor_goals"], noisy, times)

        actor_loss = losses.flow_matching_loss(velocity_fn, key, batch["actions"])
        return actor_loss, {"actor/loss": actor_loss}

    def update(self, batch: dict) -> tuple[FBCAgent, dict]:
        """One Adam step on :meth:`total_loss`. Pure; the training loop jits it."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        return self.replace(rng=rng, params=params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        actor = build_actor(self.config, self.action_dim)
        noise = jax.random.normal(key, (*observations.shape[:-1], self.action_dim))
        actions = euler_sample(
            lambda x, t: actor.apply(self.params["actor"], observations, goals, x, t), noise, self.config.flow_steps
        )
        return jnp.clip(actions, -1.0, 1.0)
