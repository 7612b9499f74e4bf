"""n-step goal-conditioned SAC+BC.

A horizon-reduction method of "Horizon Reduction Makes RL Scalable" (Park et al. 2025): goal-conditioned SAC+BC
(:mod:`scalerl.agents.sacbc`, reused by import) whose critic bootstraps from the state ``n`` steps ahead
(uncorrected n-step returns over the dataset's action chunk), shortening the value horizon by ``n``::

    critic: L(Q_j) = E[ BCE(Q_j(s, a, g), y) ],  j = 1, 2
            y = clip(R_n + gamma^{n_t} m_n agg_j sigmoid(Qbar_j(s_{t+n}, a', g)), 0, 1),  a' ~ pi(. | s_{t+n}, g)
    actor:  L(pi) = E[ lambda log pi(a~ | s, g_a) - mean_j Q_j(s, a~, g_a) ]
                    + alpha * stopgrad(E|mean_j Q_j|) * E[ ||a~ - a||^2 ],          a~ ~ pi(. | s, g_a)
    entropy: L(lambda) = lambda (H - H_target),  H = -E[log pi(a~ | s, g_a)],  H_target = -0.5 dim(A)

``R_n`` is the discounted reward collected in the chunk (up to and including the first success), ``m_n`` is 0 if the
goal was reached inside it and ``n_t <= n`` the real steps taken (fewer at a trajectory's end); ``agg`` is ``min``
or ``mean`` (``q_agg``), ``Qbar`` a Polyak average of the critic and ``Q_j`` the critic's logits. Everything but the
critic's target is SAC+BC's: the n-step chunk is handed to SAC+BC's critic loss as a one-step transition whose mask
carries the extra discount (:func:`nstep_transition`). With ``nstep = 1`` this is SAC+BC.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl.agents import sacbc
from scalerl.agents.sacbc import SACBCAgent, SACBCConfig


@dataclasses.dataclass(frozen=True)
class NSACBCConfig:
    """Hyper-parameters of n-step SAC+BC (defaults: Park et al. 2025, tuned on puzzle-4x5)."""

    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 1024
    """Transitions per gradient update."""
    hidden_dims: tuple[int, ...] = (1024, 1024, 1024, 1024)
    """Hidden layer sizes of the critic and actor MLPs."""
    layer_norm: bool = True
    """Layer norm after each hidden activation (critic and actor)."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    nstep: int = 25
    """Steps of the return before bootstrapping (the paper's ``subgoal_steps`` flag: 25 for puzzles, 50 for
    cube-octuple and humanoidmaze)."""
    num_qs: int = 2
    """Critics in the ensemble."""
    q_agg: str = "min"
    """How the target (and :meth:`NSACBCAgent.value`) aggregates the ensemble: ``min`` or ``mean`` (humanoidmaze)."""
    alpha: float = 0.1
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
    value_p_curgoal: float = 0.2
    """Probability that a value goal is the current state."""
    value_p_trajgoal: float = 0.5
    """Probability that a value goal is a future state of the same trajectory."""
    value_p_randomgoal: float = 0.3
    """Probability that a value goal is a random dataset state."""
    value_geom_sample: bool = False
    """Draw same-trajectory value goals with geometric offsets (True) or uniformly over the rest of the trajectory."""
    actor_p_curgoal: float = 0.0
    """Probability that an actor goal is the current state."""
    actor_p_trajgoal: float = 0.5
    """Probability that an actor goal is a future state of the same trajectory."""
    actor_p_randomgoal: float = 0.5
    """Probability that an actor goal is a random dataset state."""
    actor_geom_sample: bool = True
    """Draw same-trajectory actor goals with geometric offsets (True) or uniformly."""
    discount: float = 0.999
    """Discount factor per environment step (an n-step transition is discounted by discount**n)."""
    gc_negative: bool = False
    """Rewards ``1(s == g) - 1`` instead of ``1(s == g)`` (only with ``value_loss='squared'``)."""
    goal_rep: str = "observation"
    """Goal representation: ``observation`` (full states) or ``oracle`` (the dataset's oracle representations)."""

    def __post_init__(self):
        SACBCConfig.__post_init__(self)
        if self.nstep < 1:
            raise ValueError(f"nstep: expected >= 1, got {self.nstep}")


def nstep_transition(batch: dict, discount: float) -> dict:
    """The batch's n-step chunk as a one-step transition, for a one-step TD target ``r + discount * m * V(s')``.

    ``rewards <- R_n``, ``next_observations <- s_{t+n_t}`` and ``masks <- m_n * discount^(n_t - 1)``, so that the
    one-step target is the n-step target ``R_n + discount^{n_t} m_n V(s_{t+n_t})`` (Sutton & Barto 2018, ch. 7).
    Batches without chunks (``nstep = 1``) are returned unchanged.
    """
    if "nstep_rewards" not in batch:
        return batch
    extra_discount = discount ** (batch["nstep_steps"].astype(jnp.float32) - 1.0)
    return {
        **batch,
        "rewards": batch["nstep_rewards"],
        "masks": batch["nstep_masks"] * extra_discount,
        "next_observations": batch["nstep_next_observations"],
    }


class NSACBCAgent(struct.PyTreeNode):
    """n-step SAC+BC agent: :class:`~scalerl.agents.sacbc.SACBCAgent` with an n-step critic target.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"critic", "actor"}`` plus ``"log_entropy_coef"`` (a scalar) when the coefficient is tuned.
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`NSACBCConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: NSACBCConfig = struct.field(pytree_node=False)

    # SAC+BC's networks, actor and entropy losses, update, acting and read-outs, reused as they are.
    create = classmethod(SACBCAgent.create.__func__)
    to_reward_units = SACBCAgent.to_reward_units
    actor_loss = SACBCAgent.actor_loss
    total_loss = SACBCAgent.total_loss
    update = SACBCAgent.update
    sample_actions = SACBCAgent.sample_actions
    q_value = SACBCAgent.q_value
    value = SACBCAgent.value

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return sacbc.build_networks(self.config, self.action_dim)

    def critic_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """SAC+BC's critic loss on the n-step chunk: the target bootstraps ``n_t`` steps ahead."""
        return SACBCAgent.critic_loss(self, nstep_transition(batch, self.config.discount), params, key)
