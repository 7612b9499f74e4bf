"""Goal-conditioned flow Q-learning (FQL).

"Flow Q-Learning" (Park, Li & Levine 2025) in OGBench's goal-conditioned setting, as in the horizon-reduction
reference implementation (Park et al. 2025). Three networks: a flow BC policy (velocity field ``v(s, g, x_t, t)``), a
one-step policy ``mu(s, g, z)`` that maps noise ``z ~ N(0, I)`` to an action in one forward pass, and a ``num_qs``
critic ensemble with Polyak-averaged targets ``Qbar_j``. The one-step policy is distilled from the flow policy and
trained to maximise Q; the flow policy never sees Q, so the expressive BC model is not destabilised::

    critic:  L(Q_j) = E[ l(Q_j(s, a, g), y) ],  y = clip(r + gamma * m * agg_j Qbar_j(s', a', g)),
             a' = clip(mu(s', g, z'))
    flow BC: L(v)  = E || v(s, g_a, x_t, t) - (a - x_0) ||^2,   x_t = (1 - t) x_0 + t a
    one-step: L(mu) = alpha * E || mu(s, g_a, z) - stopgrad(ODE_v(s, g_a, z)) ||^2
                      - E[ Q(s, clip(mu(s, g_a, z)), g_a) ] / stopgrad(E|Q|)

with ``ODE_v(z)`` the flow policy's action from noise ``z`` (``flow_steps`` Euler steps, clipped to ``[-1, 1]``),
``Q = mean_j Q_j`` (the raw critic output: logits under the BCE loss) and ``agg`` the ``q_agg`` aggregation. The
critic loss ``l`` and the target range are as in SAC+BC (:mod:`scalerl.agents.sacbc`). Actions come from the one-step
policy on fresh noise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, aggregate, clipped_td_loss, optimizer, polyak_update
from scalerl.agents.config import AgentConfig, TargetNetworkConfig
from scalerl.networks import MLP, GCValue, VelocityField, euler_sample
from scalerl.sampling import RewardConfig, ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class FQLConfig(RewardConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of goal-conditioned FQL (defaults: the horizon-reduction implementation, Park et al. 2025)."""

    num_qs: int = 2
    """Critics in the ensemble."""
    q_agg: str = "min"
    """How the target (and :meth:`FQLAgent.value`) aggregates the ensemble: ``min`` or ``mean``."""
    alpha: float = 3.0
    """Weight of the distillation loss (the BC strength of the one-step policy); tuned per task in the paper."""
    flow_steps: int = 10
    """Euler steps of the flow BC policy when it produces distillation targets."""
    value_loss: str = "bce"
    """Critic loss: ``bce`` (logits of a success probability; needs 0/1 rewards) or ``squared``."""

    RANGES = {"num_qs": ">= 1", "alpha": ">= 0", "flow_steps": ">= 1"}

    def __post_init__(self):
        super().__post_init__()
        if self.q_agg not in ("min", "mean"):
            raise ValueError(f"q_agg: expected 'min' or 'mean', got '{self.q_agg}'")
        if self.value_loss not in ("bce", "squared"):
            raise ValueError(f"value_loss: expected 'bce' or 'squared', got '{self.value_loss}'")
        if self.value_loss == "bce" and self.gc_negative:
            raise ValueError("value_loss='bce' needs 0/1 rewards: set gc_negative to False or value_loss='squared'")


def build_networks(config: FQLConfig, action_dim: int) -> dict:
    """``critic`` (``num_qs`` Q(s, a, g) heads), ``flow_actor`` v(s, g, x_t, t) and ``onestep_actor`` (an MLP on
    ``[s, g, z]``)."""
    return {
        "critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=config.num_qs),
        "flow_actor": VelocityField(config.hidden_dims, output_dim=action_dim, layer_norm=config.layer_norm),
        "onestep_actor": MLP((*config.hidden_dims, action_dim), layer_norm=config.layer_norm),
    }


