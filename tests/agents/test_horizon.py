"""Horizon-reduction agents: n-step SAC+BC's target against hand-computed numbers, the subgoals each hierarchical loss
reads, how hierarchical agents compose their levels when acting, SHARSA's head aggregation and double SHARSA's
low-level goals and rejection sampling, the heads subgoal rejection sampling ranks by, and HIQL's target value.
"""

import dataclasses
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.agents import AGENTS, sampler_config
from tests.agents.tiny import ACTION_DIM, BATCH, GOAL_DIM, tiny_agent


def test_nstep_transition_gives_the_hand_computed_nstep_target():
    from scalerl.agents.nsacbc import nstep_transition

    discount = 0.9
    batch = {
        "rewards": jnp.zeros(3),
        "masks": jnp.ones(3),
        "next_observations": jnp.zeros((3, 1)),
        "nstep_rewards": jnp.array([0.0, 0.81, 0.0]),  # the goal reached 2 steps ahead in the second chunk
        "nstep_masks": jnp.array([1.0, 0.0, 1.0]),
        "nstep_steps": jnp.array([3, 3, 2]),  # the third chunk is cut by its trajectory's end
        "nstep_next_observations": jnp.array([[1.0], [2.0], [3.0]]),
    }
    next_values = jnp.array([0.5, 0.7, 0.2])
    one_step = nstep_transition(batch, discount)
    targets = one_step["rewards"] + discount * one_step["masks"] * next_values
    np.testing.assert_allclose(targets, [0.9**3 * 0.5, 0.81, 0.9**2 * 0.2], rtol=1e-6)
    np.testing.assert_array_equal(one_step["next_observations"], batch["nstep_next_observations"])
    plain = {key: batch[key] for key in ("rewards", "masks", "next_observations")}
    assert nstep_transition(plain, discount) is plain


