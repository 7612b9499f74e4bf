"""Training from a packed store (issue 12, items 2, 3 and 5): the window's schedule and contents, runs that equal the
whole-dataset run bit for bit, resumed windowed runs, the reference's one-file rotation, uniformity figures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

from scalerl.agents import get_agent
from scalerl.data import load_dataset
from scalerl.errors import ScalerlError
from scalerl.offline.loop import TrainConfig, train
from scalerl.offline.window import (
    Rotation,
    StreamingWindow,
    WindowSchedule,
    epoch_order,
    open_training_data,
    sampling_figures,
    slot_arrays,
)
from scalerl.overrides import build_config
from scalerl.runs import read_jsonl, without_wall_time
from scalerl.sampling import GoalSamplerConfig, draw_indices
from scalerl.store import PackConfig, Store, pack
from tests.test_store import write_npz, write_source_dir

ENV = "pointmaze-medium-navigate"
FIELDS = ["observations", "actions"]
DRAW = jax.jit(draw_indices, static_argnums=(2, 3))


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """The runs' curves.png is not under test here (matplotlib costs a second per run)."""
    monkeypatch.setattr("scalerl.plots.plot_run", lambda run_dir: None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 files x 4 episodes x 12 rows (+ a one-episode -val each), packed into 6 blocks of 2 episodes (22 transitions);
    and the first file alone (``one-npz``, ``one-store``).

    A window of 2 blocks, one file under the rotation and the one-file dataset have the same shapes, and all runs
    use 5-update chunks and one -val file's worth of validation data, so they share one compilation.
    """
    root = tmp_path_factory.mktemp("window")
    for name, files in (("", 3), ("one-", 1)):
        source = write_source_dir(root / f"{name}npz", files=files)
        pack(PackConfig(str(source), str(root / f"{name}store"), block_transitions=24), progress=False)
    return root


def agent_config():
    _, config_cls = get_agent("gcbc")
    overrides = dict(batch_size=8, hidden_dims=(16, 16), actor_p_trajgoal=0.5, actor_p_randomgoal=0.5)
    return build_config(config_cls, overrides)


def run_config(data, out, steps, **overrides):
    values = dict(agent="gcbc", env=ENV, data=str(data), out=str(out), steps=steps, seeds=1, log_interval=10)
    values.update(save_interval=20, eval_episodes=0, **overrides)
    return TrainConfig(**values)


def run_files(run_dir, step):
    metrics = without_wall_time(read_jsonl(os.path.join(run_dir, "metrics.jsonl")))
    checkpoint = open(os.path.join(run_dir, "checkpoints", f"step_{step:08d}.msgpack"), "rb").read()
    return metrics, checkpoint


def host_window(store, schedule, refresh, slot_rows, slot_valid):
    """The window of ``refresh`` built on the host from the schedule alone (what the device window must equal)."""
    blocks = [store.blocks["train"][b] for b in schedule.slots(refresh)]
    parts = [slot_arrays(store, block, FIELDS, slot_rows, slot_valid) for block in blocks]
    rows = [slot * slot_rows for slot in range(len(parts))]
    return dict(
        observations=np.concatenate([p.observations for p in parts]),
        actions=np.concatenate([p.actions for p in parts]),
        traj_ends=np.concatenate([p.traj_ends + r for p, r in zip(parts, rows)]),
        valid_idxs=np.concatenate([p.valid_idxs + r for p, r in zip(parts, rows)]),
    )


def test_the_schedule_is_a_pure_function_of_seed_and_refresh():
    for num_blocks, window, refresh_blocks in ((7, 3, 2), (6, 6, 1), (5, 1, 1)):
        schedule = WindowSchedule(num_blocks, window, 100, refresh_blocks, seed=3)
        slots = schedule.slots(0)
        for refresh in range(1, 25):
            for slot, block in schedule.changes(refresh):
                slots[slot] = block
            np.testing.assert_array_equal(slots, schedule.slots(refresh))  # incremental == recomputed
        assert schedule.refresh_of(99) == 0 and schedule.refresh_of(100) == 1
    for epoch in range(4):
        assert sorted(epoch_order(3, epoch, 50)) == list(range(50))  # every block once per epoch
    assert list(epoch_order(3, 0, 50)) != list(epoch_order(4, 0, 50)) != list(epoch_order(3, 1, 50))


def test_the_device_window_holds_the_scheduled_blocks_and_batches_stay_in_their_slots(tiny):
    store = Store(tiny / "store")
    schedule = WindowSchedule(6, 2, 5, 1, seed=0)
    window = StreamingWindow(store, FIELDS, schedule, 0, None)
    resumed = StreamingWindow(store, FIELDS, schedule, 20, None)  # a session that starts at update 20
    try:
        for step in range(0, 40, 5):
            device = window.dataset_at(step)
            expected = host_window(store, schedule, step // 5, 24, 22)
            for name, value in expected.items():
                np.testing.assert_array_equal(np.asarray(getattr(device, name)), value)
            if step >= 20:
                for name in expected:
                    np.testing.assert_array_equal(getattr(resumed.dataset_at(step), name), getattr(device, name))
            idxs, value_goals, actor_goals = DRAW(jax.random.PRNGKey(step), device, GoalSamplerConfig(), 64)
            for goals in (idxs, value_goals, actor_goals):
                assert np.all(np.asarray(device.traj_ends)[goals] != np.asarray(goals))  # valid rows only
            rows = np.arange(device.size)
            assert np.all(np.asarray(device.traj_ends) // 24 == rows // 24)  # trajectories never leave their slot
        assert window.next_change(7) == 10
    finally:
        window.close()
        resumed.close()


def test_a_smaller_block_fills_its_slot_by_repeating_its_transitions_evenly(tmp_path):
    write_npz(tmp_path / "src.npz", episodes=5)  # 60 rows, 24 per block: blocks of 1, 2 and 2 episodes
    store = pack(PackConfig(str(tmp_path / "src.npz"), str(tmp_path / "store"), block_transitions=24), progress=False)
    assert [b.episodes for b in store.blocks["train"]] == [1, 2, 2]
    part = slot_arrays(store, store.blocks["train"][0], FIELDS, 24, 22)
    assert np.bincount(part.valid_idxs).tolist() == [2] * 11  # each of the 11 transitions twice: a 1/3 share
    np.testing.assert_array_equal(part.traj_ends, [11] * 12 + list(range(12, 24)))  # padding: never a transition
    np.testing.assert_array_equal(part.observations[12:], 0)


@pytest.mark.integration
def test_a_run_on_the_store_with_a_whole_window_equals_the_npz_run_bit_for_bit(tiny, tmp_path):
    """Issue 12: training from the packed store (window = the whole store; no --window, the default, takes the same
    path) equals today's whole-dataset run from the .npz files: metrics, validation losses and parameters."""
    train(run_config(tiny / "one-npz", tmp_path / "npz", 20, log_interval=5), agent_config(), progress=False)
    config = run_config(tiny / "one-store", tmp_path / "store", 20, log_interval=5, window="all")
    train(config, agent_config(), progress=False)
    metrics, checkpoint = run_files(tmp_path / "npz", 20)
    assert run_files(tmp_path / "store", 20) == (metrics, checkpoint)
    assert len(metrics) == 4 and "val/actor/loss" in metrics[0]


@pytest.mark.integration
def test_a_resumed_windowed_run_equals_an_uninterrupted_one(tiny, tmp_path):
    """A window of 2 of the 6 blocks, one block replaced every 5 updates (two chunks per metrics line)."""
    settings = dict(window="44", window_refresh=5, val_transitions=11)
    train(run_config(tiny / "store", tmp_path / "full", 40, **settings), agent_config(), progress=False)
    killed = tmp_path / "killed"
    train(run_config(tiny / "store", killed, 30, **settings), agent_config(), progress=False)
    os.remove(killed / "checkpoints" / "step_00000030.msgpack")  # killed after its line at 30, before the checkpoint
    train(run_config(tiny / "store", killed, 40, **settings), agent_config(), resume=True, progress=False)
    assert run_files(killed, 40) == run_files(tmp_path / "full", 40)


@pytest.mark.integration
def test_the_reference_rotation_trains_on_one_file_at_a_time(tiny, tmp_path):
    """Park et al. 2025: file (t // N) % files for update t, in sorted order; validation on that file's companion."""
    store = Store(tiny / "store")
    rotation = Rotation(store, FIELDS, 5, 0, validate=True)
    try:
        for step, source in ((0, 0), (5, 1), (14, 2), (15, 0)):
            blocks = [b for b in store.blocks["train"] if b.source == source]
            expected = store.load("train", FIELDS, blocks)["observations"]
            np.testing.assert_array_equal(rotation.dataset_at(step).observations, expected)
        val_of_file_1 = store.load("val", FIELDS, [store.blocks["val"][1]])["observations"]
        np.testing.assert_array_equal(rotation.validation_at(10).observations, val_of_file_1)  # updates 5..9
    finally:
        rotation.close()
    train(run_config(tiny / "store", tmp_path / "rotation", 20, rotation=5), agent_config(), progress=False)
    metrics, _ = run_files(tmp_path / "rotation", 20)
    assert [row["step"] for row in metrics] == [10, 20] and all("val/actor/loss" in row for row in metrics)


def test_bad_data_flags_are_one_line_errors(tiny, tmp_path):
    def refused(data, **overrides):
        with pytest.raises(ScalerlError) as info:
            open_training_data(run_config(data, tmp_path / "run", 10, **overrides), 0, 8)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "--window: needs a packed store" in refused(tiny / "npz", window="1M")
    assert "--rotation: needs a packed store" in refused(tiny / "npz", rotation=1000)
    assert "--window: 10 is less than one block (22 transitions)" in refused(tiny / "store", window="10")
    assert "--window: expected a size like" in refused(tiny / "store", window="eightGB")
    assert "give one of them" in refused(tiny / "store", window="44", rotation=10)
    message = refused(tiny / "store", window="44", refresh_blocks=3)
    assert "--refresh-blocks: expected at most the window's 2 blocks" in message
    assert load_dataset(tiny / "store", max_transitions=1).size == 24  # one block: what `scalerl eval` needs


def test_uniformity_figures_for_the_whole_dataset_the_window_and_the_rotation():
    sizes, sources = [100] * 40, [b // 4 for b in range(40)]  # 40 blocks, 4 per source file
    uniform = sampling_figures(sizes, sources, "uniform", batch_size=64)
    assert uniform["tv_distance"] == pytest.approx(0) and uniform["max_rate"] == pytest.approx(1)
    assert uniform["transitions_sampled"] == pytest.approx(1 - np.exp(-uniform["updates"] * 64 / 4000))
    rotation = sampling_figures(sizes, sources, "rotation", batch_size=64, refresh_interval=10)
    assert rotation["sources_per_batch"] == pytest.approx(1) and rotation["blocks_per_batch"] < 4
    slow = sampling_figures(sizes, sources, "window", 64, window_blocks=8, refresh_interval=20, refresh_blocks=1)
    fast = sampling_figures(sizes, sources, "window", 64, window_blocks=8, refresh_interval=1, refresh_blocks=1)
    assert 7 < fast["blocks_per_batch"] <= 8 and fast["sources_per_batch"] > rotation["sources_per_batch"]
    assert fast["tv_distance"] < slow["tv_distance"] and slow["blocks_seen"] < fast["blocks_seen"] == 1.0
