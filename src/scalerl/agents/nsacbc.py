"""n-step goal-conditioned SAC+BC.

A horizon-reduction method of "Horizon Reduction Makes RL Scalable" (Park et al. 2025): goal-conditioned SAC+BC
(:mod:`scalerl.agents.sacbc`, which this agent subclasses) whose critic bootstraps from the state ``n`` steps ahead
(uncorrected n-step returns over the dataset's action chunk), shortening the value horizon by ``n``::

    critic: L(Q_j) = E[ BCE(Q_j(s, a, g), y) ],  j = 1, 2
            y = clip(R_n + gamma^{n_t} m_n agg_j sigmoid(Qbar_j(s_{t+n}, a', g)), 0, 1),  a' ~ pi(. | s_{t+n}, g)
    actor:  L(pi) = E[ lambda log pi(a~ | s, g_a) - mean_j Q_j(s, a~, g_a) ]
                    + alpha * stopgrad(E|mean_j Q_j|) * E[ ||a~ - a||^2 ],          a~ ~ pi(. | s, g_a)
    entropy: L(lambda) = lambda (H - H_target),  H = -E[log pi(a~ | s, g_a)],  H_target = -0.5 dim(A)

``R_n`` is the discounted reward collected in the chunk (up to and including the first success), ``m_n`` is 0 if the
goal was reached inside it and ``n_t <= n`` the real steps taken (fewer at a trajectory's end); ``agg`` is ``min``
or ``mean`` (``q_agg``), ``Qbar`` a Polyak average of the critic and ``Q_j`` the critic's logits. Everything but the
critic's target is SAC+BC's, inherited: the n-step chunk is handed to SAC+BC's critic loss as a one-step transition
whose mask carries the extra discount (:func:`nstep_transition`). With ``nstep = 1`` this is SAC+BC.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from scalerl.agents.sacbc import SACBCAgent, SACBCConfig
from scalerl.sampling import NStepConfig


@dataclasses.dataclass(frozen=True)
class NSACBCConfig(NStepConfig, SACBCConfig):
    """Hyper-parameters of n-step SAC+BC: SAC+BC's plus ``nstep`` (defaults: Park et al. 2025, tuned on puzzle-4x5)."""

    alpha: float = 0.1


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


class NSACBCAgent(SACBCAgent):
    """n-step SAC+BC agent: :class:`~scalerl.agents.sacbc.SACBCAgent` whose critic target bootstraps ``n`` steps ahead.

    Its fields, networks, actor and entropy losses, update, acting and read-outs are SAC+BC's; ``config`` is an
    :class:`NSACBCConfig`.
    """

    config: NSACBCConfig = struct.field(pytree_node=False)

    def critic_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """SAC+BC's critic loss on the n-step chunk: the target bootstraps ``n_t`` steps ahead."""
        return super().critic_loss(nstep_transition(batch, self.config.discount), params, key)
