"""Horizon tasks: names, maze and lock structure, BFS distances and V*/Q* against brute force, evaluation tasks."""

import numpy as np
import pytest

from scalerl.envs import parse_env_name
from scalerl.errors import ScalerlError
from scalerl.horizon.tasks import (
    EVAL_FRACTIONS,
    MOVES,
    UNREACHABLE,
    HorizonSpec,
    diameter_pair,
    distances_from,
    distances_to,
    evaluation_tasks,
    max_episode_steps,
    optimal_q_values,
    optimal_values,
    parse_horizon_name,
    task_graph,
)

DISCOUNT = 0.9
SMALL = ("maze-n4", "lock-L5", "lock-L5-reset", "maze-n3-layout7")


def floyd_warshall(next_states: np.ndarray) -> np.ndarray:
    """All-pairs shortest paths ``d[s, t]`` of the move graph, by brute force (``inf`` when unreachable)."""
    count = next_states.shape[0]
    distances = np.full((count, count), np.inf)
    np.fill_diagonal(distances, 0.0)
    for state, targets in enumerate(next_states):
        for target in targets:
            if target != state:
                distances[state, target] = 1.0
    for middle in range(count):
        distances = np.minimum(distances, distances[:, middle : middle + 1] + distances[middle : middle + 1, :])
    return distances


def value_iteration(next_states: np.ndarray, discount: float, gc_negative: bool = False):
    """``(V [g, s], Q [g, s, m])`` by value iteration under the sampler's reward: ``r = 1(s == g)`` (minus 1 with
    ``gc_negative``) with the bootstrap cut at the goal."""
    count = next_states.shape[0]
    step_reward, goal_reward = (-1.0, 0.0) if gc_negative else (0.0, 1.0)
    values = np.zeros((count, count))
    at_goal = np.eye(count, dtype=bool)[:, :, None]  # [g, s, 1]
    for _ in range(10 * count + 100):
        q = np.where(at_goal, goal_reward, step_reward + discount * values[:, next_states])  # [g, s, m]
        values = q.max(axis=2)
    return values, q


@pytest.mark.parametrize("name", SMALL)
def test_bfs_distances_equal_brute_force(name):
    graph = task_graph(parse_horizon_name(name)[0])
    expected = floyd_warshall(graph.next_states)
    states = np.arange(graph.num_states)
    forward = distances_from(graph, states)
    backward = distances_to(graph, states).T  # distances_to[g, s] = d(s, g)
    for table in (forward, backward):
        np.testing.assert_array_equal(np.where(table == UNREACHABLE, np.inf, table), expected)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("gc_negative", [False, True])
def test_optimal_values_equal_value_iteration(name, gc_negative):
    graph = task_graph(parse_horizon_name(name)[0])
    values, q = value_iteration(graph.next_states, DISCOUNT, gc_negative)
    distances = distances_to(graph, np.arange(graph.num_states))  # [g, s]
    np.testing.assert_allclose(optimal_values(distances, DISCOUNT, gc_negative), values, atol=1e-9)
    for goal in range(graph.num_states):
        np.testing.assert_allclose(optimal_q_values(graph, distances[goal], DISCOUNT, gc_negative), q[goal], atol=1e-9)


def test_values_are_discount_to_the_distance_by_hand():
    # lock-L5 (stall): from position i the goal j >= i is j - i right moves away; j < i is unreachable.
    graph = task_graph(HorizonSpec("lock", 5))
    distances = distances_to(graph, [3])[0]
    np.testing.assert_allclose(optimal_values(distances, 0.5), [0.125, 0.25, 0.5, 1.0, 0.0, 0.0])
    q = optimal_q_values(graph, distances, 0.5)
    right = graph.combination[1]
    assert q[1, right] == 0.5 * 0.5  # one step, then one more
    assert q[1, (right + 1) % 4] == 0.5 * 0.25  # stalls: still two away
    reset = task_graph(HorizonSpec("lock", 5, reset=True))
    assert distances_to(reset, [1])[0][4] == 2  # a wrong move back to 0, then the right one


