"""Goal-conditioned implicit Q-learning (GCIQL).

IQL (Kostrikov et al. 2022) with hindsight goals, as in OGBench (Park et al. 2024) and the GCIQL baseline of
"Horizon Reduction Makes RL Scalable" (Park et al. 2025). With value goals ``g`` and actor goals ``g_a``::

    value:   L(V)   = E[ |tau - 1(Qbar - V < 0)| (Qbar - V)^2 ],  Qbar = min_j Qbar_j(s, a, g)   (target critic)
    critic:  L(Q_j) = E[ (Q_j(s, a, g) - (r + gamma * m * V(s', g)))^2 ],  j = 1, 2                (V not trained here)
    actor (AWR):     L(pi) = -E[ min(exp(alpha (Q(s, a, g_a) - V(s, g_a))), 100) log pi(a | s, g_a) ]
    actor (DDPG+BC): L(pi) = -E[ Q(s, mu(s, g_a), g_a) ] / stopgrad(E|Q|) - alpha E[ log pi(a | s, g_a) ]

where ``Q = min_j Q_j`` and ``Qbar`` is a Polyak average of the critic (``tau`` per update). Rewards and masks come
from the sampler (``r = 1(s == g)``, or ``1(s == g) - 1`` with ``gc_negative``; ``m = 1 - 1(s == g)``).
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
class GCIQLConfig(RewardConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of GCIQL (defaults: Park et al. 2025; ``alpha`` is tuned per task in the paper)."""

    gc_negative: bool = True
    actor_layer_norm: bool = True
    """Layer norm in the actor too (Park et al. 2025; OGBench's actor has none)."""
    expectile: float = 0.9
    """IQL expectile of the value regression."""
    actor_loss: str = "ddpgbc"
    """Policy extraction: ``ddpgbc`` (maximise Q plus a BC term) or ``awr`` (advantage-weighted regression)."""
    alpha: float = 1.0
    """AWR inverse temperature, or the BC coefficient of DDPG+BC."""
    const_std: bool = True
    """Fix the actor's standard deviation to 1 (DDPG+BC then uses the mean action)."""
    tanh_squash: bool = False
    """Squash actor samples with tanh (OGBench's GCIQL does not; means are clipped to [-1, 1] instead)."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: the mean action, as OGBench evaluates)."""

    RANGES = {"expectile": "(0, 1)", "alpha": ">= 0", "temperature": ">= 0"}

    def __post_init__(self):
        super().__post_init__()
        if self.actor_loss not in ("awr", "ddpgbc"):
            raise ValueError(f"actor_loss: expected 'awr' or 'ddpgbc', got '{self.actor_loss}'")


def build_networks(config: GCIQLConfig, action_dim: int) -> dict:
    """The modules ``value`` (V(s, g)), ``critic`` (two Q(s, a, g) heads) and ``actor`` (pi(a | s, g))."""
    return {
        "value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=1),
        "critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
        "actor": GaussianActor(
            config.hidden_dims,
            action_dim,
            layer_norm=config.actor_layer_norm,
            tanh_squash=config.tanh_squash,
            const_std=config.const_std,
        ),
    }


class GCIQLAgent(struct.PyTreeNode):
    """GCIQL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"value", "critic", "actor"}`` (optimised).
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`GCIQLConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: GCIQLConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: GCIQLConfig) -> GCIQLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, value_key, critic_key, actor_key = jax.random.split(key, 4)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        networks = build_networks(config, actions.shape[-1])
        params = {
            "value": networks["value"].init(value_key, observations, goals),
            "critic": networks["critic"].init(critic_key, observations, goals, actions),
            "actor": networks["actor"].init(actor_key, observations, goals),
        }
        return cls(
            rng=rng,
            params=params,
            target_params={"critic": params["critic"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            config=config,
        )

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Expectile regression of ``V(s, g)`` toward the target critic's ``min_j Qbar_j(s, a, g)``."""
        nets = self.networks
        target_q = nets["critic"].apply(
            self.target_params["critic"], batch["observations"], batch["value_goals"], batch["actions"]
        )
        target_q = jnp.min(target_q, axis=0)  # [B]
        v = nets["value"].apply(params["value"], batch["observations"], batch["value_goals"])  # [B]
        loss = jnp.mean(losses.expectile_loss(target_q - v, self.config.expectile))
        return loss, {"value/loss": loss, "value/v_mean": v.mean(), "value/v_max": v.max(), "value/v_min": v.min()}

    def critic_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """TD regression of both critic heads toward ``r + gamma * m * V(s', g)``."""
        nets = self.networks
        next_v = nets["value"].apply(self.params["value"], batch["next_observations"], batch["value_goals"])
        target = batch["rewards"] + self.config.discount * batch["masks"] * jax.lax.stop_gradient(next_v)  # [B]
        q = nets["critic"].apply(
            params["critic"], batch["observations"], batch["value_goals"], batch["actions"]
        )  # [2, B]
        loss = jnp.sum(jnp.mean((q - target) ** 2, axis=1))
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/target_mean": target.mean()}

    def actor_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """AWR or DDPG+BC policy extraction on actor goals (the critic and value are held fixed)."""
        nets = self.networks
        observations, goals, actions = batch["observations"], batch["actor_goals"], batch["actions"]
        dist = nets["actor"].apply(params["actor"], observations, goals)
        log_prob = dist.log_prob(actions)  # [B]
        info = {"actor/bc_log_prob": log_prob.mean(), "actor/mse": jnp.mean((dist.mode() - actions) ** 2)}
        if self.config.actor_loss == "awr":
            v = nets["value"].apply(self.params["value"], observations, goals)
            q = jnp.min(nets["critic"].apply(self.params["critic"], observations, goals, actions), axis=0)
            advantages = q - v  # [B]
            weights = jnp.minimum(jnp.exp(self.config.alpha * advantages), 100.0)
            loss = -jnp.mean(jax.lax.stop_gradient(weights) * log_prob)
            info.update({"actor/adv_mean": advantages.mean(), "actor/weight_mean": weights.mean()})
        else:
            policy_actions = dist.mode() if self.config.const_std else dist.sample(key)
            policy_actions = jnp.clip(policy_actions, -1.0, 1.0)
            q = jnp.min(nets["critic"].apply(self.params["critic"], observations, goals, policy_actions), axis=0)
            q_loss = -q.mean() / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
            bc_loss = -self.config.alpha * log_prob.mean()
            loss = q_loss + bc_loss
            info.update({"actor/q_loss": q_loss, "actor/bc_loss": bc_loss, "actor/q_mean": q.mean()})
        info["actor/loss"] = loss
        return loss, info

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Value + critic + actor losses; gradients flow only into ``params``. Returns ``(loss, info)``."""
        value_loss, value_info = self.value_loss(batch, params)
        critic_loss, critic_info = self.critic_loss(batch, params)
        actor_loss, actor_info = self.actor_loss(batch, params, key)
        return value_loss + critic_loss + actor_loss, {**value_info, **critic_info, **actor_info}

    def update(self, batch: dict) -> tuple[GCIQLAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target critic. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g)`` ``[B]`` in reward units."""
        return self.networks["value"].apply(self.params["value"], observations, goals)

    def q_value(self, observations: jax.Array, actions: jax.Array, goals: jax.Array) -> jax.Array:
        """``min_j Q_j(s, a, g)`` ``[B]`` in reward units."""
        q = self.networks["critic"].apply(self.params["critic"], observations, goals, actions)
        return jnp.min(q, axis=0)
