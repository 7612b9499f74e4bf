"""OPEX: on-the-fly policy extraction, a test-time policy improvement (Park et al. 2024).

"Is Value Learning Really the Main Bottleneck in Offline RL?" (Park, Frans, Levine, Kumar 2024) find that offline
RL is often limited by how the policy generalises to the states it meets at test time, and improve the action at
evaluation with the learned critic, without updating any weight. Starting from the policy's action ``a_0 = pi(s, g)``,
``steps`` gradient steps ascend the critic. The paper states OPEX as a gradient step on the action with a
coefficient (``a = pi(s) + beta * grad_a Q(s, a)``); scalerl offers that plain form (``normalize=False``,
``--opex-raw``) and, by default, a normalised step::

    a_{i+1} = clip(a_i + lr * grad_a Q(s, a_i, g) / ||grad_a Q(s, a_i, g)||, -1, 1)      (default)
    a_{i+1} = clip(a_i + lr * grad_a Q(s, a_i, g), -1, 1)                              (--opex-raw: the paper's form)

The default normalises the gradient per state, so each step moves the action by exactly ``lr`` (before clipping)
whatever the critic's scale: 0/1 success probabilities, whose gradients vanish far from the goal, and ``-1`` per
step values around ``-1 / (1 - gamma)`` take the same ``lr``. (Normalising by ``|Q|`` instead, the per-state form
of DDPG+BC's normalisation, blows up where a probability critic is near 0.) Each state's step depends only on its
own ``Q``, so a batch of evaluation episodes is improved exactly as each episode would be alone.

It applies to agents whose ``q_value(observations, actions, goals)`` scores primitive actions (GCIQL, n-step
SAC+BC, ...); hierarchical agents whose critic scores subgoals do not qualify.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

from scalerl.errors import ScalerlError


@dataclasses.dataclass(frozen=True)
class OpexConfig:
    """Test-time action improvement settings (hashable: a static argument of the jitted policy)."""

    steps: int = 1
    """Gradient steps on each action (0 disables OPEX)."""
    lr: float = 0.1
    """Length of each step in action space when ``normalize``; else the coefficient beta of the raw gradient."""
    normalize: bool = True
    """Normalise the action gradient to unit length per state (False: the plain ``a + lr * grad_a Q`` step)."""

    def __post_init__(self):
        if self.steps < 0:
            raise ScalerlError(f"--opex-steps: expected a non-negative integer, got {self.steps}")
        if self.lr < 0:
            raise ScalerlError(f"--opex-lr: expected a non-negative number, got {self.lr}")


def from_flags(steps: int, lr: float, normalize: bool = True) -> OpexConfig | None:
    """The :class:`OpexConfig` of ``--opex-steps`` / ``--opex-lr`` / ``--opex-raw``, or ``None`` when ``steps`` is 0."""
    config = OpexConfig(steps=steps, lr=lr, normalize=normalize)
    return config if config.steps > 0 else None


def supports_opex(agent_cls: type) -> bool:
    """Whether the agent has a critic over primitive actions: ``q_value(observations, actions, goals)``."""
    q_value = getattr(agent_cls, "q_value", None)
    return q_value is not None and list(inspect.signature(q_value).parameters)[1:3] == ["observations", "actions"]


def check_opex_supported(agent_cls: type, agent_name: str) -> None:
    """Raise a one-line ScalerlError when OPEX cannot improve this agent's actions."""
    if not supports_opex(agent_cls):
        raise ScalerlError(
            f"--opex-steps: agent '{agent_name}' has no critic over actions (q_value(observations, actions, goals)); "
            "OPEX needs one"
        )


def improve_actions(
    q_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    observations: jax.Array,
    actions: jax.Array,
    goals: jax.Array,
    config: OpexConfig,
) -> jax.Array:
    """``config.steps`` steps of ``a <- clip(a + lr * grad_a Q / ||grad_a Q||, -1, 1)`` (without the division when
    ``config.normalize`` is False). Pure and jittable.

    Args:
        q_fn: ``(observations [B, obs_dim], actions [B, A], goals [B, goal_dim]) -> Q [B]``.
        observations: ``[B, obs_dim]``.
        actions: ``[B, A]`` starting actions (the policy's).
        goals: ``[B, goal_dim]``.
        config: steps and step size.

    Returns:
        ``[B, A]`` improved actions in ``[-1, 1]``.
    """

    def total_q(candidate):
        # Summing over the batch keeps every state's gradient its own.
        return jnp.sum(q_fn(observations, candidate, goals))

    def step(_, candidate):
        grad = jax.grad(total_q)(candidate)  # [B, A]
        if config.normalize:
            grad = grad / (jnp.linalg.norm(grad, axis=-1, keepdims=True) + 1e-8)
        return jnp.clip(candidate + config.lr * grad, -1.0, 1.0)

    return jax.lax.fori_loop(0, config.steps, step, actions)


def opex_sample_actions(agent, observations: jax.Array, goals: jax.Array, key: jax.Array, config: OpexConfig | None):
    """``agent.sample_actions``, then :func:`improve_actions` with ``agent.q_value`` unless ``config`` is None."""
    actions = agent.sample_actions(observations, goals, key)
    if config is None:
        return actions
    return improve_actions(agent.q_value, observations, actions, goals, config)
