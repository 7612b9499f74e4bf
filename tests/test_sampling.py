"""Goal-conditioned sampling against hand-computed cases and plain loops."""

import dataclasses
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

from scalerl.data import compact
from scalerl.overrides import field_docs
from scalerl.sampling import (
    GoalSamplerConfig,
    draw_indices,
    future_indices,
    nstep_chunk,
    sample_batch,
    sample_goal_indices,
)


def make_dataset(lengths=(5, 3, 8), obs_dim=2, action_dim=1, seed=0):
    """Trajectories of the given numbers of rows; observation[:, 0] is the row index so gathers are checkable."""
    rng = np.random.default_rng(seed)
    rows = sum(lengths)
    terminals = np.zeros(rows, np.float32)
    terminals[np.cumsum(lengths) - 1] = 1.0
    observations = np.stack([np.arange(rows, dtype=np.float32), rng.normal(size=rows).astype(np.float32)], 1)
    actions = np.arange(rows, dtype=np.float32)[:, None] * np.ones((1, action_dim), np.float32)
    arrays = dict(observations=observations[:, :obs_dim], actions=actions, terminals=terminals)
    return compact(arrays, goal_reps=observations[:, :1] * 10.0), lengths


def test_compact_layout_hand_computed():
    dataset, _ = make_dataset(lengths=(3, 2))
    np.testing.assert_array_equal(dataset.traj_ends, [2, 2, 2, 4, 4])
    np.testing.assert_array_equal(dataset.valids, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(dataset.valid_idxs, [0, 1, 3])
    assert dataset.num_transitions == 3 and dataset.size == 5


@pytest.mark.parametrize("geometric", [False, True])
def test_goal_indices_never_cross_trajectory_end(geometric):
    dataset, _ = make_dataset()
    config = GoalSamplerConfig(
        value_p_curgoal=0.0, value_p_trajgoal=1.0, value_p_randomgoal=0.0, value_geom_sample=geometric, discount=0.9
    )
    idxs, goals, _ = draw_indices(jax.random.PRNGKey(0), dataset, config, 4096)
    idxs, goals = np.asarray(idxs), np.asarray(goals)
    ends = np.asarray(dataset.traj_ends)
    last = ends[idxs] - 1  # the last valid row: the trajectory's end for goals
    # Strictly in the future, except at the last valid row, whose only trajectory goal is itself (OGBench's rule; the
    # old expectation, strictly future and at most the final row, was the bug of goals on never-current final rows).
    assert ((goals > idxs) | ((idxs == last) & (goals == idxs))).all(), "trajectory goals lie in the future"
    assert (goals <= last).all(), "trajectory goals never pass the last valid row"
    assert (ends[goals] == ends[idxs]).all(), "trajectory goals stay in the same trajectory"


def test_uniform_future_covers_whole_rest_of_trajectory():
    dataset, _ = make_dataset(lengths=(6,))
    idxs = np.zeros(20000, np.int32)
    goals = np.asarray(future_indices(jax.random.PRNGKey(1), idxs, np.full_like(idxs, 5), False, 0.99))
    counts = np.bincount(goals, minlength=6)
    assert counts[0] == 0
    np.testing.assert_allclose(counts[1:] / goals.size, 0.2, atol=0.015)


def test_goal_type_frequencies_match_probabilities():
    dataset, _ = make_dataset(lengths=(400, 300, 300))
    config = GoalSamplerConfig(
        value_p_curgoal=0.2,
        value_p_trajgoal=0.5,
        value_p_randomgoal=0.3,
        value_geom_sample=False,
        actor_p_curgoal=0.1,
        actor_p_trajgoal=0.0,
        actor_p_randomgoal=0.9,
    )
    n = 40000
    idxs, value_goals, actor_goals = map(np.asarray, draw_indices(jax.random.PRNGKey(2), dataset, config, n))
    ends = np.asarray(dataset.traj_ends)
    current = value_goals == idxs
    same_traj_future = (value_goals > idxs) & (ends[value_goals] == ends[idxs])
    # A random goal (a valid row) lands in the same trajectory's future with probability (last - i) / M; correct for it.
    random_in_future = 0.3 * np.mean((ends[idxs] - 1 - idxs) / dataset.num_transitions)
    assert abs(current.mean() - 0.2) < 0.01
    assert abs(same_traj_future.mean() - (0.5 + random_in_future)) < 0.012
    assert abs((actor_goals == idxs).mean() - 0.1) < 0.01


def test_geometric_offsets_have_the_right_mean():
    discount = 0.95
    idxs = np.zeros(50000, np.int32)
    far = np.full_like(idxs, 10**6)  # no clipping
    goals = np.asarray(future_indices(jax.random.PRNGKey(3), idxs, far, True, discount))
    assert goals.min() >= 1
    expected_mean = 1.0 / (1.0 - discount)  # Geometric(p = 1 - discount) on {1, 2, ...}
    assert abs(goals.mean() - expected_mean) / expected_mean < 0.02
    assert abs(np.mean(goals == 1) - (1 - discount)) < 0.005


def plain_nstep(ends, actions, idx, goal, n, discount, gc_negative, stop=None):
    """Reference n-step quantities with a Python loop: transitions are taken from rows before ``stop`` (default the
    final row); a current state (a row before the final one) that is the goal ends the chunk with a success."""
    stop = ends[idx] if stop is None else stop
    total, mask, steps, chunk = 0.0, 1.0, 0, []
    for j in range(n):
        row = idx + j
        chunk.append(actions[min(row, ends[idx] - 1)])
        steps += row < stop
        if row >= ends[idx] or mask == 0.0:
            continue
        success = float(row == goal)
        if row < stop or success:
            total += discount**j * (success - (1.0 if gc_negative else 0.0))
        if success:
            mask = 0.0
    return total, mask, steps, min(idx + n, stop), np.stack(chunk)


@pytest.mark.parametrize("gc_negative", [False, True])
def test_nstep_sums_equal_plain_loop(gc_negative):
    dataset, _ = make_dataset(lengths=(7, 4, 9))
    ends, actions = np.asarray(dataset.traj_ends), np.asarray(dataset.actions)
    # Rows 6, 10 and 19 are final rows; the last four pairs reach a goal on a last valid row (5, 9, 18).
    idxs = np.array([0, 2, 3, 5, 7, 9, 11, 15, 17, 11, 3, 9, 17, 16], np.int32)
    goals = np.array([2, 2, 6, 6, 8, 10, 19, 12, 3, 11, 5, 9, 18, 2], np.int32)
    n, discount = 4, 0.9
    for stops in (None, ends[idxs] - 1):  # n-step chunks (to the final row) and subgoal chunks (to the last valid row)
        out = jax.tree.map(np.asarray, nstep_chunk(dataset, idxs, goals, n, discount, gc_negative, stops))
        for b, (idx, goal) in enumerate(zip(idxs, goals)):
            stop = None if stops is None else stops[b]
            total, mask, steps, next_idx, chunk = plain_nstep(ends, actions, idx, goal, n, discount, gc_negative, stop)
            message = f"row {idx} goal {goal} stop {stop}"
            np.testing.assert_allclose(out["nstep_rewards"][b], total, rtol=1e-6, err_msg=message)
            assert out["nstep_masks"][b] == mask and out["nstep_steps"][b] == steps, message
            assert out["nstep_next_idxs"][b] == next_idx, message
            np.testing.assert_array_equal(out["action_chunks"][b], chunk)


def test_rewards_and_masks_follow_ogbench_convention():
    dataset, _ = make_dataset()
    config = GoalSamplerConfig(value_p_curgoal=0.5, value_p_trajgoal=0.5, value_p_randomgoal=0.0)
    batch = sample_batch(jax.random.PRNGKey(4), dataset, config, 512)
    at_goal = batch["observations"][:, 0] == batch["value_goals"][:, 0]
    np.testing.assert_array_equal(batch["rewards"], at_goal.astype(np.float32))
    np.testing.assert_array_equal(batch["masks"], 1.0 - at_goal.astype(np.float32))
    np.testing.assert_array_equal(batch["next_observations"][:, 0], batch["observations"][:, 0] + 1)
    negative = sample_batch(
        jax.random.PRNGKey(4), dataset, config.__class__(**{**config.__dict__, "gc_negative": True}), 512
    )
    np.testing.assert_array_equal(negative["rewards"], batch["rewards"] - 1.0)


def test_subgoals_clipped_and_oracle_goals():
    dataset, _ = make_dataset(lengths=(30, 12, 50))
    config = GoalSamplerConfig(subgoal_steps=10, nstep=3, goal_rep="oracle", discount=0.9)
    batch = sample_batch(jax.random.PRNGKey(5), dataset, config, 1024)
    rows = batch["observations"][:, 0].astype(int)
    ends = np.asarray(dataset.traj_ends)[rows]
    last = ends - 1  # subgoals stop at the last valid row (was the final row: the bug)
    np.testing.assert_array_equal(batch["low_goals"][:, 0], 10.0 * np.minimum(rows + 10, last))
    np.testing.assert_array_equal(batch["subgoal_observations"][:, 0], np.minimum(rows + 10, last))
    np.testing.assert_array_equal(batch["subgoal_steps_taken"], np.minimum(10, last - rows))
    assert batch["value_goals"].shape == (1024, 1) and batch["actor_goals"].shape == (1024, 1)
    actor_rows = batch["actor_goals"][:, 0] / 10.0
    sub_rows = batch["actor_subgoals"][:, 0] / 10.0
    ahead = (actor_rows >= rows) & (actor_rows <= last)
    np.testing.assert_array_equal(sub_rows[ahead], np.minimum(rows + 10, actor_rows)[ahead])
    np.testing.assert_array_equal(sub_rows[~ahead], np.minimum(rows + 10, last)[~ahead])
    assert batch["action_chunks"].shape == (1024, 3, 1)
    np.testing.assert_array_equal(batch["nstep_next_observations"][:, 0], np.minimum(rows + 3, ends))


def test_subgoal_chunk_hand_computed_at_trajectory_end():
    """Subgoal chunks stop at the last valid row (their subgoal); reaching it is not a success unless it is the goal."""
    dataset, _ = make_dataset(lengths=(6,))  # rows 0..4 valid, 5 final
    idxs, goals, last = np.array([3, 3, 4, 0]), np.array([4, 1, 4, 2]), np.array([4, 4, 4, 4])
    out = jax.tree.map(np.asarray, nstep_chunk(dataset, idxs, goals, 3, 0.5, False, last))
    np.testing.assert_array_equal(out["nstep_steps"], [1, 1, 0, 3])
    np.testing.assert_array_equal(out["nstep_next_idxs"], [4, 4, 4, 3])
    np.testing.assert_array_equal(out["nstep_masks"], [0.0, 1.0, 0.0, 0.0])  # row 3 -> 4 with goal 1: end, no success
    np.testing.assert_allclose(out["nstep_rewards"], [0.5, 0.0, 1.0, 0.25])
    negative = jax.tree.map(np.asarray, nstep_chunk(dataset, idxs, goals, 3, 0.5, True, last))
    np.testing.assert_allclose(negative["nstep_rewards"], [-1.0, -1.0, 0.0, -1.5])


GOAL_KEYS = (
    "value_goals",
    "actor_goals",
    "low_goals",
    "actor_subgoals",
    "subgoal_observations",
    "actor_subgoal_observations",
    "low_value_goals",
)


@pytest.mark.parametrize("geometric", [False, True])
def test_no_goal_or_subgoal_is_a_final_row(geometric):
    """Every goal and subgoal is a valid row: the final row of a trajectory is never a current state."""
    dataset, _ = make_dataset(lengths=(2, 5, 3, 7))
    config = GoalSamplerConfig(
        value_p_curgoal=0.1,
        value_p_trajgoal=0.6,
        value_p_randomgoal=0.3,
        value_geom_sample=geometric,
        actor_p_curgoal=0.0,
        actor_p_trajgoal=0.5,
        actor_p_randomgoal=0.5,
        actor_geom_sample=geometric,
        discount=0.5,
        subgoal_steps=3,
        nstep=3,
        low_discount=0.5,
    )
    batch = sample_batch(jax.random.PRNGKey(11), dataset, config, 4096)
    finals = set(np.flatnonzero(np.asarray(dataset.valids) == 0).tolist())  # rows 1, 6, 9, 16
    for key in GOAL_KEYS:
        rows = set(np.asarray(batch[key][:, 0]).astype(int).tolist())
        assert not rows & finals, f"{key} hits final rows {sorted(rows & finals)}"


def test_random_goals_are_uniform_over_valid_rows():
    dataset, _ = make_dataset(lengths=(2, 5, 3))  # valid rows 0, 2, 3, 4, 5, 7, 8
    idxs = np.zeros(35000, np.int32)
    goals = np.asarray(sample_goal_indices(jax.random.PRNGKey(12), dataset, idxs, 0.0, 0.0, True, 0.9))
    counts = np.bincount(goals, minlength=dataset.size)
    valid = np.asarray(dataset.valid_idxs)
    assert counts.sum() == counts[valid].sum(), "random goals are valid rows"
    np.testing.assert_allclose(counts[valid] / goals.size, 1.0 / valid.size, atol=0.01)


@pytest.mark.parametrize("geometric", [False, True])
def test_trajectory_goals_reach_the_last_valid_row_and_succeed_there(geometric):
    """From a trajectory's last valid row the only future goal is itself, so ``state == goal`` fires (reward 1, mask 0)
    in one-step and subgoal-chunk terms; from earlier rows the last valid row is reached with the remaining mass."""
    dataset, _ = make_dataset(lengths=(2, 2, 2))  # every valid row (0, 2, 4) is its trajectory's last
    config = GoalSamplerConfig(
        value_p_curgoal=0.0, value_p_trajgoal=1.0, value_p_randomgoal=0.0, value_geom_sample=geometric, subgoal_steps=4
    )
    batch = sample_batch(jax.random.PRNGKey(13), dataset, config, 256)
    np.testing.assert_array_equal(batch["value_goals"], batch["observations"])
    np.testing.assert_array_equal(batch["rewards"], 1.0)
    np.testing.assert_array_equal(batch["masks"], 0.0)
    np.testing.assert_array_equal(batch["subgoal_rewards"], 1.0)
    np.testing.assert_array_equal(batch["subgoal_masks"], 0.0)
    np.testing.assert_array_equal(batch["low_goals"], batch["value_goals"])
    longer, _ = make_dataset(lengths=(6,))  # valid rows 0..4, final row 5
    idxs = np.full(20000, 2, np.int32)
    goals = np.asarray(sample_goal_indices(jax.random.PRNGKey(14), longer, idxs, 0.0, 1.0, geometric, 0.5))
    assert set(goals.tolist()) == {3, 4}
    # Uniform over rows 3..4; geometric: offset 1 w.p. 0.5, the rest of the mass clipped to row 4.
    assert abs(np.mean(goals == 4) - 0.5) < 0.015


def test_same_key_same_batch_and_different_key_differs():
    dataset, _ = make_dataset()
    config = GoalSamplerConfig(subgoal_steps=2, nstep=2)
    first = sample_batch(jax.random.PRNGKey(7), dataset, config, 64)
    second = sample_batch(jax.random.PRNGKey(7), dataset, config, 64)
    other = sample_batch(jax.random.PRNGKey(8), dataset, config, 64)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["observations"], other["observations"])


