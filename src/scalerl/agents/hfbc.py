"""Hierarchical goal-conditioned flow behaviour cloning (hierarchical flow BC).

A horizon-reduction baseline of "Horizon Reduction Makes RL Scalable" (Park et al. 2025): two flow BC policies and
no value function. The high-level policy imitates the dataset subgoal ``w`` that lies ``k = subgoal_steps`` ahead
(clipped to the actor goal when the goal is reached sooner), the low-level policy imitates the action toward the
state ``k`` steps ahead::

    x_0 ~ N(0, I),  t ~ U[0, 1),  x_t = (1 - t) x_0 + t x_1
    high: L(theta_h) = E || v_h(s, g_a, x_t, t) - (w - x_0) ||^2,   x_1 = w = actor subgoal (goal representation)
    low:  L(theta_l) = E || v_l(s, w_l, x_t, t) - (a - x_0) ||^2,   x_1 = a,  w_l = state k steps ahead

Acting integrates the high-level field from noise to a subgoal ``w ~ pi_h(. | s, g)`` and then the low-level field
to an action ``a ~ pi_l(. | s, w)`` (``flow_steps`` Euler steps each), clipped to ``[-1, 1]``.
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
from scalerl.sampling import ActorGoalConfig, SubgoalConfig


@dataclasses.dataclass(frozen=True)
class HFBCConfig(SubgoalConfig, ActorGoalConfig, AgentConfig):
    """Hyper-parameters of hierarchical flow BC (defaults: Park et al. 2025, tuned on puzzle-4x5)."""

    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    flow_steps: int = 10
    """Euler steps when sampling subgoals and actions."""

    RANGES = {"flow_steps": ">= 1"}


def build_networks(config: HFBCConfig, action_dim: int, goal_dim: int) -> dict:
    """``high_actor`` v_h(s, g, w_t, t) over subgoals and ``low_actor`` v_l(s, w, a_t, t) over actions."""
    return {
        "high_actor": VelocityField(config.hidden_dims, output_dim=goal_dim, layer_norm=config.layer_norm),
        "low_actor": VelocityField(config.hidden_dims, output_dim=action_dim, layer_norm=config.layer_norm),
    }


class HFBCAgent(struct.PyTreeNode):
    """Hierarchical flow BC agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"high_actor", "low_actor"}``.
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        goal_dim: goal (and subgoal) dimension (from the example batch).
        config: the :class:`HFBCConfig`.
    """

    rng: jax.Array
    params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    goal_dim: int = struct.field(pytree_node=False)
    config: HFBCConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim, self.goal_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: HFBCConfig) -> HFBCAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, high_key, low_key = jax.random.split(key, 3)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["actor_goals"],
            example_batch["actions"],
        )
        times = actions[..., :1]
        networks = build_networks(config, actions.shape[-1], goals.shape[-1])
        params = {
            "high_actor": networks["high_actor"].init(high_key, observations, goals, goals, times),
            "low_actor": networks["low_actor"].init(low_key, observations, goals, actions, times),
        }
        return cls(
            rng=rng,
            params=params,
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Flow-matching losses of both levels; returns ``(loss, info)``."""
        nets = self.networks
        high_key, low_key = jax.random.split(key)
        observations = batch["observations"]

        def high_velocity(noisy, times):
            return nets["high_actor"].apply(params["high_actor"], observations, batch["actor_goals"], noisy, times)

        def low_velocity(noisy, times):
            return nets["low_actor"].apply(params["low_actor"], observations, batch["low_goals"], noisy, times)

        high_loss = losses.flow_matching_loss(high_velocity, high_key, batch["actor_subgoals"])
        low_loss = losses.flow_matching_loss(low_velocity, low_key, batch["actions"])
        return high_loss + low_loss, {"high_actor/loss": high_loss, "low_actor/loss": low_loss}

    def update(self, batch: dict) -> tuple[HFBCAgent, dict]:
        """One Adam step on :meth:`total_loss`. Pure; the training loop jits it."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        return self.replace(rng=rng, params=params, opt_state=opt_state), info

    def sample_subgoals(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Subgoals ``[B, goal_dim]`` from the high-level flow policy ``pi_h(. | s, g)``."""
        high_actor = self.networks["high_actor"]
        return euler_sample(
            lambda x, t: high_actor.apply(self.params["high_actor"], observations, goals, x, t),
            jax.random.normal(key, goals.shape),
            self.config.flow_steps,
        )

    def sample_low_actions(self, observations: jax.Array, subgoals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` from the low-level flow policy ``pi_l(. | s, w)``."""
        low_actor = self.networks["low_actor"]
        actions = euler_sample(
            lambda x, t: low_actor.apply(self.params["low_actor"], observations, subgoals, x, t),
            jax.random.normal(key, (*observations.shape[:-1], self.action_dim)),
            self.config.flow_steps,
        )
        return jnp.clip(actions, -1.0, 1.0)

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]``: a subgoal from ``pi_h``, then an action toward it from ``pi_l``."""
        high_key, low_key = jax.random.split(key)
        return self.sample_low_actions(observations, self.sample_subgoals(observations, goals, high_key), low_key)
