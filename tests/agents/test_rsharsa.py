"""Recursive SHARSA: ``levels = 2`` is SHARSA bit for bit, ``levels = 1`` learns the probe values, each level reads its
own targets and acting chains the levels; the sampler's per-level targets against hand-computed rows."""

import dataclasses
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.agents import AGENTS, sampler_config
from scalerl.agents.rsharsa import RSHARSAAgent, RSHARSAConfig, level_names, levels_with_values
from scalerl.data import compact
from scalerl.errors import ScalerlError
from scalerl.networks import euler_sample
from scalerl.overrides import build_config, parse_overrides
from scalerl.sampling import GoalSamplerConfig, draw_indices, sample_batch
from tests.agents.test_probes import DISCOUNT, STEPS, VALUE_TOLERANCE, probe_config, probe_dataset
from tests.agents.tiny import BATCH, GOAL_DIM, random_dataset, tiny_config

FAST_COMPILE = {"xla_backend_optimization_level": 0}
"""XLA options of these tests' compiles: without LLVM's optimisations a compile takes about half the CPU time. The
tests check wiring, and equalities computed inside one compiled program."""
TRAIN_COMPILE = {"xla_backend_optimization_level": 1}
"""For the 800 training updates: LLVM's light optimisation level compiles in about 60% of the default's time and runs
as fast (level 0 runs four times slower)."""


def run_once(fn, *args, options=FAST_COMPILE):
    """``fn(*args)`` jitted and compiled with XLA ``options`` (arguments: pytrees of arrays)."""
    return jax.jit(fn).lower(*args).compile(options)(*args)


SMALL = {"hidden_dims": (8,), "batch_size": BATCH, "num_samples": 4, "flow_steps": 2, "subgoal_steps": 3}
"""Smaller than :data:`tests.agents.tiny.TINY` (one hidden layer, fewer flow steps): these tests check wiring, and
compile time grows with the layers."""


