"""OPEX (test-time action improvement): on a toy critic against hand-computed step lengths, on a real agent's critic
(weights untouched), and which agents it applies to."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.agents import AGENTS
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig, check_opex_supported, improve_actions, supports_opex
from tests.agents.tiny import tiny_agent


def toy_q(observations, actions, goals):
    """``Q = -||a - g||^2 - 1``: highest at ``a = g``."""
    return -jnp.sum((actions - goals) ** 2, axis=-1) - 1.0


def test_opex_climbs_a_toy_critic_state_by_state():
    observations = jnp.zeros((4, 1))
    goals = jnp.array([[0.5, -0.5], [0.9, 0.9], [-0.2, 0.1], [2.0, 0.0]])  # the last optimum lies outside [-1, 1]
    actions = jnp.zeros((4, 2))
    improved = jax.jit(improve_actions, static_argnums=(0, 4))(
        toy_q, observations, actions, goals, OpexConfig(steps=3, lr=0.05)
    )
    assert np.all(np.asarray(toy_q(observations, improved, goals)) > np.asarray(toy_q(observations, actions, goals)))
    assert np.abs(improved).max() <= 1.0
    alone = improve_actions(toy_q, observations[1:2], actions[1:2], goals[1:2], OpexConfig(steps=3, lr=0.05))
    np.testing.assert_allclose(improved[1:2], alone, rtol=1e-6)
    unchanged = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=0, lr=0.05))
    np.testing.assert_array_equal(unchanged, actions)


def test_opex_step_lengths_normalised_and_raw():
    """Normalised: each step moves the action by exactly lr; raw: by lr * grad_a Q (the paper's plain form)."""
    observations, actions = jnp.zeros((2, 1)), jnp.zeros((2, 2))
    goals = jnp.array([[0.3, 0.4], [0.03, 0.04]])  # grad_a Q at a = 0 is 2 g: lengths 1.0 and 0.1
    unit = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=1, lr=0.05))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), [0.05, 0.05], rtol=1e-5)
    raw = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=1, lr=0.05, normalize=False))
    np.testing.assert_allclose(raw, 0.05 * 2 * goals, rtol=1e-5)


def test_opex_raises_the_agents_q_and_leaves_its_weights_untouched():
    from scalerl.offline.loop import make_policy_fn

    agent, batch = tiny_agent("gciql")
    agents = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), agent)  # two seeds, as in training
    before = jax.tree_util.tree_map(np.array, agents)
    observations = jnp.stack([batch["observations"]] * 2)
    goals = jnp.stack([batch["actor_goals"]] * 2)
    key = jax.random.PRNGKey(8)
    plain = make_policy_fn(agents)(observations, goals, key)
    improved = make_policy_fn(agents, OpexConfig(steps=5, lr=0.02))(observations, goals, key)
    q = jax.jit(agent.q_value)
    assert np.mean(q(observations[0], improved[0], goals[0]) > q(observations[0], plain[0], goals[0])) > 0.9
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.tree_util.tree_map(np.array, agents), before)


def test_opex_needs_a_critic_over_actions():
    assert supports_opex(AGENTS["gciql"][0]) and supports_opex(AGENTS["nsacbc"][0])
    assert not supports_opex(AGENTS["fbc"][0]) and not supports_opex(AGENTS["sharsa"][0])
    with pytest.raises(ScalerlError, match="--opex-steps: agent 'sharsa'") as error:
        check_opex_supported(AGENTS["sharsa"][0], "sharsa")
    assert "\n" not in str(error.value)
    with pytest.raises(ScalerlError, match="--opex-lr"):
        OpexConfig(steps=1, lr=-1.0)
