"""Hierarchical implicit Q-learning (HIQL).

Park et al., "HIQL: Offline Goal-Conditioned RL with Latent States as Actions" (2023), as implemented in OGBench
(Park et al. 2024) and used as a horizon-reduction method in "Horizon Reduction Makes RL Scalable" (Park et al.
2025). One goal-conditioned value ``V(s, g)`` is learned with GCIVL's action-free IQL objective (two heads, a target
network); two Gaussian policies are extracted from it with AWR, each at its own time scale::

    value:  L(V_j) = E[ |tau - 1(A < 0)| (y_j - V_j(s, g))^2 ],  y_j = r + gamma m Vbar_j(s', g)       (j = 1, 2)
            A = r + gamma m min_j Vbar_j(s', g) - mean_j Vbar_j(s, g)                       (Vbar: Polyak target)
    high:   L(pi_h) = -E[ min(exp(alpha_h (V(s_{t+k}, g_a) - V(s, g_a))), 100) log pi_h(z_w | s, g_a) ]
    low:    L(pi_l) = -E[ min(exp(alpha_l (V(s', w) - V(s, w))), 100) log pi_l(a | s, z_w) ]

with ``V = mean_j V_j``, ``w`` the dataset state ``k = subgoal_steps`` ahead (for the high level: clipped to the
actor goal ``g_a`` when it is reached sooner) and ``z_w`` its subgoal representation. Subgoal representations
follow OGBench: with ``use_rep`` (default), ``z_w = phi([s; w])``, a length-normalised MLP trained only through the
value, ``V(s, g) = V(s, phi([s; g]))``; the high-level policy outputs ``rep_dim``-dimensional representations and the
low-level policy reads them (gradients of the low actor stop at ``phi`` unless ``low_actor_rep_grad``). The target
``Vbar_j(s, g) = Vbar_j(s, phi([s; g]))`` reads the online ``phi``: only the value heads are Polyak-averaged, as in
OGBench's HIQL, whose target value network shares the representation module. Without ``use_rep``, ``z_w = w`` in the
goal representation. Acting samples ``z ~ pi_h(. | s, g)`` (length-normalised), then ``a ~ pi_l(. | s, z)``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, optimizer, polyak_update
from scalerl.agents.config import AgentConfig, TargetNetworkConfig
from scalerl.networks import MLP, GaussianActor, GCValue
from scalerl.sampling import RewardConfig, SubgoalConfig, ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class HIQLConfig(SubgoalConfig, RewardConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of HIQL (defaults: Park et al. 2025, tuned on puzzle-4x5; OGBench's are in the presets)."""

    gc_negative: bool = True
    actor_layer_norm: bool = True
    """Layer norm in both actors too (Park et al. 2025; OGBench's actors have none)."""
    expectile: float = 0.7
    """IQL expectile of the value regression."""
    high_alpha: float = 3.0
    """AWR inverse temperature of the high-level policy."""
    low_alpha: float = 3.0
    """AWR inverse temperature of the low-level policy."""
    use_rep: bool = True
    """Learn subgoal representations phi([s; g]) through the value (HIQL/OGBench); False uses goals directly."""
    rep_dim: int = 128
    """Dimension of phi (128 in Park et al. 2025, 10 in OGBench)."""
    low_actor_rep_grad: bool = False
    """Let low-level actor gradients flow into phi (OGBench uses True only for pixels)."""
    const_std: bool = True
    """Fix both actors' standard deviations to 1."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling subgoals and actions (0: the means, as OGBench evaluates)."""

    RANGES = {
        "expectile": "(0, 1)",
        "high_alpha": ">= 0",
        "low_alpha": ">= 0",
        "rep_dim": ">= 1",
        "temperature": ">= 0",
    }