def test_levels_two_is_sharsa_bit_for_bit():
    """Same config, seeds and batch: after an update, the same parameters (by name), target critics, Adam state, key,
    update infos, read-outs and actions as SHARSA. Both agents run in one compiled program, where XLA merges what they
    compute alike (one compile's worth)."""
    sharsa_cls, sharsa_config_cls = AGENTS["sharsa"]
    sharsa_config = tiny_config(sharsa_config_cls, SMALL, q_agg="mean")
    config = tiny_config(RSHARSAConfig, SMALL, levels=2, q_agg="mean")
    dataset = random_dataset(0)

    def run(agent_cls, config):
        sampler = sampler_config(config)
        example = sample_batch(jax.random.PRNGKey(0), dataset, sampler, BATCH)
        agent = agent_cls.create(jax.random.PRNGKey(1), example, config)
        agent, infos = agent.update(sample_batch(jax.random.PRNGKey(2), dataset, sampler, BATCH))
        val = sample_batch(jax.random.PRNGKey(3), dataset, sampler, BATCH)
        observations, goals = val["observations"], val["value_goals"]
        key = jax.random.PRNGKey(4)
        return {
            "params": agent.params,
            "target_params": agent.target_params,
            "opt_state": agent.opt_state,
            "rng": agent.rng,
            "infos": infos,
            "actions": agent.sample_actions(observations, val["actor_goals"], key),
            "value": agent.value(observations, goals),
            "q_value": agent.q_value(observations, val["actor_subgoals"], goals),
        }

    sharsa, recursive = run_once(lambda: (run(sharsa_cls, sharsa_config), run(RSHARSAAgent, config)))
    assert set(recursive["params"]) == {"value", "critic", "high_actor", "low_actor"}
    assert jax.tree_util.tree_structure(recursive) == jax.tree_util.tree_structure(sharsa)
    for (path, mine), theirs in zip(jax.tree_util.tree_leaves_with_path(recursive), jax.tree_util.tree_leaves(sharsa)):
        np.testing.assert_array_equal(mine, theirs, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def flat_probe():
    """``levels = 1`` trained on the probe dataset (:mod:`tests.agents.test_probes`), then read out in the same jit."""
    config = dataclasses.replace(probe_config(RSHARSAConfig), levels=1)
    sampler = sampler_config(config)
    dataset, rows = probe_dataset()
    chain = [(f"c5_{i}", "c5_5") for i in range(6)] + [("s0", "p1"), ("p1", "p1")]
    states = jnp.array([rows[state] for state, _ in chain])
    goals = jnp.array([rows[goal] for _, goal in chain])
    start = jnp.full(64, rows["s0"])

    def train(dataset, key):
        example = sample_batch(key, dataset, sampler, config.batch_size)
        agent = RSHARSAAgent.create(jax.random.fold_in(key, 1), example, config)

        def body(agent, step_key):
            return agent.update(sample_batch(step_key, dataset, sampler, config.batch_size))

        agent, infos = jax.lax.scan(body, agent, jax.random.split(jax.random.fold_in(key, 2), STEPS))
        obs = dataset.observations
        values = agent.value(obs[states], obs[goals])
        toward = {
            goal: agent.sample_actions(obs[start], obs[jnp.full(64, rows[goal])], jax.random.fold_in(key, 3))
            for goal in ("p2", "n2")
        }
        return agent, infos, values, toward

    return config, *run_once(train, dataset, jax.random.PRNGKey(0), options=TRAIN_COMPILE)


def test_flat_agent_learns_the_probe_values_and_actions(flat_probe):
    """``levels = 1``: one-step SARSA value, critic over actions and rejection-sampled flow BC toward the goal."""
    config, agent, infos, values, toward = flat_probe
    assert set(agent.params) == {"value", "critic", "low_actor"} and set(agent.target_params) == {"critic"}
    assert all(np.isfinite(np.asarray(value)).all() for value in infos.values())
    expected = np.concatenate([DISCOUNT ** np.arange(5, -1, -1), [DISCOUNT, 1.0]])
    np.testing.assert_allclose(values, expected, atol=VALUE_TOLERANCE)
    assert np.mean(np.asarray(toward["p2"]) > 0) > 0.9 and np.mean(np.asarray(toward["n2"]) < 0) > 0.9


def test_network_names_per_level():
    assert levels_with_values(1) == (0,) and levels_with_values(2) == (1,) and levels_with_values(4) == (1, 2, 3)
    assert level_names(1, 2) == {"value": "value", "critic": "critic", "actor": "high_actor"}
    assert level_names(0, 2)["actor"] == level_names(0, 3)["actor"] == "low_actor"
    assert level_names(0, 1) == {"value": "value", "critic": "critic", "actor": "low_actor"}
    assert level_names(1, 3) == {"value": "level1_value", "critic": "level1_critic", "actor": "level1_actor"}


PERTURBED = (
    "level2_value_goals",
    "level2_subgoal_observations",
    "level2_rewards",
    "level2_actor_goals",
    "level2_actor_subgoals",
    "level1_value_goals",
    "level1_subgoal_observations",
    "level1_actor_goals",
    "level1_actor_subgoals",
    "level1_subgoals",
    "actions",
    "value_goals",
    "actor_goals",
    "low_goals",
    "actor_subgoals",
    "subgoal_rewards",
)


@pytest.fixture(scope="module")
def three_levels():
    """A small ``levels = 3`` agent (subgoal_steps 3: horizons 9, 3 and 1) and, from one jitted function, its loss
    infos with each :data:`PERTURBED` batch key moved by 1, and its acting: the plan, each level's proposals and
    scores, the actions and each level's read-outs."""
    config = tiny_config(RSHARSAConfig, SMALL, levels=3)
    batch = sample_batch(jax.random.PRNGKey(0), random_dataset(0), sampler_config(config), BATCH)
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(5)

    def run(batch):
        agent = RSHARSAAgent.create(jax.random.PRNGKey(1), batch, config)
        perturbed = [batch] + [{**batch, name: batch[name] + 1.0} for name in PERTURBED]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *perturbed)
        infos = jax.vmap(lambda b: agent.total_loss(b, agent.params, jax.random.PRNGKey(3))[1])(stacked)
        high_key, low_key = jax.random.split(key)
        plan = agent.plan(observations, goals, key)
        toward_plan = euler_sample(
            lambda x, t: agent.networks["low_actor"].apply(agent.params["low_actor"], observations, plan[1], x, t),
            jax.random.normal(low_key, (BATCH, agent.action_dim)),
            config.flow_steps,
        )
        proposals = {2: agent.propose(2, observations, goals, high_key)}
        proposals[1] = agent.propose(1, observations, plan[2], jax.random.fold_in(high_key, 1))
        scores = {
            level: jax.vmap(lambda c, level=level, g=g: agent.level_subgoal_scores(level, observations, c, g))(
                proposals[level]
            )
            for level, g in ((2, goals), (1, plan[2]))
        }
        readouts = {
            level: (
                agent.level_value(level, observations, goals),
                agent.level_q_value(level, observations, plan[level], goals),
            )
            for level in agent.value_levels
        }
        actions = agent.sample_actions(observations, goals, key)
        diagnostics = agent.diagnostic_levels(observations, goals, key)
        acting = plan, proposals, scores, actions, jnp.clip(toward_plan, -1.0, 1.0), readouts, diagnostics
        return agent, infos, acting

    return run_once(run, batch)


