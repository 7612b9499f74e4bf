"""Contrastive RL (CRL).

"Contrastive Learning as Goal-Conditioned Reinforcement Learning" (Eysenbach et al. 2022), as implemented by OGBench
(Park et al. 2024) and used as a baseline by "Horizon Reduction Makes RL Scalable" (Park et al. 2025). The critic is
a score ``f(s, a, g) = phi(s, a)^T psi(g) / sqrt(d)`` trained to tell the goal ``g_i`` reached in the future of
``(s_i, a_i)`` (geometric offsets, so ``exp f`` estimates the discounted state occupancy up to a normaliser) from the
other goals of the batch::

    logits_ij = phi(s_i, a_i)^T psi(g_j) / sqrt(d)                                   (two independent (phi, psi) pairs)
    critic (binary NCE):     L = mean_ij BCE(logits_ij, 1(i == j))
    critic (symmetric InfoNCE): L = 1/2 mean_i CE(logits_i., i) + 1/2 mean_j CE(logits_.j, j)
    actor (DDPG+BC): L(pi) = -E[ Q(s, mu(s, g_a), g_a) ] / stopgrad(E|Q|) - alpha E[ log pi(a | s, g_a) ]
    actor (AWR):     L(pi) = -E[ min(exp(alpha (Q(s, a, g_a) - V(s, g_a))), 100) log pi(a | s, g_a) ]

with ``Q = min_j logits_j`` (the log of the occupancy ratio, as OGBench's ``actor_log_q``) and, for AWR only, a value
``V(s, g) = phi(s)^T psi(g) / sqrt(d)`` trained with the same contrastive loss without actions. No rewards, no
discounting in the loss: the discount only sets the geometric goal offsets. The scores are not in reward units, so
the agent exposes :meth:`CRLAgent.q_value` (logits) but no ``value``.
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
from scalerl.networks import BilinearValue, GaussianActor, bilinear_logits
from scalerl.sampling import ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class CRLConfig(ValueGoalConfig, AgentConfig):
    """Hyper-parameters of CRL (defaults: Park et al. 2025; OGBench uses 512x3 networks, discount 0.99, alpha 0.1).

    ``batch_size`` is also the number of contrastive candidates per row; the critic's goals are the value goals.
    """

    value_p_curgoal: float = 0.0
    value_p_trajgoal: float = 1.0
    """Probability that a critic goal is a future state of the same trajectory (the positive pairs)."""
    value_p_randomgoal: float = 0.0
    value_geom_sample: bool = True
    """Draw critic goals with geometric offsets (the discounted occupancy) or uniformly."""
    latent_dim: int = 1024
    """Size of the representations phi and psi."""
    actor_layer_norm: bool = True
    """Layer norm in the actor too (Park et al. 2025; OGBench's actor has none)."""
    contrastive_loss: str = "binary"
    """Critic loss: ``binary`` (NCE with sigmoid cross-entropy, OGBench) or ``symmetric`` (symmetric InfoNCE)."""
    actor_loss: str = "ddpgbc"
    """Policy extraction: ``ddpgbc`` (maximise Q plus a BC term) or ``awr`` (needs an extra contrastive V)."""
    alpha: float = 1.0
    """BC coefficient of DDPG+BC, or the AWR inverse temperature."""
    const_std: bool = True
    """Fix the actor's standard deviation to 1 (DDPG+BC then uses the mean action)."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: the mean action)."""

    RANGES = {"latent_dim": ">= 1", "alpha": ">= 0", "temperature": ">= 0"}

    def __post_init__(self):
        super().__post_init__()
        if self.contrastive_loss not in ("binary", "symmetric"):
            raise ValueError(f"contrastive_loss: expected 'binary' or 'symmetric', got '{self.contrastive_loss}'")
        if self.actor_loss not in ("awr", "ddpgbc"):
            raise ValueError(f"actor_loss: expected 'awr' or 'ddpgbc', got '{self.actor_loss}'")


def build_networks(config: CRLConfig, action_dim: int) -> dict:
    """``critic`` (two (phi(s, a), psi(g)) pairs), ``actor`` and, for AWR, ``value`` (one (phi(s), psi(g)) pair)."""
    networks = {
        "critic": BilinearValue(config.hidden_dims, config.latent_dim, config.layer_norm, num_ensembles=2),
        "actor": GaussianActor(
            config.hidden_dims, action_dim, layer_norm=config.actor_layer_norm, const_std=config.const_std
        ),
    }
    if config.actor_loss == "awr":
        networks["value"] = BilinearValue(config.hidden_dims, config.latent_dim, config.layer_norm, num_ensembles=1)
    return networks


class CRLAgent(struct.PyTreeNode):
    """CRL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"critic", "actor"}`` (plus ``"value"`` with AWR).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`CRLConfig`.
    """

    rng: jax.Array
    params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: CRLConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: CRLConfig) -> CRLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, critic_key, actor_key, value_key = jax.random.split(key, 4)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        networks = build_networks(config, actions.shape[-1])
        params = {
            "critic": networks["critic"].init(critic_key, observations, goals, actions),
            "actor": networks["actor"].init(actor_key, observations, goals),
        }
        if "value" in networks:
            params["value"] = networks["value"].init(value_key, observations, goals)
        return cls(
            rng=rng,
            params=params,
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            config=config,
        )

    def contrastive_loss(self, batch: dict, params: dict, name: str) -> tuple[jax.Array, dict]:
        """The contrastive loss of ``critic`` (with actions) or ``value`` (without) over all ``B x B`` pairs."""
        actions = batch["actions"] if name == "critic" else None
        phi, psi = self.networks[name].apply(params[name], batch["observations"], batch["value_goals"], actions)
        logits = bilinear_logits(phi, psi, pairwise=True)  # [E, B, B]
        if self.config.contrastive_loss == "binary":
            loss = losses.binary_nce_loss(logits)
        else:
            loss = losses.symmetric_infonce_loss(logits)
        mean_logits = logits.mean(axis=0)  # [B, B]
        positives = jnp.diagonal(mean_logits)
        size = mean_logits.shape[0]
        return loss, {
            f"{name}/loss": loss,
            f"{name}/logits_pos": positives.mean(),
            f"{name}/logits_neg": (mean_logits.sum() - positives.sum()) / (size * (size - 1)),
            f"{name}/categorical_accuracy": jnp.mean(jnp.argmax(mean_logits, axis=1) == jnp.arange(size)),
        }

    def actor_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """DDPG+BC or AWR policy extraction on actor goals (the critic, and the value, held fixed)."""
        nets = self.networks
        observations, goals, actions = batch["observations"], batch["actor_goals"], batch["actions"]
        dist = nets["actor"].apply(params["actor"], observations, goals)
        log_prob = dist.log_prob(actions)  # [B]
        info = {"actor/bc_log_prob": log_prob.mean(), "actor/mse": jnp.mean((dist.mode() - actions) ** 2)}
        if self.config.actor_loss == "awr":
            phi, psi = nets["value"].apply(self.params["value"], observations, goals)
            advantages = self.q_value(observations, actions, goals) - bilinear_logits(phi, psi)[0]  # [B]
            weights = jnp.minimum(jnp.exp(self.config.alpha * advantages), 100.0)
            loss = -jnp.mean(weights * log_prob)
            info.update({"actor/adv_mean": advantages.mean(), "actor/weight_mean": weights.mean()})
        else:
            policy_actions = dist.mode() if self.config.const_std else dist.sample(key)
            q = self.q_value(observations, jnp.clip(policy_actions, -1.0, 1.0), goals)  # [B]
            q_loss = -q.mean() / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
            bc_loss = -self.config.alpha * log_prob.mean()
            loss = q_loss + bc_loss
            info.update({"actor/q_loss": q_loss, "actor/bc_loss": bc_loss, "actor/q_mean": q.mean()})
        info["actor/loss"] = loss
        return loss, info

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Critic (+ value) + actor losses; returns ``(loss, info)``."""
        loss, info = self.contrastive_loss(batch, params, "critic")
        if self.config.actor_loss == "awr":
            value_loss, value_info = self.contrastive_loss(batch, params, "value")
            loss, info = loss + value_loss, {**info, **value_info}
        actor_loss, actor_info = self.actor_loss(batch, params, key)
        return loss + actor_loss, {**info, **actor_info}

    def update(self, batch: dict) -> tuple[CRLAgent, dict]:
        """One Adam step on :meth:`total_loss`. Pure; the training loop jits it."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        return self.replace(rng=rng, params=params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)

    def q_value(self, observations: jax.Array, actions: jax.Array, goals: jax.Array) -> jax.Array:
        """``min_j phi_j(s, a)^T psi_j(g) / sqrt(d)`` ``[B]``: a log occupancy ratio, *not* in reward units."""
        phi, psi = self.networks["critic"].apply(self.params["critic"], observations, goals, actions)
        return jnp.min(bilinear_logits(phi, psi), axis=0)