class GoalRep(nn.Module):
    """HIQL's subgoal representation ``phi([s; g])``: an MLP scaled to length ``sqrt(rep_dim)``."""

    hidden_dims: tuple[int, ...]
    rep_dim: int
    layer_norm: bool = True

    @nn.compact
    def __call__(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """Representations ``[..., rep_dim]`` of goals ``[..., goal_dim]`` seen from ``[..., obs_dim]``."""
        reps = MLP((*self.hidden_dims, self.rep_dim), layer_norm=self.layer_norm)(
            jnp.concatenate([observations, goals], axis=-1)
        )
        return length_normalize(reps)


def length_normalize(x: jax.Array) -> jax.Array:
    """``x / ||x|| * sqrt(dim)`` over the last axis (HIQL's normalisation of representations)."""
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6) * jnp.sqrt(x.shape[-1])


def build_networks(config: HIQLConfig, action_dim: int, goal_dim: int) -> dict:
    """``goal_rep`` phi, ``value`` (two heads on ``[s, z]``), ``high_actor`` over ``z`` and ``low_actor``."""
    subgoal_dim = config.rep_dim if config.use_rep else goal_dim
    actor = {"layer_norm": config.actor_layer_norm, "const_std": config.const_std}
    return {
        "goal_rep": GoalRep(config.hidden_dims, config.rep_dim, layer_norm=config.layer_norm),
        "value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
        "high_actor": GaussianActor(config.hidden_dims, subgoal_dim, **actor),
        "low_actor": GaussianActor(config.hidden_dims, action_dim, **actor),
    }