def test_each_level_reads_its_own_targets(three_levels):
    """Perturbing one level's batch key moves only that level's losses (the top level reads the batch's goals)."""
    _, infos, _ = three_levels

    def changed(key):
        row = 1 + PERTURBED.index(key)
        return {name.split("/")[0] for name, value in infos.items() if value[row] != value[0]}

    assert changed("level2_value_goals") == {"value", "critic"}
    assert changed("level2_subgoal_observations") == {"critic"}
    assert changed("level2_rewards") == {"critic"}
    assert changed("level2_actor_goals") == {"high_actor"}
    assert changed("level2_actor_subgoals") == {"high_actor"}
    assert changed("level1_value_goals") == {"level1_value", "level1_critic"}
    assert changed("level1_subgoal_observations") == {"level1_critic"}
    assert changed("level1_actor_goals") == {"level1_actor"}
    assert changed("level1_actor_subgoals") == {"level1_actor"}
    # Level 1's dataset subgoal (unless its goal is reached first), and the goal level 0 acts toward.
    assert changed("level1_subgoals") == {"level1_value", "level1_critic", "low_actor"}
    assert changed("actions") == {"low_actor"}
    for sharsa_key in ("value_goals", "actor_goals", "low_goals", "actor_subgoals", "subgoal_rewards"):
        assert not changed(sharsa_key), sharsa_key


def test_acting_chains_the_levels_by_rejection_sampling(three_levels):
    """The top level's subgoal is the best proposal toward the goal, level 1's the best toward it, and the action is
    level 0's flow toward level 1's subgoal; every level's value and critic read-outs are probabilities ``[B]``, and
    the diagnostics read the lower level's value."""
    agent, _, (plan, proposals, scores, actions, toward_plan, readouts, diagnostics) = three_levels
    assert agent.value_levels == (1, 2) and [agent.level_horizon(level) for level in (0, 1, 2)] == [1, 3, 9]
    for level in (2, 1):
        assert proposals[level].shape == (agent.config.num_samples, BATCH, GOAL_DIM)
        best = np.asarray(scores[level]).argmax(axis=0)
        np.testing.assert_array_equal(plan[level], np.asarray(proposals[level])[best, np.arange(BATCH)])
    assert actions.shape == (BATCH, agent.action_dim) and np.abs(np.asarray(actions)).max() <= 1.0
    np.testing.assert_array_equal(actions, toward_plan)
    assert set(diagnostics) == {"level1_value"}  # the lower level's value, for scalerl.horizon.diagnostics
    np.testing.assert_array_equal(diagnostics["level1_value"], readouts[1][0])
    for value, q_value in readouts.values():
        assert value.shape == q_value.shape == (BATCH,)
        assert ((0 < np.asarray(value)) & (np.asarray(value) < 1)).all()


def test_config_checks_levels_and_the_cli_sets_them():
    with pytest.raises(ScalerlError, match=r"^--agent\.levels: expected an integer >= 1, got 0$"):
        RSHARSAConfig(levels=0)
    with pytest.raises(ScalerlError, match=r"^--agent\.levels: expected subgoal_steps \*\* \(levels - 1\) <= 100000"):
        RSHARSAConfig(levels=5, subgoal_steps=25)
    config = build_config(RSHARSAConfig, parse_overrides(RSHARSAConfig, ["--agent.levels", "4"]))
    assert (config.levels, config.subgoal_steps, config.scaled_level_goals) == (4, 25, True)
    sampler = sampler_config(config)
    assert (sampler.levels, sampler.subgoal_steps, sampler.scaled_level_goals) == (4, 25, True)
    assert GoalSamplerConfig().levels == 0
    with pytest.raises(ValueError, match="subgoal_steps: expected >= 1 with levels >= 2"):
        GoalSamplerConfig(levels=2)


def row_dataset(lengths):
    """Trajectories whose observation[:, 0] is the row index and oracle goal is 10 x the row index."""
    rows = sum(lengths)
    terminals = np.zeros(rows, np.float32)
    terminals[np.cumsum(lengths) - 1] = 1.0
    index = np.arange(rows, dtype=np.float32)[:, None]
    arrays = dict(observations=np.concatenate([index, -index], 1), actions=index, terminals=terminals)
    return compact(arrays, goal_reps=10.0 * index)


