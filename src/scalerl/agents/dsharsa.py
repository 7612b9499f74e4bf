"""Double SHARSA: SHARSA plus a low-level SARSA value and critic that choose the low-level action.

"Horizon Reduction Makes RL Scalable" (Park et al. 2025). The high level is SHARSA's (:mod:`scalerl.agents.sharsa`,
reused by import): a subgoal-level SARSA value/critic and two flow BC policies, with subgoals rejection-sampled by
the high-level critic. Double SHARSA adds a one-step SARSA value and critic toward nearby goals ``w`` in the goal
representation, drawn geometrically with the low-level discount ``gamma_l = 1 - 1 / k`` (``k = subgoal_steps``)::

    high value:  L(V)   = E[ BCE(V(s, g), agg_j sigmoid(Qbar_j(s, w_t, g))) ]                (w_t: dataset subgoal)
    high critic: L(Q_j) = E[ BCE(Q_j(s, w_t, g), R_t + gamma^{k_t} m_t sigmoid(V(s_{t+k}, g))) ]      (as SHARSA)
    low value:   L(V_l)   = E[ BCE(V_l(s, w), agg_j sigmoid(Qbar_l,j(s, a, w))) ]              (a: dataset action)
    low critic:  L(Q_l,j) = E[ BCE(Q_l,j(s, a, w), r_w + gamma_l m_w sigmoid(V_l(s', w))) ]
    policies: flow BC of subgoals pi_h(w | s, g_a) and of actions pi_l(a | s, w_k)                   (as SHARSA)

``agg`` is ``min`` or ``mean`` over the two heads (``q_agg``), ``r_w = 1(s == w)``, ``m_w = 1 - r_w``. Acting: a
subgoal is chosen among ``num_samples`` draws of ``pi_h`` by ``min_j Q_j`` (SHARSA), then the action among
``num_samples`` draws of ``pi_l`` toward it by ``min_j Q_l,j(s, a, w)``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents import sharsa
from scalerl.agents.sacbc import aggregate
from scalerl.agents.sharsa import SHARSAAgent
from scalerl.networks import GCValue, euler_sample


@dataclasses.dataclass(frozen=True)
class DSHARSAConfig:
    """Hyper-parameters of double SHARSA (defaults: Park et al. 2025, tuned on puzzle-4x5)."""

    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 1024
    """Transitions per gradient update."""
    hidden_dims: tuple[int, ...] = (1024, 1024, 1024, 1024)
    """Hidden layer sizes of both values, both critics and both flow policies."""
    layer_norm: bool = True
    """Layer norm after each hidden activation."""
    tau: float = 0.005
    """Polyak rate of both target critics."""
    q_agg: str = "min"
    """How the two target critic heads are combined in the value targets: ``min`` or ``mean`` (humanoidmaze)."""
    flow_steps: int = 10
    """Euler steps when sampling subgoals and actions."""
    num_samples: int = 32
    """Subgoals, and then actions, drawn per step; the one with the highest Q is kept at each level."""
    value_p_curgoal: float = 0.2
    """Probability that a value goal (either level) is the current state."""
    value_p_trajgoal: float = 0.5
    """Probability that a value goal (either level) is a future state of the same trajectory."""
    value_p_randomgoal: float = 0.3
    """Probability that a value goal (either level) is a random dataset state."""
    value_geom_sample: bool = False
    """Draw same-trajectory high-level value goals with geometric offsets (True) or uniformly (low level: always
    geometric with ``low_discount``)."""
    actor_p_curgoal: float = 0.0
    """Probability that an actor goal is the current state."""
    actor_p_trajgoal: float = 0.5
    """Probability that an actor goal is a future state of the same trajectory."""
    actor_p_randomgoal: float = 0.5
    """Probability that an actor goal is a random dataset state."""
    actor_geom_sample: bool = True
    """Draw same-trajectory actor goals with geometric offsets (True) or uniformly."""
    discount: float = 0.999
    """Discount factor per environment step of the high level (a subgoal transition is discounted by discount**k)."""
    low_discount: float = 0.0
    """Discount of the low-level value, also the parameter of its geometric goals; 0 means ``1 - 1 / subgoal_steps``."""
    subgoal_steps: int = 25
    """Steps between a state and its subgoal (the horizon reduction factor)."""
    goal_rep: str = "observation"
    """Goal (and subgoal) representation: ``observation`` (full states) or ``oracle`` (oracle representations)."""

    def __post_init__(self):
        if self.subgoal_steps < 1:
            raise ValueError(f"subgoal_steps: double SHARSA needs subgoal_steps >= 1, got {self.subgoal_steps}")
        if self.flow_steps < 1 or self.num_samples < 1:
            raise ValueError("flow_steps and num_samples: expected >= 1")
        if self.q_agg not in ("min", "mean"):
            raise ValueError(f"q_agg: expected 'min' or 'mean', got '{self.q_agg}'")
        if self.low_discount == 0.0:
            # Park et al. 2025 tie the low-level horizon to the subgoal distance; resolved here so the sampler sees it.
            object.__setattr__(self, "low_discount", 1.0 - 1.0 / self.subgoal_steps)


def sarsa_value_loss(v_logits: jax.Array, target_q_logits: jax.Array, q_agg: str) -> jax.Array:
    """``BCE(V, agg_j sigmoid(Qbar_j))`` per sample ``[B]``: the SARSA value regressed on the dataset action's critic.

    Args:
        v_logits: ``[B]`` value logits.
        target_q_logits: ``[E, B]`` target critic logits at the dataset action (or subgoal).
        q_agg: ``min`` or ``mean`` over the ``E`` heads.
    """
    return losses.bce_with_logits(v_logits, aggregate(jax.nn.sigmoid(target_q_logits), q_agg))


def build_networks(config: DSHARSAConfig, action_dim: int, goal_dim: int) -> dict:
    """SHARSA's modules plus ``low_value`` V_l(s, w) and ``low_critic`` two Q_l(s, a, w) heads (logits)."""
    return {
        **sharsa.build_networks(config, action_dim, goal_dim),
        "low_value": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=1),
        "low_critic": GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2),
    }


