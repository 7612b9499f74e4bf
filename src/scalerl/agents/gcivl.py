"""Goal-conditioned implicit V-learning (GCIVL).

The value-only variant of IQL (Kostrikov et al. 2022) introduced as a baseline by OGBench (Park et al. 2024,
"OGBench: Benchmarking Offline Goal-Conditioned RL"); HIQL (Park et al. 2023) uses the same value. There is no Q
function: the expectile regression is on ``r + gamma * m * V(s', g)`` directly, which is optimistic in stochastic
environments but needs no action in the value. Two value heads ``V_1, V_2`` and their Polyak averages ``Vbar_j``::

    y_j = r + gamma * m * Vbar_j(s', g),   A = r + gamma * m * min_j Vbar_j(s', g) - mean_j Vbar_j(s, g)
    value:  L(V_j) = E[ |tau - 1(A < 0)| (y_j - V_j(s, g))^2 ],  j = 1, 2
    actor (AWR):  L(pi) = -E[ min(exp(alpha (V(s', g_a) - V(s, g_a))), 100) log pi(a | s, g_a) ],  V = mean_j V_j

The expectile weight takes its sign from the target network's advantage ``A`` (a double-Q-like trick against
overestimation) while the squared error is the online head's. The policy's advantage is HIQL's simplified
``V(s', g) - V(s, g)``: the TD advantage ``r + gamma * V(s', g) - V(s, g)`` without the reward (constant for goals
that are not yet reached) and without the discount, as in OGBench. Rewards and masks come from the sampler
(``r = 1(s == g) - 1`` with ``gc_negative``, OGBench's default, or ``1(s == g)``; ``m = 1 - 1(s == g)``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, optimizer, polyak_update
from scalerl.agents.config import AgentConfig, TargetNetworkConfig
from scalerl.networks import GaussianActor, GCValue
from scalerl.sampling import RewardConfig, ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class GCIVLConfig(RewardConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of GCIVL (defaults: OGBench, Park et al. 2024; ``alpha`` is tuned per dataset there)."""

    hidden_dims: tuple[int, ...] = (512, 512, 512)
    value_geom_sample: bool = True
    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    actor_geom_sample: bool = False
    discount: float = 0.99
    gc_negative: bool = True
    actor_layer_norm: bool = False
    """Layer norm in the actor too (OGBench's actor has none)."""
    expectile: float = 0.9
    """Expectile of the value regression."""
    alpha: float = 10.0
    """AWR inverse temperature."""
    const_std: bool = True
    """Fix the actor's standard deviation to 1."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: the mean action, as OGBench evaluates)."""

    RANGES = {"expectile": "(0, 1)", "alpha": ">= 0", "temperature": ">= 0"}


def build_networks(config: GCIVLConfig, action_dim: int) -> dict:
    """The modules ``value`` (two V(s, g) heads) and ``actor`` (pi(a | s, g))."""
    return {
        "value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
        "actor": GaussianActor(
            config.hidden_dims, action_dim, layer_norm=config.actor_layer_norm, const_std=config.const_std
        ),
    }


class GCIVLAgent(struct.PyTreeNode):
    """GCIVL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"value", "actor"}`` (optimised).
        target_params: ``{"value"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`GCIVLConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: GCIVLConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: GCIVLConfig) -> GCIVLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, value_key, actor_key = jax.random.split(key, 3)
        observations, goals = example_batch["observations"], example_batch["value_goals"]
        action_dim = example_batch["actions"].shape[-1]
        networks = build_networks(config, action_dim)
        params = {
            "value": networks["value"].init(value_key, observations, goals),
            "actor": networks["actor"].init(actor_key, observations, goals),
        }
        return cls(
            rng=rng,
            params=params,
            target_params={"value": params["value"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=action_dim,
            config=config,
        )

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Expectile regression of both heads toward their own targets, weighted by the target advantage's sign."""
        value_net, target = self.networks["value"], self.target_params["value"]
        observations, goals = batch["observations"], batch["value_goals"]
        next_v = value_net.apply(target, batch["next_observations"], goals)  # [2, B]
        bootstrap = self.config.discount * batch["masks"]
        targets = batch["rewards"] + bootstrap * next_v  # [2, B]
        v_target = value_net.apply(target, observations, goals).mean(axis=0)  # [B]
        advantage = batch["rewards"] + bootstrap * next_v.min(axis=0) - v_target
        v = value_net.apply(params["value"], observations, goals)  # [2, B]
        weight = losses.expectile_weight(advantage, self.config.expectile)  # [B]
        loss = jnp.sum(jnp.mean(weight * (targets - v) ** 2, axis=1))
        return loss, {
            "value/loss": loss,
            "value/v_mean": v.mean(),
            "value/v_max": v.max(),
            "value/v_min": v.min(),
            "value/adv_mean": advantage.mean(),
        }

    def actor_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """AWR with the advantage ``V(s', g_a) - V(s, g_a)`` of the (fixed) online value."""
        nets = self.networks
        observations, goals, actions = batch["observations"], batch["actor_goals"], batch["actions"]
        v = nets["value"].apply(self.params["value"], observations, goals).mean(axis=0)
        next_v = nets["value"].apply(self.params["value"], batch["next_observations"], goals).mean(axis=0)
        advantage = next_v - v  # [B]
        weights = jnp.minimum(jnp.exp(self.config.alpha * advantage), 100.0)
        dist = nets["actor"].apply(params["actor"], observations, goals)
        log_prob = dist.log_prob(actions)  # [B]
        loss = -jnp.mean(weights * log_prob)
        return loss, {
            "actor/loss": loss,
            "actor/adv_mean": advantage.mean(),
            "actor/weight_mean": weights.mean(),
            "actor/bc_log_prob": log_prob.mean(),
            "actor/mse": jnp.mean((dist.mode() - actions) ** 2),
        }

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Value + actor losses; gradients flow only into ``params`` (``key`` is unused). Returns ``(loss, info)``."""
        value_loss, value_info = self.value_loss(batch, params)
        actor_loss, actor_info = self.actor_loss(batch, params)
        return value_loss + actor_loss, {**value_info, **actor_info}

    def update(self, batch: dict) -> tuple[GCIVLAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target value. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g)`` ``[B]`` in reward units: the mean of the two heads."""
        return self.networks["value"].apply(self.params["value"], observations, goals).mean(axis=0)
