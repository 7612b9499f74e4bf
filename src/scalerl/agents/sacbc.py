"""Goal-conditioned SAC+BC.

Soft actor-critic (Haarnoja et al. 2018) with a behaviour-cloning term (Fujimoto & Gu 2021, as TD3+BC), the SAC+BC
baseline of "Horizon Reduction Makes RL Scalable" (Park et al. 2025) in OGBench's goal-conditioned setting. A
tanh-Gaussian policy and an ensemble of ``num_qs`` critics with Polyak-averaged targets ``Qbar_j``::

    critic: L(Q_j) = E[ l(Q_j(s, a, g), y) ],  y = clip(r + gamma * m * agg_j Qbar_j(s', a', g)),  a' ~ pi(. | s', g)
    actor:  L(pi)  = E[ lambda log pi(a~ | s, g_a) - Q(s, a~, g_a) ] + alpha * stopgrad(E|Q|) * E ||a~ - a||^2
    entropy (auto): L(lambda) = lambda * (H - H_target),  H = -E log pi(a~ | s, g_a),  H_target = -k * dim(A)

where ``a~ ~ pi(. | s, g_a)`` is reparameterised, ``agg`` is ``min`` or ``mean`` (``q_agg``), ``Q = mean_j Q_j`` is
the critic's raw output (the logit under the BCE loss), and ``lambda`` is the entropy coefficient: learned in log
space when ``auto_entropy`` (a Lagrange multiplier driving the entropy to ``H_target``) or fixed. The critic loss
``l`` is the BCE on logits whose sigmoid is the discounted success probability (``value_loss='bce'``, Park et al.
2025's default, with 0/1 rewards) or the squared error; the target is clipped to the range of possible returns,
``[0, 1]`` or ``[-1 / (1 - gamma), 0]`` with ``gc_negative``. As in the reference implementation the target has no
entropy bonus. Rewards and masks come from the sampler (``r = 1(s == g)``, ``m = 1 - 1(s == g)``).

The critic evaluates the agent's own stochastic policy, not the dataset's: the policy samples actions the data never
took and climbs the critic's extrapolation there, and the clipped double-Q target adds pessimism on them, so with a
small BC weight its values can sit a few hundredths off the dataset policy's (0.02-0.06 on the chain probes of
``tests/test_probes.py`` across seeds, against 0.002-0.012 with ``alpha = 10`` and a fixed small entropy coefficient).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl.agents.common import adam_step, aggregate, clipped_td_loss, optimizer, polyak_update
from scalerl.agents.config import AgentConfig, TargetNetworkConfig
from scalerl.networks import GaussianActor, GCValue
from scalerl.sampling import RewardConfig, ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class SACBCConfig(RewardConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of SAC+BC (defaults: Park et al. 2025; ``alpha`` and ``q_agg`` are tuned per task there)."""

    num_qs: int = 2
    """Critics in the ensemble."""
    q_agg: str = "min"
    """How the target (and :meth:`SACBCAgent.value`) aggregates the ensemble: ``min`` or ``mean``."""
    alpha: float = 0.3
    """BC coefficient (scaled by the mean |Q| of the batch, so it does not depend on the reward scale)."""
    value_loss: str = "bce"
    """Critic loss: ``bce`` (logits of a success probability; needs 0/1 rewards) or ``squared``."""
    auto_entropy: bool = True
    """Tune the entropy coefficient toward the target entropy (True) or keep it fixed at ``entropy_coef``."""
    entropy_coef: float = 1.0
    """The entropy coefficient lambda: its initial value when tuned, otherwise its fixed value."""
    target_entropy_multiplier: float = 0.5
    """Target entropy ``-target_entropy_multiplier * action_dim``."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: tanh of the mean, as the reference evaluates)."""

    RANGES = {
        "num_qs": ">= 1",
        "alpha": ">= 0",
        "entropy_coef": "> 0",  # tuned in log space
        "target_entropy_multiplier": "finite",
        "temperature": ">= 0",
    }

    def __post_init__(self):
        super().__post_init__()
        if self.q_agg not in ("min", "mean"):
            raise ValueError(f"q_agg: expected 'min' or 'mean', got '{self.q_agg}'")
        if self.value_loss not in ("bce", "squared"):
            raise ValueError(f"value_loss: expected 'bce' or 'squared', got '{self.value_loss}'")
        if self.value_loss == "bce" and self.gc_negative:
            raise ValueError("value_loss='bce' needs 0/1 rewards: set gc_negative to False or value_loss='squared'")