class DSHARSAAgent(struct.PyTreeNode):
    """Double SHARSA agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: SHARSA's ``{"value", "critic", "high_actor", "low_actor"}`` plus ``{"low_value", "low_critic"}``.
        target_params: ``{"critic", "low_critic"}`` (Polyak averages, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        goal_dim: goal (and subgoal) dimension (from the example batch).
        config: the :class:`DSHARSAConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    goal_dim: int = struct.field(pytree_node=False)
    config: DSHARSAConfig = struct.field(pytree_node=False)

    # SHARSA's high level and policies, reused as they are: the subgoal-level critic, both flow BC losses, subgoal
    # proposals and their rejection sampling by min_j Q_j, and the high-level value and critic read-outs.
    value_subgoals = staticmethod(SHARSAAgent.value_subgoals)
    critic_loss = SHARSAAgent.critic_loss
    actor_losses = SHARSAAgent.actor_losses
    propose_subgoals = SHARSAAgent.propose_subgoals
    sample_subgoals = SHARSAAgent.sample_subgoals
    value = SHARSAAgent.value
    q_value = SHARSAAgent.q_value

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
            opt_state=optax.adam(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """High-level SARSA value toward the target critic at the dataset subgoal, heads combined by ``q_agg``."""
        nets = self.networks
        target_q = nets["critic"].apply(
            self.target_params["critic"], batch["observations"], batch["value_goals"], self.value_subgoals(batch)
        )  # [2, B]
        v_logits = nets["value"].apply(params["value"], batch["observations"], batch["value_goals"])  # [B]
        loss = jnp.mean(sarsa_value_loss(v_logits, target_q, self.config.q_agg))
        v = jax.nn.sigmoid(v_logits)
        return loss, {"value/loss": loss, "value/v_mean": v.mean(), "value/v_max": v.max(), "value/v_min": v.min()}

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

    def update(self, batch: dict) -> tuple[DSHARSAAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of both target critics. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        grads, info = jax.grad(self.total_loss, argnums=1, has_aux=True)(batch, self.params, key)
        updates, opt_state = optax.adam(self.config.lr).update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        target_params = {
            name: losses.ema_update(params[name], target, self.config.tau)
            for name, target in self.target_params.items()
        }
        info["grad/norm"] = losses.global_norm(grads)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

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
