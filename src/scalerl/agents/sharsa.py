"""SHARSA: hierarchical flow BC with a subgoal-level SARSA value and rejection sampling.

"Horizon Reduction Makes RL Scalable" (Park et al. 2025), in OGBench's goal-conditioned setting (Park et al. 2024).
Both the value and the policy horizons are reduced by ``k = subgoal_steps``: values are learned over subgoal-level
transitions ``(s_t, w_t, s_{t+k})``, where ``w_t`` is the dataset state ``k`` steps ahead in the goal representation
(the goal itself when the goal is reached within ``k`` steps), and the policy is two flow BC policies::

    critic: L(Q_j) = E[ BCE(Q_j(s_t, w_t, g), y) ],  y = R_t + gamma^{k_t} * m_t * sigmoid(V(s_{t+k}, g))   (j = 1, 2)
    value:  L(V)   = E[ BCE(V(s_t, g), agg_j sigmoid(Qbar_j(s_t, w_t, g))) ]    (SARSA: dataset w_t; agg = min or mean)
    high-level policy: flow BC of w ~ pi_h(w | s, g_a)  (w = the actor subgoal k steps toward the actor goal g_a)
    low-level policy:  flow BC of a ~ pi_l(a | s, w)    (w = the state k steps ahead)

``V`` and ``Q`` output logits; ``sigmoid`` of them is the discounted probability of success. ``R_t`` is the discounted
0/1 reward collected inside the chunk (``gamma^j`` when the goal is reached ``j`` steps ahead, then ``m_t = 0``) and
``k_t <= k`` the number of steps actually taken (fewer at a trajectory's end). ``Qbar`` is a Polyak average of the
critic. Acting draws ``num_samples`` subgoals from ``pi_h``, keeps the one with the highest ``min_j Q_j(s, w, g)``
(rejection sampling; always the minimum, whatever ``agg``, as in the paper's code) and samples an action from ``pi_l``
toward it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, aggregate, optimizer, polyak_update
from scalerl.agents.config import AgentConfig, TargetNetworkConfig
from scalerl.networks import GCValue, VelocityField, euler_sample
from scalerl.sampling import SubgoalConfig, ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class SHARSAConfig(SubgoalConfig, ValueGoalConfig, TargetNetworkConfig, AgentConfig):
    """Hyper-parameters of SHARSA (defaults: Park et al. 2025)."""

    flow_steps: int = 10
    """Euler steps when sampling subgoals and actions."""
    num_samples: int = 32
    """Subgoals drawn from the high-level policy per action (double SHARSA: then as many actions from the low-level
    policy); the one with the highest Q is kept."""
    q_agg: str = "min"
    """How the value target combines the two critic heads: ``min`` or ``mean`` (humanoidmaze). Subgoal rejection
    sampling ranks by their minimum either way."""

    RANGES = {"flow_steps": ">= 1", "num_samples": ">= 1"}

    def __post_init__(self):
        super().__post_init__()
        if self.q_agg not in ("min", "mean"):
            raise ValueError(f"q_agg: expected 'min' or 'mean', got '{self.q_agg}'")


def sarsa_value_loss(v_logits: jax.Array, target_q_logits: jax.Array, q_agg: str) -> jax.Array:
    """``BCE(V, agg_j sigmoid(Qbar_j))`` per sample ``[B]``: the SARSA value regressed on the dataset action's critic.

    Args:
        v_logits: ``[B]`` value logits.
        target_q_logits: ``[E, B]`` target critic logits at the dataset action (or subgoal).
        q_agg: ``min`` or ``mean`` over the ``E`` heads.
    """
    return losses.bce_with_logits(v_logits, aggregate(jax.nn.sigmoid(target_q_logits), q_agg))


def build_networks(config: SHARSAConfig, action_dim: int, goal_dim: int) -> dict:
    """``value`` V(s, g), ``critic`` two Q(s, w, g) heads (logits), ``high_actor`` v(s, g, w_t, t), ``low_actor``."""
    return {
        "value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=1),
        "critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
        "high_actor": VelocityField(config.hidden_dims, output_dim=goal_dim, layer_norm=config.layer_norm),
        "low_actor": VelocityField(config.hidden_dims, output_dim=action_dim, layer_norm=config.layer_norm),
    }


class SHARSAAgent(struct.PyTreeNode):
    """SHARSA agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"value", "critic", "high_actor", "low_actor"}`` (optimised).
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        goal_dim: goal (and subgoal) dimension (from the example batch).
        config: the :class:`SHARSAConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    goal_dim: int = struct.field(pytree_node=False)
    config: SHARSAConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim, self.goal_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: SHARSAConfig) -> SHARSAAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, value_key, critic_key, high_key, low_key = jax.random.split(key, 5)
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
        }
        return cls(
            rng=rng,
            params=params,
            target_params={"critic": params["critic"]},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    @staticmethod
    def value_subgoals(batch: dict) -> jax.Array:
        """The dataset subgoal ``w_t`` of each value transition: the goal if reached inside the chunk, else k ahead."""
        reached = (batch["subgoal_masks"] == 0.0)[:, None]
        return jnp.where(reached, batch["value_goals"], batch["low_goals"])  # [B, goal_dim]

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """SARSA value: BCE of ``V(s, g)`` toward the target critic at the dataset subgoal."""
        nets = self.networks
        subgoals = self.value_subgoals(batch)
        target_q = nets["critic"].apply(
            self.target_params["critic"], batch["observations"], batch["value_goals"], subgoals
        )  # [2, B]
        v_logits = nets["value"].apply(params["value"], batch["observations"], batch["value_goals"])  # [B]
        loss = jnp.mean(sarsa_value_loss(v_logits, target_q, self.config.q_agg))
        v = jax.nn.sigmoid(v_logits)
        return loss, {"value/loss": loss, "value/v_mean": v.mean(), "value/v_max": v.max(), "value/v_min": v.min()}

    def critic_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Subgoal-level TD: BCE of both ``Q(s, w, g)`` heads toward ``R + gamma^k * m * sigmoid(V(s_{t+k}, g))``."""
        nets = self.networks
        next_v = jax.nn.sigmoid(
            nets["value"].apply(self.params["value"], batch["subgoal_observations"], batch["value_goals"])
        )
        bootstrap = self.config.discount ** batch["subgoal_steps_taken"].astype(jnp.float32)
        target = batch["subgoal_rewards"] + bootstrap * batch["subgoal_masks"] * jax.lax.stop_gradient(next_v)  # [B]
        subgoals = self.value_subgoals(batch)
        q_logits = nets["critic"].apply(
            params["critic"], batch["observations"], batch["value_goals"], subgoals
        )  # [2, B]
        loss = jnp.sum(jnp.mean(losses.bce_with_logits(q_logits, target), axis=1))
        return loss, {
            "critic/loss": loss,
            "critic/q_mean": jax.nn.sigmoid(q_logits).mean(),
            "critic/target_mean": target.mean(),
        }

    def actor_losses(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Flow BC of the high-level policy (subgoals toward actor goals) and the low-level policy (actions)."""
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

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Value + critic + both policies; gradients flow only into ``params``. Returns ``(loss, info)``."""
        value_loss, value_info = self.value_loss(batch, params)
        critic_loss, critic_info = self.critic_loss(batch, params)
        actor_loss, actor_info = self.actor_losses(batch, params, key)
        return value_loss + critic_loss + actor_loss, {**value_info, **critic_info, **actor_info}

    def update(self, batch: dict) -> tuple[SHARSAAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of the target critics. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def propose_subgoals(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """``num_samples`` subgoals per state from the high-level flow policy: ``[N, B, goal_dim]``."""
        num = self.config.num_samples
        many_observations = jnp.broadcast_to(observations, (num, *observations.shape))  # [N, B, obs_dim]
        many_goals = jnp.broadcast_to(goals, (num, *goals.shape))  # [N, B, goal_dim]
        high_actor = self.networks["high_actor"]
        return euler_sample(
            lambda x, t: high_actor.apply(self.params["high_actor"], many_observations, many_goals, x, t),
            jax.random.normal(key, (num, *goals.shape)),
            self.config.flow_steps,
        )

    def sample_subgoals(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Rejection sampling: of the proposed subgoals, the one with the highest :meth:`subgoal_scores`.
        ``[B, goal_dim]``."""
        candidates = self.propose_subgoals(observations, goals, key)  # [N, B, goal_dim]
        q = jax.vmap(self.subgoal_scores, in_axes=(None, 0, None))(observations, candidates, goals)  # [N, B]
        best = jnp.argmax(q, axis=0)  # [B]
        return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        high_key, low_key = jax.random.split(key)
        subgoals = self.sample_subgoals(observations, goals, high_key)
        noise = jax.random.normal(low_key, (*observations.shape[:-1], self.action_dim))
        actions = euler_sample(
            lambda x, t: self.networks["low_actor"].apply(self.params["low_actor"], observations, subgoals, x, t),
            noise,
            self.config.flow_steps,
        )
        return jnp.clip(actions, -1.0, 1.0)

    def subgoal_scores(self, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """``min_j Q_j(s, w, g)`` ``[B]`` (logits): how rejection sampling ranks subgoals ``w``.

        The minimum over the heads whatever ``q_agg``, which shapes only the value target (Park et al. 2025, as in
        the paper's ``sample_actions``).
        """
        q = self.networks["critic"].apply(self.params["critic"], observations, goals, subgoals)  # [2, B]
        return jnp.min(q, axis=0)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """High-level ``V(s, g)`` ``[B]`` as a probability (sigmoid of the logit)."""
        return jax.nn.sigmoid(self.networks["value"].apply(self.params["value"], observations, goals))

    def q_value(self, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """High-level ``agg_j Q_j(s, w, g)`` ``[B]`` as a probability (``agg``: ``q_agg``, min by default); the
        "action" is a subgoal ``w`` in goal space."""
        q = self.networks["critic"].apply(self.params["critic"], observations, goals, subgoals)
        return aggregate(jax.nn.sigmoid(q), self.config.q_agg)