def build_networks(config: SACBCConfig, action_dim: int) -> dict:
    """``critic`` (``num_qs`` Q(s, a, g) heads) and ``actor`` (tanh-Gaussian with state-dependent std)."""
    return {
        "critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=config.num_qs),
        "actor": GaussianActor(
            config.hidden_dims,
            action_dim,
            layer_norm=config.layer_norm,
            tanh_squash=True,
            const_std=False,
            state_dependent_std=True,
        ),
    }


class SACBCAgent(struct.PyTreeNode):
    """Goal-conditioned SAC+BC agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"critic", "actor"}`` plus ``"log_entropy_coef"`` (a scalar) when the coefficient is tuned.
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`SACBCConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: SACBCConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: SACBCConfig) -> SACBCAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, critic_key, actor_key = jax.random.split(key, 3)
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
        if config.auto_entropy:
            params["log_entropy_coef"] = jnp.log(jnp.asarray(config.entropy_coef, jnp.float32))
        return cls(
            rng=rng,
            params=params,
            target_params={"critic": params["critic"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            config=config,
        )

    def to_reward_units(self, critic_outputs: jax.Array) -> jax.Array:
        """Critic outputs as values: ``sigmoid`` of the logits under the BCE loss, unchanged otherwise."""
        return jax.nn.sigmoid(critic_outputs) if self.config.value_loss == "bce" else critic_outputs

    def critic_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """TD regression of every head toward the clipped target with the policy's next action."""
        nets, config = self.networks, self.config
        goals = batch["value_goals"]
        next_dist = nets["actor"].apply(self.params["actor"], batch["next_observations"], goals)
        next_actions, _ = next_dist.sample_and_log_prob(key)
        next_q = nets["critic"].apply(self.target_params["critic"], batch["next_observations"], goals, next_actions)
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
        """Entropy-regularised Q maximisation plus the scaled BC term, and the entropy coefficient's own loss."""
        nets, config = self.networks, self.config
        observations, goals = batch["observations"], batch["actor_goals"]
        dist = nets["actor"].apply(params["actor"], observations, goals)
        actions, log_prob = dist.sample_and_log_prob(key)  # [B, A], [B]
        q = nets["critic"].apply(self.params["critic"], observations, goals, actions).mean(axis=0)  # [B]
        entropy = -jax.lax.stop_gradient(log_prob).mean()
        if config.auto_entropy:
            log_coef = params["log_entropy_coef"]
            coef = jnp.exp(jax.lax.stop_gradient(log_coef))
            target_entropy = -config.target_entropy_multiplier * self.action_dim
            coef_loss = jnp.exp(log_coef) * (entropy - target_entropy)
        else:
            coef, coef_loss = config.entropy_coef, 0.0
        sac_loss = jnp.mean(coef * log_prob - q)
        mse = jnp.sum((actions - batch["actions"]) ** 2, axis=-1).mean()
        bc_loss = config.alpha * mse * jax.lax.stop_gradient(jnp.abs(q).mean())
        loss = sac_loss + bc_loss + coef_loss
        return loss, {
            "actor/loss": loss,
            "actor/sac_loss": sac_loss,
            "actor/bc_loss": bc_loss,
            "actor/mse": mse,
            "actor/q_mean": q.mean(),
            "actor/entropy": entropy,
            "actor/entropy_coef": jnp.asarray(coef, jnp.float32),
        }

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Critic + actor (+ entropy coefficient) losses; gradients flow only into ``params``."""
        critic_key, actor_key = jax.random.split(key)
        critic_loss, critic_info = self.critic_loss(batch, params, critic_key)
        actor_loss, actor_info = self.actor_loss(batch, params, actor_key)
        return critic_loss + actor_loss, {**critic_info, **actor_info}

    def update(self, batch: dict) -> tuple[SACBCAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target critic. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)

    def q_value(self, observations: jax.Array, actions: jax.Array, goals: jax.Array) -> jax.Array:
        """``agg_j Q_j(s, a, g)`` ``[B]`` in reward units."""
        q = self.networks["critic"].apply(self.params["critic"], observations, goals, actions)
        return aggregate(self.to_reward_units(q), self.config.q_agg)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g) = agg_j Q_j(s, tanh(mu(s, g)), g)`` ``[B]`` in reward units: the critic at the policy's mode."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return self.q_value(observations, dist.mode(), goals)
