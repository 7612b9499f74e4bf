"""Horizon dynamics: one implementation for numpy and JAX, walls that hold, and OGBench's evaluation protocol."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.envs import make_env
from scalerl.horizon.env import cell_of, decode_moves, graph_step, point_step
from scalerl.horizon.tasks import MOVES, HorizonSpec, distances_to, evaluation_tasks, task_graph
from scalerl.offline.evaluation import evaluate


def test_moves_decode_to_the_largest_coordinate():
    np.testing.assert_array_equal(decode_moves(MOVES), [0, 1, 2, 3])
    actions = np.array([[0.3, -0.2], [-0.9, 0.95], [0.0, 0.0], [0.5, 0.5], [-0.1, -0.7]], np.float32)
    np.testing.assert_array_equal(decode_moves(actions), [0, 2, 0, 0, 3])
    np.testing.assert_array_equal(np.asarray(decode_moves(jnp.asarray(actions), jnp)), decode_moves(actions))


@pytest.mark.parametrize("spec", [HorizonSpec("maze", 6), HorizonSpec("lock", 9, reset=True)])
def test_graph_step_is_the_same_in_numpy_and_jitted_jax(spec):
    graph = task_graph(spec)
    rng = np.random.default_rng(0)
    states = rng.integers(graph.num_states, size=500).astype(np.int32)
    actions = rng.uniform(-1, 1, size=(500, 2)).astype(np.float32)
    expected = graph.next_states[states, decode_moves(actions)]
    np.testing.assert_array_equal(graph_step(graph.next_states, states, actions), expected)
    jitted = jax.jit(lambda s, a: graph_step(jnp.asarray(graph.next_states), s, a, jnp))
    np.testing.assert_array_equal(np.asarray(jitted(states, actions)), expected)


def test_point_mass_never_crosses_a_wall_and_agrees_across_backends():
    spec = HorizonSpec("pointmaze", 5, layout=2)
    graph = task_graph(spec)
    rng = np.random.default_rng(1)
    positions = rng.uniform(0.2, 4.8, size=(64, 2)).astype(np.float32)
    jitted = jax.jit(lambda p, a: point_step(jnp.asarray(graph.open_sides), spec.size, p, a, jnp))
    adjacent = {(s, int(t)) for s in range(graph.num_states) for t in graph.next_states[s]}
    for _ in range(300):
        actions = rng.uniform(-1.5, 1.5, size=(64, 2)).astype(np.float32)
        moved = point_step(graph.open_sides, spec.size, positions, actions)
        np.testing.assert_allclose(np.asarray(jitted(positions, actions)), moved, atol=1e-6)
        assert np.all(np.abs(moved - positions) <= 0.25 + 1e-6)
        before, after = cell_of(positions, spec.size), cell_of(moved, spec.size)
        # a step changes cell only through an open side (diagonal moves pass through an open neighbour)
        for s, t in zip(before, after):
            middle = {int(m) for m in graph.next_states[s]} & {int(m) for m in graph.next_states[t]}
            assert (s, t) in adjacent or middle - {s, t}, (s, t)
        positions = moved
    assert positions.min() > 0 and positions.max() < spec.size


def test_gym_env_follows_the_shortest_path_to_success():
    env, tasks = make_env("maze-n6-navigate")
    graph = task_graph(HorizonSpec("maze", 6))
    assert [task["task_id"] for task in tasks] == [1, 2, 3, 4, 5]
    for task in evaluation_tasks(HorizonSpec("maze", 6)):
        observation, info = env.reset(seed=0, options={"task_id": int(task.task_name[4:])})
        np.testing.assert_array_equal(observation, graph.observations[task.init_state])
        np.testing.assert_array_equal(info["goal"], graph.observations[task.goal_state])
        to_goal = distances_to(graph, [task.goal_state])[0]
        state, steps = task.init_state, 0
        while True:
            move = int(np.argmin(to_goal[graph.next_states[state]]))
            observation, reward, terminated, truncated, info = env.step(MOVES[move])
            state, steps = graph.next_states[state, move], steps + 1
            if terminated or truncated:
                break
        assert (terminated, info["success"], reward, steps) == (True, 1.0, 1.0, task.distance)


def optimal_policy(name: str):
    """A jitted ``policy_fn`` for :func:`evaluate`: the shortest-path move from the state nearest to the observation."""
    graph = task_graph(HorizonSpec("maze", int(name.split("-n")[1])))
    table = jnp.asarray(graph.observations)
    to_goal = jnp.asarray(distances_to(graph, np.arange(graph.num_states)))  # [g, s]
    next_states = jnp.asarray(graph.next_states)

    @jax.jit
    def policy_fn(observations, goals, key):
        def nearest(points):
            return jnp.argmin(jnp.sum((points[..., None, :] - table) ** 2, axis=-1), axis=-1)

        states, goal_states = nearest(observations), nearest(goals)  # [S, E]
        ahead = to_goal[goal_states[..., None], next_states[states]]  # [S, E, 4]
        return jnp.asarray(MOVES)[jnp.argmin(ahead, axis=-1)]

    return policy_fn


def test_evaluation_protocol_runs_unchanged_on_a_horizon_task():
    result = evaluate(optimal_policy("maze-n5"), "maze-n5", num_episodes=2, num_seeds=2, progress=False)
    distances = [task.distance for task in evaluation_tasks(HorizonSpec("maze", 5))]
    assert result.success_mean == 1.0 and result.task_names == ("task1", "task2", "task3", "task4", "task5")
    np.testing.assert_array_equal(
        result.episode_lengths, np.broadcast_to(np.array(distances)[None, :, None], (2, 5, 2))
    )
    random = evaluate(lambda o, g, k: jnp.zeros((*o.shape[:2], 2)), "maze-n5", num_episodes=1, progress=False)
    assert random.success_mean < 1.0  # always east: not every task


def test_oraclerep_goals_and_time_limit():
    env, _ = make_env("lock-L6-oraclerep", max_episode_steps=3)
    graph = task_graph(HorizonSpec("lock", 6))
    observation, info = env.reset(seed=0, options={"task_id": 5})
    assert observation.shape == (4,) and info["goal"].shape == (1,)
    np.testing.assert_array_equal(info["goal"], graph.oracle_reps[6])
    wrong = (graph.combination[0] + 1) % 4
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(MOVES[wrong])
    assert (terminated, truncated, info["success"]) == (False, True, 0.0)


def test_point_mass_reaches_every_evaluation_goal_by_following_the_cell_plan():
    spec = HorizonSpec("pointmaze", 5)
    env, _ = make_env("pointmaze-n5")
    graph = task_graph(spec)
    centres = np.stack(np.divmod(np.arange(25), 5)[::-1], axis=1) + 0.5  # (x, y) of each cell
    for task_id, task in enumerate(evaluation_tasks(spec), start=1):
        observation, info = env.reset(seed=task_id, options={"task_id": task_id})
        goal = (info["goal"] + 1.0) * 2.5
        to_goal = distances_to(graph, [task.goal_state])[0]
        for _ in range(env.spec.max_episode_steps):
            position = (observation + 1.0) * 2.5
            cell = cell_of(position, 5)
            ahead = graph.next_states[cell, np.argmin(to_goal[graph.next_states[cell]])]
            aim = goal if cell == task.goal_state else centres[ahead]
            observation, _, terminated, truncated, info = env.step(np.clip((aim - position) * 4, -1, 1))
            if terminated or truncated:
                break
        assert terminated and info["success"] == 1.0, task
