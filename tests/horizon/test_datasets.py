"""Horizon datasets: they load and sample like OGBench's, follow the dynamics exactly, reproduce and resume, and a
tabular TD learner on them converges to V* (so the diagnostics can tell a correct learner from a biased one)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.data import load_dataset
from scalerl.errors import ScalerlError
from scalerl.horizon.config import DiagnoseConfig
from scalerl.horizon.datasets import (
    episode_keys,
    generate_episodes,
    generate_horizon_dataset,
    generator_tables,
    plan_horizon_dataset,
)
from scalerl.horizon.diagnostics import diagnose_agents
from scalerl.horizon.env import decode_moves, point_step
from scalerl.horizon.tasks import MOVES, HorizonSpec, task_graph
from scalerl.manifest import read_manifest
from scalerl.sampling import GoalSamplerConfig, sample_batch
from tests.horizon.table_agent import TableConfig, exact_values, table_agents


def load_rows(directory):
    """Every training row of a dataset directory: observations, actions, terminals, qpos, states."""
    from scalerl.data import read_shard
    from scalerl.manifest import list_shards

    parts = [read_shard(path, keys=("qpos",)) for path in list_shards(directory)]
    with np.load(list_shards(directory)[0]) as first:
        assert set(first.files) == {"observations", "actions", "terminals", "qpos", "states"}
    states = np.concatenate([np.load(path)["states"] for path in list_shards(directory)])
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} | {"states": states}


def test_dataset_loads_and_samples_like_an_ogbench_one(maze_data):
    directory, plan = maze_data
    manifest = read_manifest(directory)
    assert manifest["complete"] and manifest["task"] == "maze-n4" and manifest["dataset_type"] == "explore"
    dataset = load_dataset(directory, env_name="maze-n4-explore")
    assert dataset.size == plan.total_episodes * (plan.episode_length + 1)
    assert dataset.num_transitions == plan.transitions
    val = load_dataset(directory, env_name="maze-n4-explore", split="val")
    assert val.num_transitions == sum(plan.val_episodes(k) for k in range(plan.num_shards)) * plan.episode_length
    batch = sample_batch(jax.random.PRNGKey(0), dataset, GoalSamplerConfig(discount=0.9), 32)
    assert batch["observations"].shape == (32, 2) and batch["actions"].shape == (32, 2)
    assert batch["value_goals"].shape == (32, 2) and set(np.unique(np.asarray(batch["masks"]))) <= {0.0, 1.0}
    oracle = load_dataset(directory, env_name="maze-n4-explore-oraclerep")
    np.testing.assert_array_equal(np.asarray(oracle.oracle_reps), np.asarray(oracle.observations))


def test_rows_follow_the_task_dynamics(maze_data):
    directory, plan = maze_data
    rows = load_rows(directory)
    graph = task_graph(plan.spec)
    episode = plan.episode_length + 1
    np.testing.assert_array_equal(rows["terminals"], np.tile(np.eye(episode)[-1], plan.total_episodes))
    np.testing.assert_array_equal(rows["observations"], graph.observations[rows["states"]])
    np.testing.assert_array_equal(rows["qpos"], graph.oracle_reps[rows["states"]])
    steps = rows["terminals"] == 0
    assert np.all((rows["actions"][steps][:, None, :] == MOVES[None]).all(-1).any(-1))  # each action is one move
    next_states = graph.next_states[rows["states"], decode_moves(rows["actions"])]
    np.testing.assert_array_equal(next_states[:-1][steps[:-1]], rows["states"][1:][steps[:-1]])
    assert len(np.unique(rows["states"])) == graph.num_states  # a random walk covers the 4 x 4 maze


def test_noisy_expert_walks_the_lock_and_the_point_mass_moves_by_its_actions():
    spec = HorizonSpec("lock", 7, reset=True)
    graph, tables = task_graph(spec), generator_tables(spec, 0)
    out = generate_episodes(episode_keys(0, "train", 0, 8), tables, spec, "navigate", 40, 0.0, 0.0)
    states, moves = np.asarray(out["states"]), decode_moves(np.asarray(out["actions"])[:, :-1])
    # no random moves: the expert opens the lock position by position, and resets only to reach a goal behind it
    assert set((states[:, 1:] - states[:, :-1]).ravel().tolist()) - {1} <= {-s for s in range(8)}
    right = moves == graph.combination[np.minimum(states[:, :-1], 6)]
    assert right[states[:, :-1] < 7].mean() > 0.6
    point = HorizonSpec("pointmaze", 4)
    tables = generator_tables(point, 0)
    out = generate_episodes(episode_keys(0, "train", 0, 2), tables, point, "navigate", 40, 0.2, 0.5)
    positions = (np.asarray(out["observations"]) + 1.0) * point.size / 2.0  # [E, T + 1, 2]
    actions = np.asarray(out["actions"])[:, :-1]
    moved = point_step(task_graph(point).open_sides, point.size, positions[:, :-1], actions)
    np.testing.assert_allclose(moved, positions[:, 1:], atol=1e-5)
    assert np.abs(actions).max() <= 1.0 and np.abs(np.diff(positions, axis=1)).max() > 0.2


def test_generation_is_reproducible_resumable_and_refuses_another_dataset(maze_data, tmp_path):
    directory, plan = maze_data
    manifest = read_manifest(directory)
    copy = tmp_path / "copy"
    again = generate_horizon_dataset(plan, copy, progress_bar=False)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]
    os.remove(copy / plan.shard_file(1))
    resumed = generate_horizon_dataset(plan, copy, progress_bar=False)
    assert resumed["generated"] == [1] and resumed["shards"] == again["shards"]
    assert generate_horizon_dataset(plan, copy, progress_bar=False)["generated"] == []
    other = plan_horizon_dataset("maze-n4-explore", transitions=2400, episode_length=60, seed=1)
    with pytest.raises(ScalerlError, match="holds a different dataset \\(base_seed"):
        generate_horizon_dataset(other, copy, progress_bar=False)
    # episode e of a shard has its own key: the same episodes whatever the batch they are generated in
    tables, block = generator_tables(plan.spec, 0), plan.episodes_per_shard  # the shapes the fixture compiled
    args = (tables, plan.spec, "explore", plan.episode_length, plan.p_random_action, plan.noise)
    first = generate_episodes(episode_keys(3, "train", 0, block), *args)
    later = generate_episodes(episode_keys(3, "train", block // 2, block), *args)
    np.testing.assert_array_equal(
        np.asarray(first["states"])[block // 2 :], np.asarray(later["states"])[: block - block // 2]
    )


def test_bad_generation_flags_fail_before_any_work(tmp_path):
    for kwargs, message in (
        ({"dataset_type": "stitch"}, "--type: 'stitch' is not a horizon dataset type"),
        ({"p_random_action": 1.5}, "--p-random-action: expected a probability"),
        ({"episode_length": 0}, "--episode-length: expected a positive integer"),
        ({"transitions": "lots"}, "--transitions: expected a positive count"),
    ):
        with pytest.raises(ScalerlError, match=message):
            plan_horizon_dataset("maze-n4", **kwargs)
    with pytest.raises(ScalerlError, match="contradicts"):
        plan_horizon_dataset("maze-n4-navigate", dataset_type="explore")


TD_DISCOUNT = 0.9
TD_SAMPLER = GoalSamplerConfig(discount=TD_DISCOUNT, value_p_curgoal=0.2, value_p_trajgoal=0.3, value_p_randomgoal=0.5)


@jax.jit
def tabular_q_learning(dataset, observations, state_rewards, key):
    """Tabular Q-learning ``Q[g, s, m]`` (step size 0.2, 2000 batches of 256) on :func:`sample_batch` batches.

    ``observations`` ``[S, obs_dim]`` map observations to states. With ``state_rewards`` (1.0) the goal is reached
    when the state *is* the goal state (the definition of V*); with 0.0 the sampler's own rewards decide: reached only
    on the goal's own row. Returns ``max_m Q`` ``[g, s]``.
    """

    def states(points):
        return jnp.argmin(jnp.sum((points[:, None, :] - observations) ** 2, axis=-1), axis=-1)

    def body(q, step_key):
        batch = sample_batch(step_key, dataset, TD_SAMPLER, 256)
        s, s_next, g = states(batch["observations"]), states(batch["next_observations"]), states(batch["value_goals"])
        m = decode_moves(batch["actions"], jnp)
        reached = jnp.where(state_rewards > 0, (s == g).astype(jnp.float32), batch["rewards"])
        target = reached + TD_DISCOUNT * (1.0 - reached) * q[g, s_next].max(axis=-1)
        return q.at[g, s, m].add(0.2 * (target - q[g, s, m])), None

    count = observations.shape[0]
    q = jax.lax.scan(body, jnp.zeros((count, count, 4)), jax.random.split(key, 2000))[0]
    return q.max(axis=-1)


def test_tabular_td_converges_to_v_star_and_the_diagnostics_tell_it_from_a_biased_learner(maze_data):
    directory, plan = maze_data
    dataset = load_dataset(directory, env_name="maze-n4-explore")
    observations = jnp.asarray(task_graph(plan.spec).observations)
    learned, row_identity = (
        np.asarray(tabular_q_learning(dataset, observations, jnp.float32(flag), jax.random.PRNGKey(0)))
        for flag in (1.0, 0.0)
    )
    np.testing.assert_allclose(learned, exact_values(plan.spec, TD_DISCOUNT), atol=1e-3)
    # The sampler marks success only on the goal's own row: a revisited goal state (frequent on a random walk over 16
    # cells) pays nothing, so values end up below V*, by about the same number of steps at every distance.
    settings = DiagnoseConfig(bins=4, pairs_per_bin=64, rollouts_per_bin=0)
    reports = [
        diagnose_agents(table_agents(plan.spec, values), TableConfig(discount=TD_DISCOUNT), "maze-n4", settings)
        for values in (learned, row_identity)
    ]
    correct, biased = (np.asarray(report["summary"]["value"]["bias_steps"]) for report in reports)
    assert np.abs(correct).max() < 0.01
    assert biased.min() > 0.1
