"""Double SHARSA: SHARSA plus a low-level SARSA value and critic that choose the low-level action.

"Horizon Reduction Makes RL Scalable" (Park et al. 2025). The high level is SHARSA's (:mod:`scalerl.agents.sharsa`,
whose agent and config this module subclasses): a subgoal-level SARSA value/critic and two flow BC policies, with
subgoals rejection-sampled by the high-level critic. Double SHARSA adds a one-step SARSA value and critic toward
nearby goals ``w`` in the goal representation, drawn geometrically with the low-level discount ``gamma_l = 1 - 1 / k``
(``k = subgoal_steps``)::

    high value:  L(V)   = E[ BCE(V(s, g), agg_j sigmoid(Qbar_j(s, w_t, g))) ]                (w_t: dataset subgoal)
    high critic: L(Q_j) = E[ BCE(Q_j(s, w_t, g), R_t + gamma^{k_t} m_t sigmoid(V(s_{t+k}, g))) ]      (as SHARSA)
    low value:   L(V_l)   = E[ BCE(V_l(s, w), agg_j sigmoid(Qbar_l,j(s, a, w))) ]              (a: dataset action)
    low critic:  L(Q_l,j) = E[ BCE(Q_l,j(s, a, w), r_w + gamma_l m_w sigmoid(V_l(s', w))) ]
    policies: flow BC of subgoals pi_h(w | s, g_a) and of actions pi_l(a | s, w_k)                   (as SHARSA)

``agg`` is ``min`` or ``mean`` over the two heads (``q_agg``; it shapes only the value targets), ``r_w = 1(s == w)``,
``m_w = 1 - r_w``. Acting: a subgoal is chosen among ``num_samples`` draws of ``pi_h`` by ``min_j Q_j`` (SHARSA), then
the action among ``num_samples`` draws of ``pi_l`` toward it by ``min_j Q_l,j(s, a, w)``; both rank by the minimum
whatever ``q_agg``, as the paper's code does.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from scalerl import losses
from scalerl.agents import sharsa
from scalerl.agents.common import optimizer
from scalerl.agents.sharsa import SHARSAAgent, SHARSAConfig, sarsa_value_loss
from scalerl.networks import GCValue, euler_sample
from scalerl.sampling import LowGoalConfig


@dataclasses.dataclass(frozen=True)
class DSHARSAConfig(LowGoalConfig, SHARSAConfig):
    """Hyper-parameters of double SHARSA: SHARSA's plus ``low_discount`` (defaults: Park et al. 2025, tuned on
    puzzle-4x5).

    ``low_discount = 0`` (the default) resolves to ``1 - 1 / subgoal_steps``; the low-level value goals use the
    ``value_p_*`` probabilities with geometric offsets of that discount.
    """

    def __post_init__(self):
        super().__post_init__()
        if self.low_discount == 0.0 and self.subgoal_steps < 2:
            raise ValueError(
                "subgoal_steps: expected >= 2 while low_discount is 0 (it resolves to 1 - 1 / subgoal_steps, and a "
                f"low discount of 0 would leave the low level without goals), got {self.subgoal_steps}"
            )
        if self.low_discount == 0.0:
            # Park et al. 2025 tie the low-level horizon to the subgoal distance; resolved here so the sampler sees it.
            object.__setattr__(self, "low_discount", 1.0 - 1.0 / self.subgoal_steps)


def build_networks(config: DSHARSAConfig, action_dim: int, goal_dim: int) -> dict:
    """SHARSA's modules plus ``low_value`` V_l(s, w) and ``low_critic`` two Q_l(s, a, w) heads (logits)."""
    return {
        **sharsa.build_networks(config, action_dim, goal_dim),
        "low_value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=1),
        "low_critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
    }