def test_nsacbc_critic_bootstraps_nstep_ahead_with_the_target_critic():
    agent, batch = tiny_agent("nsacbc", nstep=3)
    assert {"nstep_rewards", "nstep_masks", "nstep_steps", "nstep_next_observations"} <= set(batch)
    nets, config, key = agent.networks, agent.config, jax.random.PRNGKey(7)
    batch = {
        **batch,
        "nstep_rewards": jnp.full(BATCH, 0.25),
        "nstep_masks": jnp.tile(jnp.array([0.0, 1.0]), BATCH // 2),
        "nstep_steps": jnp.tile(jnp.array([3, 2]), BATCH // 2),
    }
    _, info = jax.jit(agent.critic_loss)(batch, agent.params, key)
    next_obs, goals = batch["nstep_next_observations"], batch["value_goals"]
    next_actions, _ = nets["actor"].apply(agent.params["actor"], next_obs, goals).sample_and_log_prob(key)
    next_q = nets["critic"].apply(agent.target_params["critic"], next_obs, goals, next_actions)
    next_q = jnp.min(jax.nn.sigmoid(next_q), axis=0)
    expected = 0.25 + config.discount ** batch["nstep_steps"] * batch["nstep_masks"] * next_q
    np.testing.assert_allclose(info["critic/target_mean"], np.clip(expected, 0, 1).mean(), rtol=1e-5)


@pytest.mark.parametrize("name", ["hfbc", "hiql"])
def test_hierarchical_losses_read_their_own_subgoals(name):
    """The high level learns the actor subgoal toward the actor goal, the low level acts toward ``low_goals``."""
    agent, batch = tiny_agent(name)
    loss = jax.jit(lambda batch: agent.total_loss(batch, agent.params, jax.random.PRNGKey(3))[1])
    base = loss(batch)

    def changed(key):
        info = loss({**batch, key: batch[key] + 1.0})
        return {level for level in ("high_actor", "low_actor") if info[f"{level}/loss"] != base[f"{level}/loss"]}

    assert changed("actor_subgoals") == {"high_actor"}
    assert changed("actor_goals") == {"high_actor"}
    assert changed("low_goals") == {"low_actor"}
    if name == "hiql":
        # The high-level advantage V(s_{t+k}, g_a) - V(s, g_a) reads the full state at the actor subgoal.
        assert changed("actor_subgoal_observations") == {"high_actor"}


def test_hfbc_acts_toward_a_sampled_subgoal():
    agent, batch = tiny_agent("hfbc")
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(4)

    @jax.jit
    def act(agent):
        high_key, low_key = jax.random.split(key)
        subgoals = agent.sample_subgoals(observations, goals, high_key)
        return (
            subgoals,
            agent.sample_low_actions(observations, subgoals, low_key),
            agent.sample_actions(observations, goals, key),
        )

    subgoals, composed, actions = act(agent)
    assert subgoals.shape == (BATCH, GOAL_DIM)
    np.testing.assert_allclose(actions, composed, rtol=1e-6)


def test_hiql_subgoals_are_normalised_representations_read_by_the_low_level():
    agent, batch = tiny_agent("hiql")
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(5)
    sample_subgoals = jax.jit(type(agent).sample_subgoals)
    subgoals = sample_subgoals(agent, observations, goals, key)
    assert subgoals.shape == (BATCH, 6)
    np.testing.assert_allclose(jnp.linalg.norm(subgoals, axis=-1), np.sqrt(6.0), rtol=1e-4)
    # Temperature 0 (OGBench's evaluation): the means, whatever the key, and they depend on the goal.
    np.testing.assert_allclose(sample_subgoals(agent, observations, goals, jax.random.PRNGKey(9)), subgoals, atol=1e-5)
    assert not np.allclose(sample_subgoals(agent, observations, goals[::-1], key), subgoals)
    low = agent.networks["low_actor"].apply(agent.params["low_actor"], observations, subgoals).mode()
    actions = jax.jit(agent.sample_actions)(observations, goals, key)  # the low level's mean at the subgoal
    np.testing.assert_allclose(actions, jnp.clip(low, -1, 1), rtol=1e-5, atol=1e-6)


def test_sharsa_q_agg_combines_the_critic_heads():
    """``q_agg = mean`` (the humanoidmaze-giant preset) averages the two heads; ``min`` (default) takes the lower."""
    agent, batch = tiny_agent("sharsa", q_agg="mean")
    heads = jax.nn.sigmoid(
        agent.networks["critic"].apply(
            agent.params["critic"], batch["observations"], batch["value_goals"], batch["low_goals"]
        )
    )
    mean = agent.q_value(batch["observations"], batch["low_goals"], batch["value_goals"])
    np.testing.assert_allclose(mean, heads.mean(axis=0), rtol=1e-5)
    low = agent.replace(config=dataclasses.replace(agent.config, q_agg="min"))
    np.testing.assert_allclose(
        low.q_value(batch["observations"], batch["low_goals"], batch["value_goals"]), heads.min(axis=0)
    )
    with pytest.raises(ValueError, match="q_agg"):
        dataclasses.replace(agent.config, q_agg="max")


def test_dsharsa_low_level_goals_use_the_low_discount():
    _, config_cls = AGENTS["dsharsa"]
    assert config_cls().low_discount == pytest.approx(1 - 1 / 25)
    assert config_cls(subgoal_steps=50).low_discount == pytest.approx(0.98)
    assert config_cls(subgoal_steps=50, low_discount=0.9).low_discount == 0.9
    assert sampler_config(config_cls(subgoal_steps=10)).low_discount == pytest.approx(0.9)
    _, batch = tiny_agent("dsharsa")
    assert batch["low_value_goals"].shape == (BATCH, GOAL_DIM)
    np.testing.assert_array_equal(batch["low_value_masks"], 1.0 - batch["low_value_rewards"])


def test_dsharsa_picks_the_argmax_q_low_level_action():
    agent, batch = tiny_agent("dsharsa")
    observations, subgoals, key = batch["observations"], batch["low_goals"], jax.random.PRNGKey(6)

    @jax.jit
    def choose(agent):
        candidates = agent.propose_actions(observations, subgoals, key)  # [N, B, A]
        q = jax.vmap(agent.low_q_value, in_axes=(None, 0, None))(observations, candidates, subgoals)  # [N, B]
        chosen = agent.choose_actions(observations, subgoals, key)
        return candidates, q, chosen

    candidates, q, chosen = choose(agent)
    assert candidates.shape == (6, BATCH, ACTION_DIM) and np.abs(candidates).max() <= 1.0
    best = np.asarray(q).argmax(axis=0)
    np.testing.assert_array_equal(chosen, np.asarray(candidates)[best, np.arange(BATCH)])
    assert len(np.unique(best)) > 1, "each state picks its own best action"


class _HandCritic:
    """A stand-in critic whose head ``j`` logit at subgoal ``w`` is ``w[j]``: ``[2, ...]``."""

    def apply(self, params, observations, goals, subgoals):
        return jnp.moveaxis(subgoals[..., :2], -1, 0)


@pytest.mark.parametrize("name", ["sharsa", "dsharsa"])
def test_subgoal_rejection_sampling_ranks_by_the_min_head_whatever_q_agg(name):
    """Park et al. 2025's ``sample_actions`` ranks subgoals by ``min`` of the two heads; ``q_agg`` shapes only the
    value target. Candidate A has heads (4, -1) (mean 1.5, min -1), B (0.3, 0.3): mean picks A, min picks B."""
    agent, batch = tiny_agent(name, q_agg="mean")
    candidate_a, candidate_b = jnp.array([4.0, -1.0, 0.0]), jnp.array([0.3, 0.3, 0.0])
    candidates = jnp.broadcast_to(jnp.stack([candidate_a, candidate_b])[:, None], (2, BATCH, GOAL_DIM))

    class HandPicked(type(agent)):
        @property
        def networks(self):
            return {**super().networks, "critic": _HandCritic()}

        def propose_subgoals(self, observations, goals, key):
            return candidates

    hand = HandPicked(**{field.name: getattr(agent, field.name) for field in dataclasses.fields(agent)})
    assert hand.config.q_agg == "mean"
    chosen = hand.sample_subgoals(batch["observations"], batch["actor_goals"], jax.random.PRNGKey(0))
    np.testing.assert_array_equal(chosen, jnp.broadcast_to(candidate_b, (BATCH, GOAL_DIM)))
    # q_agg still aggregates the value target's heads (and the q_value read-out).
    np.testing.assert_allclose(
        hand.q_value(batch["observations"], candidates[0], batch["actor_goals"]),
        np.full(BATCH, (jax.nn.sigmoid(4.0) + jax.nn.sigmoid(-1.0)) / 2),
        rtol=1e-6,
    )


def test_hiql_target_value_reads_the_online_goal_representation():
    """OGBench's HIQL: the target value network shares the online phi; only the value heads are Polyak-averaged."""
    agent, batch = tiny_agent("hiql")
    assert set(agent.target_params) == {"value"}
    updated, _ = jax.jit(lambda agent: agent.update(batch))(agent)
    assert set(updated.target_params) == {"value"}
    # The target moved toward the online heads by tau, from the initial heads.
    tau = agent.config.tau
    expected = jax.tree.map(
        lambda online, target: tau * online + (1 - tau) * target, updated.params["value"], agent.target_params["value"]
    )
    for actual, wanted in zip(jax.tree.leaves(updated.target_params["value"]), jax.tree.leaves(expected)):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-7)
    # The value loss's targets change with the online phi (self.params), not with a separate copy of it.
    params = agent.params
    moved_rep = jax.tree.map(lambda x: x + 0.5, params["goal_rep"])
    other = agent.replace(params={**params, "goal_rep": moved_rep})
    loss = jax.jit(lambda agent: agent.value_loss(batch, params)[0])
    assert float(loss(agent)) != float(loss(other))
    reps = agent.networks["goal_rep"].apply(moved_rep, batch["observations"], batch["value_goals"])
    direct = agent.networks["value"].apply(agent.target_params["value"], batch["observations"], reps)
    np.testing.assert_allclose(other.target_values(batch["observations"], batch["value_goals"]), direct, rtol=1e-6)