class FQLAgent(struct.PyTreeNode):
    """Goal-conditioned FQL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"critic", "flow_actor", "onestep_actor"}`` (optimised).
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`FQLConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: FQLConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: FQLConfig) -> FQLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, critic_key, flow_key, onestep_key = jax.random.split(key, 4)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        networks = build_networks(config, actions.shape[-1])
        params = {
            "critic": networks["critic"].init(critic_key, observations, goals, actions),
            "flow_actor": networks["flow_actor"].init(flow_key, observations, goals, actions, actions[..., :1]),
            "onestep_actor": networks["onestep_actor"].init(
                onestep_key, jnp.concatenate([observations, goals, actions], axis=-1)
            ),
        }
        return cls(
            rng=rng,
            params=params,
            target_params={"critic": params["critic"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            config=config,
        )

    def onestep_actions(self, params: dict, observations: jax.Array, goals: jax.Array, noise: jax.Array):
        """The one-step policy ``mu(s, g, z)`` ``[B, A]`` (unclipped) with the given actor parameters."""
        inputs = jnp.concatenate([observations, goals, noise], axis=-1)
        return self.networks["onestep_actor"].apply(params["onestep_actor"], inputs)

    def flow_actions(self, observations: jax.Array, goals: jax.Array, noise: jax.Array) -> jax.Array:
        """The flow BC policy's actions ``[B, A]`` from ``noise`` (Euler integration, clipped to ``[-1, 1]``)."""
        flow_actor = self.networks["flow_actor"]
        actions = euler_sample(
            lambda x, t: flow_actor.apply(self.params["flow_actor"], observations, goals, x, t),
            noise,
            self.config.flow_steps,
        )
        return jnp.clip(actions, -1.0, 1.0)

    def to_reward_units(self, critic_outputs: jax.Array) -> jax.Array:
        """Critic outputs as values: ``sigmoid`` of the logits under the BCE loss, unchanged otherwise."""
        return jax.nn.sigmoid(critic_outputs) if self.config.value_loss == "bce" else critic_outputs

    def critic_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """TD regression of every head toward the clipped target with the one-step policy's next action."""
        nets, config = self.networks, self.config
        goals, next_observations = batch["value_goals"], batch["next_observations"]
        noise = jax.random.normal(key, batch["actions"].shape)
        next_actions = jnp.clip(self.onestep_actions(self.params, next_observations, goals, noise), -1.0, 1.0)
        next_q = nets["critic"].apply(self.target_params["critic"], next_observations, goals, next_actions)
        next_v = aggregate(self.to_reward_units(next_q), config.q_agg)  # [B]
        q = nets["critic"].apply(params["critic"], batch["observations"], goals, batch["actions"])  # [E, B]
        loss, target = clipped_td_loss(
            q, batch["rewards"], batch["masks"], next_v, config.discount, config.gc_negative, config.value_loss
        )
        return loss, {
            "critic/loss": loss,
            "critic/q_mean": self.to_reward_units(q).mean(),
            "critic/target_mean": target.mean(),
        }

    def actor_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Flow BC of the flow policy; distillation into, and Q maximisation by, the one-step policy."""
        nets = self.networks
        flow_key, noise_key = jax.random.split(key)
        observations, goals, actions = batch["observations"], batch["actor_goals"], batch["actions"]

        def velocity_fn(noisy, times):
            return nets["flow_actor"].apply(params["flow_actor"], observations, goals, noisy, times)

        flow_loss = losses.flow_matching_loss(velocity_fn, flow_key, actions)
        noise = jax.random.normal(noise_key, actions.shape)
        targets = jax.lax.stop_gradient(self.flow_actions(observations, goals, noise))
        onestep = self.onestep_actions(params, observations, goals, noise)  # [B, A]
        distill_loss = jnp.mean((onestep - targets) ** 2)
        q = nets["critic"].apply(self.params["critic"], observations, goals, jnp.clip(onestep, -1.0, 1.0)).mean(0)
        q_loss = -q.mean() / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
        loss = flow_loss + self.config.alpha * distill_loss + q_loss
        return loss, {
            "actor/loss": loss,
            "actor/flow_loss": flow_loss,
            "actor/distill_loss": distill_loss,
            "actor/q_loss": q_loss,
            "actor/q_mean": q.mean(),
        }

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Critic + both policies' losses; gradients flow only into ``params``. Returns ``(loss, info)``."""
        critic_key, actor_key = jax.random.split(key)
        critic_loss, critic_info = self.critic_loss(batch, params, critic_key)
        actor_loss, actor_info = self.actor_loss(batch, params, actor_key)
        return critic_loss + actor_loss, {**critic_info, **actor_info}

    def update(self, batch: dict) -> tuple[FQLAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target critic. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` from the one-step policy on fresh noise."""
        noise = jax.random.normal(key, (*observations.shape[:-1], self.action_dim))
        return jnp.clip(self.onestep_actions(self.params, observations, goals, noise), -1.0, 1.0)

    def q_value(self, observations: jax.Array, actions: jax.Array, goals: jax.Array) -> jax.Array:
        """``agg_j Q_j(s, a, g)`` ``[B]`` in reward units."""
        q = self.networks["critic"].apply(self.params["critic"], observations, goals, actions)
        return aggregate(self.to_reward_units(q), self.config.q_agg)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g) = agg_j Q_j(s, mu(s, g, 0), g)`` ``[B]`` in reward units: the critic at the noise-free action."""
        noise = jnp.zeros((*observations.shape[:-1], self.action_dim))
        actions = jnp.clip(self.onestep_actions(self.params, observations, goals, noise), -1.0, 1.0)
        return self.q_value(observations, actions, goals)