def test_mazes_are_perfect_and_reproducible():
    for size, layout in ((4, 0), (7, 3), (16, 1)):
        spec = HorizonSpec("maze", size, layout)
        graph = task_graph(spec)
        sides = graph.open_sides
        # walls are shared: the east side of a cell is the west side of its neighbour, ...; the border is closed
        grid = sides.reshape(size, size, 4)
        np.testing.assert_array_equal(grid[:, :-1, 0], grid[:, 1:, 1])
        np.testing.assert_array_equal(grid[:-1, :, 2], grid[1:, :, 3])
        assert not grid[:, -1, 0].any() and not grid[:, 0, 1].any() and not grid[-1, :, 2].any()
        assert not grid[0, :, 3].any()
        # a spanning tree: connected with N^2 - 1 passages
        assert sides.sum() // 2 == size * size - 1
        assert (distances_from(graph, [0])[0] < UNREACHABLE).all()
        assert task_graph.__wrapped__(spec).open_sides.tobytes() == sides.tobytes()  # rebuilt, not cached
    assert (
        task_graph(HorizonSpec("maze", 8, 1)).open_sides.tobytes()
        != task_graph(HorizonSpec("maze", 8, 2)).open_sides.tobytes()
    )
    # the point mass moves on the maze of the same size and layout
    assert (
        task_graph(HorizonSpec("pointmaze", 8, 1)).open_sides.tobytes()
        == task_graph(HorizonSpec("maze", 8, 1)).open_sides.tobytes()
    )


def test_maze_moves_follow_the_action_vectors():
    graph = task_graph(HorizonSpec("maze", 5))
    rows, cols = np.divmod(np.arange(25), 5)
    for move, (dx, dy) in enumerate(MOVES.astype(int)):
        target = graph.next_states[:, move]
        moved = target != np.arange(25)
        np.testing.assert_array_equal(moved, graph.open_sides[:, move])
        np.testing.assert_array_equal(target[moved], ((rows + dy) * 5 + cols + dx)[moved])


@pytest.mark.parametrize("name", ["maze-n8", "lock-L12-reset", "pointmaze-n6"])
def test_five_evaluation_tasks_span_the_distances(name):
    spec = parse_horizon_name(name)[0]
    graph = task_graph(spec)
    tasks = evaluation_tasks(spec)
    longest = diameter_pair(graph)[2]
    assert longest == floyd_warshall(graph.next_states)[np.isfinite(floyd_warshall(graph.next_states))].max()
    assert [task.task_name for task in tasks] == [f"task{i}" for i in range(1, 6)]
    assert [task.distance for task in tasks] == [max(1, round(f * longest)) for f in EVAL_FRACTIONS]
    for task in tasks:
        assert distances_from(graph, [task.init_state])[0][task.goal_state] == task.distance
    assert max_episode_steps(spec) >= 2 * longest * spec.steps_per_edge + 50
    assert tasks == evaluation_tasks.__wrapped__(spec)


def test_names_parse_and_bad_names_list_the_valid_forms():
    spec, dataset_type, oraclerep = parse_horizon_name("lock-L64-reset-layout2-navigate-oraclerep-v0")
    assert (spec, dataset_type, oraclerep) == (HorizonSpec("lock", 64, 2, True), "navigate", True)
    assert spec.name == "lock-L64-reset-layout2"
    assert parse_horizon_name("pointmaze-n16-explore")[0] == HorizonSpec("pointmaze", 16)
    parsed = parse_env_name("maze-n32-layout1-navigate")
    assert (parsed.task.name, parsed.task.family, parsed.dataset_type) == (
        "maze-n32-layout1",
        "horizon-maze",
        "navigate",
    )
    assert parse_env_name("pointmaze-medium-navigate").task.family == "pointmaze"  # OGBench's maze is untouched
    for bad in ("maze-32", "maze-n1", "maze-n300", "lock-L1", "maze-n8-stitch", "lock-5", "maze-n8-layout"):
        with pytest.raises(ScalerlError, match=r"maze-n\{N\}\[-layout\{K\}\]") as error:
            parse_env_name(bad)
        assert "\n" not in str(error.value)
