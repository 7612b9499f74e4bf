"""Value-error diagnostics: exact synthetic agents give zero error, a one-step shift gives one step of bias, rollouts
of an optimal policy always succeed, and a real run trains, then diagnoses from its run directory."""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest
from typer.testing import CliRunner

from scalerl.errors import ScalerlError
from scalerl.horizon.config import DiagnoseConfig
from scalerl.horizon.diagnostics import COLUMNS, diagnose_agents, implied_steps, sample_pairs, via_distances
from scalerl.horizon.tasks import HorizonSpec, distances_from, task_graph
from tests.horizon.table_agent import DistanceTableAgent, TableConfig, exact_values, table_agents

SPEC = HorizonSpec("maze", 4)  # the task of the session's dataset: the table agents' programs compile once
SETTINGS = DiagnoseConfig(bins=5, pairs_per_bin=32, rollouts_per_bin=3)


def test_implied_steps_read_each_kind_of_value():
    distances = np.array([0.0, 1.0, 7.0])
    np.testing.assert_allclose(implied_steps(0.9**distances, "value", 0.9, 1e-6), distances, atol=1e-12)
    negative = -(1 - 0.9**distances) / (1 - 0.9)
    np.testing.assert_allclose(implied_steps(negative, "negative", 0.9, 1e-6), distances, atol=1e-12)
    np.testing.assert_array_equal(implied_steps(distances, "distance", 0.9, 1e-6), distances)
    assert np.isnan(implied_steps(distances, "score", 0.9, 1e-6)).all()
    assert implied_steps(np.array([-0.5]), "value", 0.5, 0.25)[0] == 2.0  # floored at 0.25 = 0.5 ** 2


def test_pairs_fall_in_their_distance_bins():
    pairs = sample_pairs(HorizonSpec("lock", 9, reset=True), 3, 20, np.random.default_rng(0))
    graph = task_graph(HorizonSpec("lock", 9, reset=True))
    np.testing.assert_array_equal(pairs.edges, [1, 4, 7, 10])
    for start, goal, distance, index in zip(pairs.starts, pairs.goals, pairs.distances, pairs.bins):
        assert distances_from(graph, [start])[0][goal] == distance
        assert pairs.edges[index] <= distance < pairs.edges[index + 1]
    point = sample_pairs(HorizonSpec("pointmaze", 4), 2, 5, np.random.default_rng(0))
    assert (point.distances % 4 == 0).all() and point.edges[0] == 4  # reference steps: 4 per cell


def test_subgoal_reference_goes_through_the_subgoal_unless_the_goal_is_on_the_way():
    spec = HorizonSpec("lock", 9)
    np.testing.assert_array_equal(via_distances(spec, [1, 1, 2], [6, 3, 2], [4, 7, 5]), [3, 6, 3])


@pytest.mark.parametrize(
    "kind, extra_steps",
    [("value", 0.0), ("value", 1.0), ("negative", 0.0), ("negative", -2.0), ("distance", 0.0), ("distance", 3.0)],
)
def test_synthetic_agents_give_their_exact_error(kind, extra_steps):
    discount = 0.95
    if kind == "distance":
        graph = task_graph(SPEC)
        values = distances_from(graph, np.arange(graph.num_states)).T + extra_steps  # [g, s] = d(s, g) + extra
        agents = table_agents(SPEC, values, cls=DistanceTableAgent)
    else:
        agents = table_agents(SPEC, exact_values(SPEC, discount, extra_steps, gc_negative=kind == "negative"))
    config = TableConfig(discount=discount, gc_negative=kind == "negative")
    report = diagnose_agents(
        agents,
        config,
        "maze-n4",
        SETTINGS if extra_steps == 0 else SETTINGS.__class__(bins=5, pairs_per_bin=32, rollouts_per_bin=0),
    )
    value = report["summary"]["value"]
    assert report["levels"][0]["kind"] == kind
    np.testing.assert_allclose(value["bias_steps"], extra_steps, atol=1e-4)
    np.testing.assert_allclose(value["abs_error_steps"], abs(extra_steps), atol=1e-4)
    np.testing.assert_allclose(value["spearman"], 1.0)
    assert len(value["bins"]) == 5 and np.all(np.diff(value["distance_mean"]) > 0)
    rows = [row for row in report["rows"] if row["level"] == "value"]
    assert len(rows) == 2 * 5 and list(rows[0]) == list(COLUMNS)
    if extra_steps == 0:  # the greedy policy of exact values reaches every goal
        policy = report["summary"]["policy"]
        np.testing.assert_array_equal(policy["success"], 1.0)
        assert sum(row["rollouts"] for row in report["rows"] if row["level"] == "policy") == 2 * 5 * 3


def test_diagnosing_a_real_run_writes_table_and_plot(maze_data, tmp_path):
    from scalerl.agents.gcivl import GCIVLConfig
    from scalerl.cli import app
    from scalerl.offline.loop import TrainConfig, train

    directory, _ = maze_data
    run_dir = str(tmp_path / "run")
    config = TrainConfig(
        agent="gcivl",
        env="maze-n4",
        data=str(directory),
        out=run_dir,
        steps=4,
        log_interval=2,
        save_interval=4,
        eval_episodes=0,
        validate=False,
    )
    agent_config = GCIVLConfig(hidden_dims=(16,), batch_size=16, discount=0.9)
    train(config, agent_config, progress=False)
    # rollouts of a real policy are left out here (a compile); the table agents' tests run them
    result = CliRunner().invoke(
        app, ["diagnose", run_dir, "--bins", "3", "--pairs-per-bin", "8", "--rollouts-per-bin", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "value: |error| in steps by distance" in result.output
    for name in ("diagnostics.csv", "diagnostics.json", "diagnostics.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0
    report = json.loads(open(os.path.join(run_dir, "diagnostics.json")).read())
    assert (report["agent"], report["step"], report["task"]) == ("gcivl", 4, "maze-n4")
    assert {row["level"] for row in report["rows"]} == {"value"}
    assert all(np.isfinite(row["abs_error_steps"]) for row in report["rows"] if row["level"] == "value")
    header = open(os.path.join(run_dir, "diagnostics.csv")).readline().strip().split(",")
    assert header == list(COLUMNS)
    with pytest.raises(ScalerlError, match="--checkpoint: no checkpoint at step 3"):
        from scalerl.horizon.diagnostics import diagnose_run

        diagnose_run(run_dir, DiagnoseConfig(checkpoint=3))
    with pytest.raises(ScalerlError, match="--pairs-per-bin: expected a positive integer"):
        DiagnoseConfig(pairs_per_bin=0)