def test_sampling_is_vmappable_over_keys():
    dataset, _ = make_dataset()
    config = GoalSamplerConfig()
    keys = jax.random.split(jax.random.PRNGKey(9), 3)
    batched = jax.vmap(lambda k: sample_batch(k, dataset, config, 16))(keys)
    single = sample_batch(keys[1], dataset, config, 16)
    np.testing.assert_array_equal(batched["value_goals"][1], single["value_goals"])


def test_bad_sampler_config_is_rejected():
    with pytest.raises(ValueError, match="value_p_"):
        GoalSamplerConfig(value_p_curgoal=0.5, value_p_trajgoal=0.6, value_p_randomgoal=0.0)
    with pytest.raises(ValueError, match="goal_rep"):
        GoalSamplerConfig(goal_rep="pixels")


def test_sampler_defaults_add_nothing_and_every_field_is_documented():
    """The sampler's own defaults switch subgoals, n-step chunks and low-level goals off, whatever the agents' field
    groups default to; every field keeps the docstring written once in its group."""
    config = GoalSamplerConfig()
    assert (config.subgoal_steps, config.nstep, config.low_discount, config.gc_negative) == (0, 1, 0.0, False)
    assert config.value_geom_sample and config.actor_geom_sample and config.discount == 0.999
    batch = sample_batch(jax.random.PRNGKey(0), make_dataset()[0], config, 8)
    assert not {"low_goals", "action_chunks", "low_value_goals"} & set(batch)
    docs = field_docs(GoalSamplerConfig)
    assert all(docs.get(field.name) for field in dataclasses.fields(GoalSamplerConfig))