class DSHARSAAgent(SHARSAAgent):
    """Double SHARSA agent: :class:`~scalerl.agents.sharsa.SHARSAAgent` plus a low-level value and critic.

    SHARSA's high-level value and critic losses, flow BC losses, subgoal rejection sampling, read-outs and update
    (which moves every target network) are inherited as they are.

    Attributes:
        params: SHARSA's ``{"value", "critic", "high_actor", "low_actor"}`` plus ``{"low_value", "low_critic"}``.
        target_params: ``{"critic", "low_critic"}`` (Polyak averages, not optimised).
        config: the :class:`DSHARSAConfig`.
    """

    config: DSHARSAConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim, self.goal_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: DSHARSAConfig) -> DSHARSAAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, value_key, critic_key, high_key, low_key, low_value_key, low_critic_key = jax.random.split(key, 7)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        times = actions[..., :1]
        networks = build_networks(config, actions.shape[-1], goals.shape[-1])
        params = {
            "value": networks["value"].init(value_key, observations, goals),
            "critic": networks["critic"].init(critic_key, observations, goals, goals),
            "high_actor": networks["high_actor"].init(high_key, observations, goals, goals, times),
            "low_actor": networks["low_actor"].init(low_key, observations, goals, actions, times),
            "low_value": networks["low_value"].init(low_value_key, observations, goals),
            "low_critic": networks["low_critic"].init(low_critic_key, observations, goals, actions),
        }
        return cls(
            rng=rng,
            params=params,
            target_params={"critic": params["critic"], "low_critic": params["low_critic"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    def low_value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Low-level SARSA value ``V_l(s, w)`` toward the target low critic at the dataset action."""
        nets = self.networks
        observations, goals = batch["observations"], batch["low_value_goals"]
        target_q = nets["low_critic"].apply(self.target_params["low_critic"], observations, goals, batch["actions"])
        v_logits = nets["low_value"].apply(params["low_value"], observations, goals)  # [B]
        loss = jnp.mean(sarsa_value_loss(v_logits, target_q, self.config.q_agg))
        return loss, {"low_value/loss": loss, "low_value/v_mean": jax.nn.sigmoid(v_logits).mean()}

    def low_critic_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """One-step TD: BCE of both ``Q_l(s, a, w)`` heads toward ``r_w + gamma_l m_w sigmoid(V_l(s', w))``."""
        nets = self.networks
        observations, goals = batch["observations"], batch["low_value_goals"]
        next_v = jax.nn.sigmoid(nets["low_value"].apply(self.params["low_value"], batch["next_observations"], goals))
        target = batch["low_value_rewards"] + self.config.low_discount * batch["low_value_masks"] * next_v  # [B]
        q_logits = nets["low_critic"].apply(params["low_critic"], observations, goals, batch["actions"])  # [2, B]
        loss = jnp.sum(jnp.mean(losses.bce_with_logits(q_logits, target), axis=1))
        return loss, {"low_critic/loss": loss, "low_critic/q_mean": jax.nn.sigmoid(q_logits).mean()}

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Both levels' values and critics plus both policies; gradients flow only into ``params``."""
        parts = [
            self.value_loss(batch, params),
            self.critic_loss(batch, params),
            self.low_value_loss(batch, params),
            self.low_critic_loss(batch, params),
            self.actor_losses(batch, params, key),
        ]
        return sum(loss for loss, _ in parts), {k: v for _, info in parts for k, v in info.items()}

    def propose_actions(self, observations: jax.Array, subgoals: jax.Array, key: jax.Array) -> jax.Array:
        """``num_samples`` actions per state from the low-level flow policy, clipped: ``[N, B, A]``."""
        num = self.config.num_samples
        many_observations = jnp.broadcast_to(observations, (num, *observations.shape))  # [N, B, obs_dim]
        many_subgoals = jnp.broadcast_to(subgoals, (num, *subgoals.shape))  # [N, B, goal_dim]
        low_actor = self.networks["low_actor"]
        actions = euler_sample(
            lambda x, t: low_actor.apply(self.params["low_actor"], many_observations, many_subgoals, x, t),
            jax.random.normal(key, (num, *observations.shape[:-1], self.action_dim)),
            self.config.flow_steps,
        )
        return jnp.clip(actions, -1.0, 1.0)

    def choose_actions(self, observations: jax.Array, subgoals: jax.Array, key: jax.Array) -> jax.Array:
        """Low-level rejection sampling: the proposed action with the highest ``min_j Q_l,j``: ``[B, A]``."""
        candidates = self.propose_actions(observations, subgoals, key)  # [N, B, A]
        q = jax.vmap(self.low_q_value, in_axes=(None, 0, None))(observations, candidates, subgoals)  # [N, B]
        best = jnp.argmax(q, axis=0)  # [B]
        return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]``: the best of ``num_samples`` subgoals, then the best of as many actions."""
        high_key, low_key = jax.random.split(key)
        return self.choose_actions(observations, self.sample_subgoals(observations, goals, high_key), low_key)

    def low_q_value(self, observations: jax.Array, actions: jax.Array, subgoals: jax.Array) -> jax.Array:
        """Low-level ``min_j Q_l,j(s, a, w)`` ``[B]`` as a probability of reaching the subgoal ``w``."""
        q = self.networks["low_critic"].apply(self.params["low_critic"], observations, subgoals, actions)
        return jnp.min(jax.nn.sigmoid(q), axis=0)
