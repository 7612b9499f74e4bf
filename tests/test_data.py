"""Loading and validating OGBench-layout shards."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest

from scalerl.data import load_arrays, load_dataset
from scalerl.errors import ScalerlError


def write_shard(path, episodes=3, length=5, obs_dim=2, action_dim=1, seed=0, **overrides):
    """An OGBench-layout shard: each episode has ``length`` rows, the last one terminal."""
    rng = np.random.default_rng(seed)
    rows = episodes * length
    terminals = np.zeros(rows, np.float32)
    terminals[length - 1 :: length] = 1.0
    arrays = dict(
        observations=rng.normal(size=(rows, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(rows, action_dim)).astype(np.float32),
        terminals=terminals,
        qpos=rng.normal(size=(rows, 2)).astype(np.float32),
    )
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_directory_of_shards_concatenates_in_order(tmp_path):
    first = write_shard(tmp_path / "d-00000.npz", seed=0)
    second = write_shard(tmp_path / "d-00001.npz", seed=1, episodes=2)
    write_shard(tmp_path / "d-00000-val.npz", seed=2, episodes=1)
    arrays = load_arrays(tmp_path)
    np.testing.assert_array_equal(
        arrays["observations"], np.concatenate([first["observations"], second["observations"]])
    )
    dataset = load_dataset(tmp_path)
    assert dataset.size == 25 and dataset.num_transitions == 20
    assert np.asarray(dataset.traj_ends)[6] == 9
    val = load_dataset(tmp_path, split="val")
    assert val.size == 5


def test_last_valid_row_is_the_trajectory_end_for_goals(tmp_path):
    """OGBench's compact layout: the final row is only a next state; the last valid row is the last current state."""
    write_shard(tmp_path / "d-00000.npz", episodes=2, length=4)
    dataset = load_dataset(tmp_path)
    np.testing.assert_array_equal(dataset.traj_ends, [3, 3, 3, 3, 7, 7, 7, 7])
    np.testing.assert_array_equal(dataset.valid_idxs, [0, 1, 2, 4, 5, 6])
    np.testing.assert_array_equal(dataset.last_valid(dataset.valid_idxs), [2, 2, 2, 6, 6, 6])


def test_single_ogbench_file_and_its_val_companion(tmp_path):
    write_shard(tmp_path / "pointmaze-medium-navigate-v0.npz")
    write_shard(tmp_path / "pointmaze-medium-navigate-v0-val.npz", episodes=1)
    assert load_dataset(tmp_path / "pointmaze-medium-navigate-v0.npz").size == 15
    assert load_dataset(tmp_path / "pointmaze-medium-navigate-v0.npz", split="val").size == 5


def one_line_error(call):
    with pytest.raises(ScalerlError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path):
    message = one_line_error(lambda: load_dataset(tmp_path / "nope"))
    assert "nope" in message and "no such" in message


def test_truncated_file(tmp_path):
    write_shard(tmp_path / "d-00000.npz")
    data = (tmp_path / "d-00000.npz").read_bytes()
    (tmp_path / "d-00000.npz").write_bytes(data[: len(data) // 2])
    message = one_line_error(lambda: load_dataset(tmp_path))
    assert "d-00000.npz" in message and "truncated or corrupt" in message


def test_missing_key(tmp_path):
    write_shard(tmp_path / "d-00000.npz", actions=None)
    message = one_line_error(lambda: load_dataset(tmp_path))
    assert "d-00000.npz" in message and "'actions'" in message


def test_nan_in_actions(tmp_path):
    actions = np.zeros((15, 1), np.float32)
    actions[7, 0] = np.nan
    write_shard(tmp_path / "d-00000.npz", actions=actions)
    message = one_line_error(lambda: load_dataset(tmp_path))
    assert "'actions'" in message and "NaN" in message and "row 7" in message


def test_shards_disagree_on_shape(tmp_path):
    write_shard(tmp_path / "d-00000.npz", obs_dim=2)
    write_shard(tmp_path / "d-00001.npz", obs_dim=3)
    message = one_line_error(lambda: load_dataset(tmp_path))
    assert "d-00001.npz" in message and "'observations'" in message and "must agree" in message


def test_shards_disagree_on_dtype(tmp_path):
    write_shard(tmp_path / "d-00000.npz")
    write_shard(tmp_path / "d-00001.npz", qpos=np.zeros((15, 2), np.float64))
    message = one_line_error(lambda: load_dataset(tmp_path))
    assert "d-00001.npz" in message and "'qpos'" in message


def test_truncated_trajectory(tmp_path):
    terminals = np.zeros(15, np.float32)
    terminals[4] = 1.0
    write_shard(tmp_path / "d-00000.npz", terminals=terminals)
    assert "last row is not terminal" in one_line_error(lambda: load_dataset(tmp_path))


@pytest.mark.integration
def test_observation_dimension_checked_against_environment(tmp_path):
    write_shard(tmp_path / "d-00000.npz", obs_dim=7)
    message = one_line_error(lambda: load_dataset(tmp_path, env_name="pointmaze-medium-navigate"))
    assert "d-00000.npz" in message and "dimension 7" in message and "expects 2" in message


@pytest.mark.integration
def test_oracle_reps_for_maze_are_xy(tmp_path):
    arrays = write_shard(tmp_path / "d-00000.npz", obs_dim=2)
    dataset = load_dataset(tmp_path, env_name="pointmaze-medium-navigate-oraclerep")
    np.testing.assert_allclose(dataset.oracle_reps, arrays["qpos"][:, :2])


def test_unknown_task_name():
    message = one_line_error(lambda: load_dataset("/tmp", env_name="cheetah-run"))
    assert "unknown task 'cheetah-run'" in message