def test_level_targets_hand_computed():
    """levels 4, subgoal_steps 2: level i's subgoal is min(t + 2^i, last), its chunk stops there, its actor goal is
    the level above's subgoal; the top level reads the batch's own goals (every level, without scaled goals)."""
    dataset = row_dataset((30, 7, 45))
    config = GoalSamplerConfig(subgoal_steps=2, levels=4, discount=0.9, goal_rep="oracle", scaled_level_goals=False)
    batch, rows = run_once(
        lambda key, dataset: (sample_batch(key, dataset, config, 512), draw_indices(key, dataset, config, 512)),
        jax.random.PRNGKey(6),
        dataset,
    )
    idxs, value_goal_idxs, actor_goal_idxs = (np.asarray(x) for x in rows)
    last = np.asarray(dataset.traj_ends)[idxs] - 1
    np.testing.assert_array_equal(batch["observations"][:, 0], idxs)
    for level in (1, 2, 3):
        prefix, steps = f"level{level}_", 2**level
        sub = np.minimum(idxs + steps, last)
        np.testing.assert_array_equal(batch[prefix + "subgoals"][:, 0], 10 * sub)
        np.testing.assert_array_equal(batch[prefix + "subgoal_observations"][:, 0], sub)
        np.testing.assert_array_equal(batch[prefix + "steps_taken"], sub - idxs)
        # The goal is reached inside the chunk if it is one of the rows t .. t + h_i - 1 it starts a step from.
        goal_rows = np.rint(batch[prefix + "value_goals"][:, 0] / 10).astype(np.int64)
        reached = (goal_rows >= idxs) & (goal_rows < idxs + steps) & (goal_rows <= last)
        expected = np.where(reached, 0.9 ** (goal_rows - idxs), 0.0)
        np.testing.assert_allclose(batch[prefix + "rewards"], expected, rtol=1e-6)
        np.testing.assert_array_equal(batch[prefix + "masks"], 1.0 - reached)
        if level < 3:
            np.testing.assert_array_equal(batch[prefix + "actor_goals"][:, 0], 10 * np.minimum(idxs + 2 * steps, last))
            np.testing.assert_array_equal(batch[prefix + "actor_subgoals"][:, 0], 10 * sub)
    for level in (1, 2, 3):
        np.testing.assert_array_equal(batch[f"level{level}_value_goals"][:, 0], 10 * value_goal_idxs)
    np.testing.assert_array_equal(batch["level3_actor_goals"][:, 0], 10 * actor_goal_idxs)
    ahead = (actor_goal_idxs >= idxs) & (actor_goal_idxs <= last)
    top_sub = np.minimum(idxs + 8, np.where(ahead, actor_goal_idxs, last))
    np.testing.assert_array_equal(batch["level3_actor_subgoals"][:, 0], 10 * top_sub)
    assert (batch["level3_masks"] == 0).any() and (batch["level1_masks"] == 0).any(), "some chunks reach their goal"


def test_levels_two_targets_are_sharsas_and_levels_change_no_other_draw():
    """At levels 2 the level-1 targets are SHARSA's keys of the same batch; at levels 3 (with level 1's own goals
    drawn) every other key is the same as at levels 2. Below the top, level i's same-trajectory value goals lie a
    geometric offset of mean h_{i+1} ahead (before the trajectory's end clips them)."""
    dataset = row_dataset((4000,))
    two = GoalSamplerConfig(
        subgoal_steps=3,
        levels=2,
        value_p_curgoal=0.0,
        value_p_trajgoal=1.0,
        value_p_randomgoal=0.0,
        goal_rep="oracle",
    )
    three = dataclasses.replace(two, levels=3)
    first, second = run_once(
        lambda key, dataset: (sample_batch(key, dataset, two, 4096), sample_batch(key, dataset, three, 4096)),
        jax.random.PRNGKey(7),
        dataset,
    )
    sharsa_keys = {
        "value_goals": "value_goals",
        "subgoals": "low_goals",
        "subgoal_observations": "subgoal_observations",
        "rewards": "subgoal_rewards",
        "masks": "subgoal_masks",
        "steps_taken": "subgoal_steps_taken",
        "actor_goals": "actor_goals",
        "actor_subgoals": "actor_subgoals",
    }
    assert {name for name in first if name.startswith("level")} == {f"level1_{name}" for name in sharsa_keys}
    for name, sharsa_name in sharsa_keys.items():
        np.testing.assert_array_equal(first[f"level1_{name}"], first[sharsa_name], err_msg=name)
    for name in first:
        if not name.startswith("level"):
            np.testing.assert_array_equal(second[name], first[name], err_msg=name)
    np.testing.assert_array_equal(second["level1_subgoals"], first["low_goals"])
    np.testing.assert_array_equal(second["level2_value_goals"], first["value_goals"])
    rows = second["observations"][:, 0]
    offsets = (second["level1_value_goals"][:, 0] / 10 - rows)[rows < 3000]  # P(clipped by the end) ~ 1e-48
    assert (offsets >= 1).all()
    assert abs(offsets.mean() - 9.0) < 0.5, offsets.mean()  # geometric with success probability 1/9: mean 9
