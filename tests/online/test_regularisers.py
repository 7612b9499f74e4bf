"""Online SAC's regularisers: decoupled weight decay (AdamW) and periodic resets (Nikishin et al. 2022)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scalerl.online import buffer as replay
from scalerl.online.loop import reset_key, update_many, updates_at, updates_before
from scalerl.online.sac import RESET_NETWORKS, SACAgent, SACConfig, sac_optimizer
from tests.online.test_loop import TINY_AGENT, _filled_buffer

RESETTING = dataclasses.replace(TINY_AGENT, reset_every=3, reset_networks="critic")


@pytest.fixture(scope="module")
def buffer() -> replay.ReplayBuffer:
    return _filled_buffer()


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def _fake_grads(params: dict, seed: int) -> dict:
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])


def _two_steps(tx: optax.GradientTransformation, params: dict) -> tuple[dict, optax.OptState]:
    """The second step's updates and the state after two steps of ``tx`` (the second with non-zero moments)."""
    state, update = tx.init(params), jax.jit(tx.update)
    for seed in range(2):
        updates, state = update(_fake_grads(params, seed), state, params)
    return updates, state


@pytest.fixture(scope="module")
def params() -> dict:
    return SACAgent.create(jax.random.PRNGKey(1), 3, 2, TINY_AGENT).params


def test_default_optimiser_is_plain_adam_bit_for_bit(params):
    """Weight decay 0 and no resets: one Adam over all parameters (``SACAgent.update`` steps with it), so a default
    run's parameters and checkpoint layout are those of runs made before these options."""
    ours, plain = _two_steps(sac_optimizer(TINY_AGENT), params), _two_steps(optax.adam(TINY_AGENT.lr), params)
    _assert_trees_equal(ours, plain)
    agent = SACAgent.create(jax.random.PRNGKey(1), 3, 2, TINY_AGENT)
    assert jax.tree.structure(agent.opt_state) == jax.tree.structure(optax.adam(1.0).init(params))


def test_weight_decay_is_decoupled_and_per_network(params):
    """AdamW: ``theta' = theta - lr * (adam direction + wd * theta)``, the critic and actor each with their own wd,
    the entropy coefficient never decayed."""
    critic_wd, actor_wd = 10.0, 20.0
    decaying = dataclasses.replace(TINY_AGENT, critic_weight_decay=critic_wd, actor_weight_decay=actor_wd)
    plain, _ = _two_steps(sac_optimizer(TINY_AGENT), params)
    decayed, _ = _two_steps(sac_optimizer(decaying), params)
    lr = TINY_AGENT.lr
    for group, wd in (("critic", critic_wd), ("actor", actor_wd), ("log_entropy_coef", 0.0)):
        for theta, a, b in zip(*(jax.tree.leaves(tree[group]) for tree in (params, plain, decayed))):
            np.testing.assert_allclose(b - a, -lr * wd * theta, rtol=1e-4, atol=1e-9)


@pytest.fixture(scope="module")
def trained() -> SACAgent:
    """A resetting agent after one optimiser step (non-zero Adam moments, counts 1)."""
    agent = SACAgent.create(jax.random.PRNGKey(1), 3, 2, RESETTING)
    updates, opt_state = jax.jit(sac_optimizer(RESETTING).update)(
        _fake_grads(agent.params, 0), agent.opt_state, agent.params
    )
    params = optax.apply_updates(agent.params, updates)
    return agent.replace(params=params, target_params={"critic": params["critic"]}, opt_state=opt_state)


@pytest.mark.parametrize("networks", sorted(RESET_NETWORKS))
def test_reset_reinitialises_the_chosen_groups(trained, networks):
    """Reset groups get a new agent's parameters and optimiser state (target critic included); the rest is kept."""
    agent = trained.replace(config=dataclasses.replace(RESETTING, reset_networks=networks))
    key = jax.random.PRNGKey(6)
    reset, fresh = agent.reset(key), SACAgent.create(key, 3, 2, agent.config)
    groups = RESET_NETWORKS[networks]
    for name in agent.params:
        expected = fresh if name in groups else agent
        _assert_trees_equal(reset.params[name], expected.params[name])
        _assert_trees_equal(reset.opt_state.inner_states[name], expected.opt_state.inner_states[name])
        # The trained agent differs from a new one in every group, so these checks bite.
        assert any(not np.array_equal(a, b) for a, b in zip(*(jax.tree.leaves(t.params[name]) for t in (agent, fresh))))
    _assert_trees_equal(reset.target_params, (fresh if "critic" in groups else agent).target_params)
    if networks == "both":  # a whole new agent, as Nikishin et al. 2022 and BRO make
        _assert_trees_equal(reset, fresh)


def test_fused_updates_reset_after_every_rth_update_of_the_run(buffer):
    """With R = 3, a call of 5 updates after ``first_update`` updates resets after the run's multiples of 3, mid-call
    or last, with :func:`reset_key` of that update's key; the scan index is shared by the vmapped seeds."""
    agent = SACAgent.create(jax.random.PRNGKey(1), 3, 2, RESETTING)
    keys = jax.random.split(jax.random.PRNGKey(2), 5)
    fused = jax.jit(update_many, static_argnums=3)

    def counts(first_update: int) -> dict:
        after, _ = fused(agent, buffer, keys, RESETTING.batch_size, jnp.int32(first_update))
        return after, {name: int(s.inner_state[0].count) for name, s in after.opt_state.inner_states.items()}

    # Updates 2..6: resets after 3 and 6, the last update; the critic is then exactly a new one from its key.
    after, count = counts(1)
    assert count == {"critic": 0, "actor": 5, "log_entropy_coef": 5}
    fresh = SACAgent.create(reset_key(keys[-1]), 3, 2, RESETTING)
    _assert_trees_equal((after.params["critic"], after.target_params), (fresh.params["critic"], fresh.target_params))
    # Updates 1..5: a reset after update 3, then two more updates; updates 6..10: after 6 and 9, then one more.
    assert counts(0)[1]["critic"] == 2 and counts(5)[1]["critic"] == 1


@pytest.mark.parametrize("utd", [0.25, 1.0, 2.5])
def test_updates_before_sums_the_schedule(utd):
    start = 7
    for step in range(60):
        assert updates_before(step, utd, start) == sum(updates_at(t, utd, start) for t in range(step))


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("reset_networks", "all", "--agent.reset-networks: expected one of 'critic', 'actor', 'both', got 'all'"),
        ("reset_every", -1, "--agent.reset-every: expected >= 0, got -1"),
        ("critic_weight_decay", -1e-4, "--agent.critic-weight-decay: expected >= 0, got -0.0001"),
    ],
)
def test_bad_settings_are_one_line_errors(field, value, expected):
    from scalerl.errors import ScalerlError

    with pytest.raises(ScalerlError) as error:
        SACConfig(**{field: value})
    assert str(error.value) == expected