class HIQLAgent(struct.PyTreeNode):
    """HIQL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"value", "high_actor", "low_actor"}`` plus ``"goal_rep"`` with ``use_rep`` (optimised).
        target_params: ``{"value"}``, the Polyak-averaged value heads (not optimised; the target value reads the
            online ``goal_rep``).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        goal_dim: goal dimension (from the example batch).
        config: the :class:`HIQLConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    goal_dim: int = struct.field(pytree_node=False)
    config: HIQLConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim, self.goal_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: HIQLConfig) -> HIQLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, rep_key, value_key, high_key, low_key = jax.random.split(key, 5)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        networks = build_networks(config, actions.shape[-1], goals.shape[-1])
        params = {}
        subgoals = goals
        if config.use_rep:
            params["goal_rep"] = networks["goal_rep"].init(rep_key, observations, goals)
            subgoals = networks["goal_rep"].apply(params["goal_rep"], observations, goals)
        params["value"] = networks["value"].init(value_key, observations, subgoals)
        params["high_actor"] = networks["high_actor"].init(high_key, observations, goals)
        params["low_actor"] = networks["low_actor"].init(low_key, observations, subgoals)
        return cls(
            rng=rng,
            params=params,
            target_params={"value": params["value"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    def subgoal_reps(self, params: dict, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``z = phi([s; g])`` with ``params["goal_rep"]`` (``use_rep``), else the goals themselves."""
        if not self.config.use_rep:
            return goals
        return self.networks["goal_rep"].apply(params["goal_rep"], observations, goals)

    def values(self, params: dict, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """Both heads ``V_j(s, phi([s; g]))`` ``[2, B]`` under ``params``."""
        reps = self.subgoal_reps(params, observations, goals)
        return self.networks["value"].apply(params["value"], observations, reps)

    def target_values(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """Both target heads ``Vbar_j(s, phi([s; g]))`` ``[2, B]``: the Polyak-averaged heads on the online ``phi``."""
        return self.values({**self.params, "value": self.target_params["value"]}, observations, goals)

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """GCIVL: expectile regression of each head toward its target, weighted by the sign of the target advantage."""
        observations, goals = batch["observations"], batch["value_goals"]
        next_v_target = self.target_values(batch["next_observations"], goals)  # [2, B]
        bootstrap = self.config.discount * batch["masks"]
        advantage = batch["rewards"] + bootstrap * next_v_target.min(axis=0)
        advantage = advantage - self.target_values(observations, goals).mean(axis=0)  # [B]
        targets = batch["rewards"] + bootstrap * next_v_target  # [2, B]
        v = self.values(params, observations, goals)  # [2, B]
        weights = losses.expectile_weight(advantage, self.config.expectile)
        loss = jnp.sum(jnp.mean(weights * (targets - v) ** 2, axis=1))
        v_mean = v.mean(axis=0)
        return loss, {
            "value/loss": loss,
            "value/v_mean": v_mean.mean(),
            "value/v_max": v_mean.max(),
            "value/v_min": v_mean.min(),
        }

    def awr_weights(self, observations, next_observations, goals, alpha) -> tuple[jax.Array, jax.Array]:
        """``(min(exp(alpha (V(s_next, g) - V(s, g))), 100), advantages)`` with the online value (held fixed)."""
        advantages = self.value(next_observations, goals) - self.value(observations, goals)  # [B]
        return jnp.minimum(jnp.exp(alpha * advantages), 100.0), advantages

    def actor_losses(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """AWR of the high-level policy (subgoal representations) and the low-level policy (actions)."""
        nets, observations = self.networks, batch["observations"]

        high_weights, high_adv = self.awr_weights(
            observations, batch["actor_subgoal_observations"], batch["actor_goals"], self.config.high_alpha
        )
        targets = jax.lax.stop_gradient(self.subgoal_reps(params, observations, batch["actor_subgoals"]))
        high_dist = nets["high_actor"].apply(params["high_actor"], observations, batch["actor_goals"])
        high_log_prob = high_dist.log_prob(targets)
        high_loss = -jnp.mean(high_weights * high_log_prob)

        low_weights, low_adv = self.awr_weights(
            observations, batch["next_observations"], batch["low_goals"], self.config.low_alpha
        )
        reps = self.subgoal_reps(params, observations, batch["low_goals"])
        if not self.config.low_actor_rep_grad:
            reps = jax.lax.stop_gradient(reps)
        low_dist = nets["low_actor"].apply(params["low_actor"], observations, reps)
        low_log_prob = low_dist.log_prob(batch["actions"])
        low_loss = -jnp.mean(low_weights * low_log_prob)
        return high_loss + low_loss, {
            "high_actor/loss": high_loss,
            "high_actor/adv_mean": high_adv.mean(),
            "high_actor/mse": jnp.mean((high_dist.mode() - targets) ** 2),
            "low_actor/loss": low_loss,
            "low_actor/adv_mean": low_adv.mean(),
            "low_actor/mse": jnp.mean((low_dist.mode() - batch["actions"]) ** 2),
        }

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Value + both actors; gradients flow only into ``params``. Returns ``(loss, info)`` (``key`` is unused)."""
        value_loss, value_info = self.value_loss(batch, params)
        actor_loss, actor_info = self.actor_losses(batch, params)
        return value_loss + actor_loss, {**value_info, **actor_info}

    def update(self, batch: dict) -> tuple[HIQLAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target value. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def sample_subgoals(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Subgoal representations ``[B, rep_dim]`` (``[B, goal_dim]`` without ``use_rep``) from ``pi_h``."""
        dist = self.networks["high_actor"].apply(self.params["high_actor"], observations, goals)
        subgoals = dist.sample(key, self.config.temperature)
        return length_normalize(subgoals) if self.config.use_rep else subgoals

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]``: a subgoal representation from ``pi_h``, then an action from ``pi_l``."""
        high_key, low_key = jax.random.split(key)
        subgoals = self.sample_subgoals(observations, goals, high_key)
        dist = self.networks["low_actor"].apply(self.params["low_actor"], observations, subgoals)
        return jnp.clip(dist.sample(low_key, self.config.temperature), -1.0, 1.0)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g) = mean_j V_j`` ``[B]`` in reward units."""
        return self.values(self.params, observations, goals).mean(axis=0)
