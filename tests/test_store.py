"""The packed store (issue 12, item 1): packing OGBench files and directories, resumable and atomic packs, what
training reads back, and one-line errors for bad sources and corrupt or truncated blocks."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest

import scalerl.store as store_module
from scalerl.data import block_subset, load_dataset
from scalerl.errors import ScalerlError
from scalerl.store import PackConfig, Store, pack


def write_npz(path, episodes=4, length=12, obs_dim=2, seed=0, **overrides):
    """An OGBench-layout file: ``episodes`` episodes of ``length`` rows each (the last one terminal), with qpos."""
    rng = np.random.default_rng(seed)
    rows = episodes * length
    terminals = np.zeros(rows, np.float32)
    terminals[length - 1 :: length] = 1.0
    arrays = dict(
        observations=rng.normal(size=(rows, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(rows, 2)).astype(np.float32),
        terminals=terminals,
        qpos=rng.normal(size=(rows, 2)).astype(np.float32),
        qvel=rng.normal(size=(rows, 2)).astype(np.float32),
    )
    arrays.update(overrides)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def write_source_dir(directory, files=3, stem="maze", **kwargs):
    """A directory of ``files`` OGBench-style files, each with a one-episode ``-val.npz`` companion."""
    os.makedirs(directory, exist_ok=True)
    for index in range(files):
        write_npz(os.path.join(directory, f"{stem}-{index:03d}.npz"), seed=index, **kwargs)
        write_npz(os.path.join(directory, f"{stem}-{index:03d}-val.npz"), episodes=1, seed=100 + index, **kwargs)
    return directory


def one_line_error(call) -> str:
    with pytest.raises(ScalerlError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_directory_packs_into_blocks_of_whole_episodes_that_load_as_the_npz_files_do(tmp_path):
    source = write_source_dir(tmp_path / "src")
    store = pack(PackConfig(str(source), str(tmp_path / "store"), block_transitions=24), progress=False)
    # 3 files x 4 episodes of 12 rows, 24 rows per block: 2 blocks of 2 episodes per file; blocks never span files.
    assert [(b.source, b.part, b.rows, b.episodes) for b in store.blocks["train"]] == [
        (s, p, 24, 2) for s in range(3) for p in range(2)
    ]
    assert [(b.source, b.rows) for b in store.blocks["val"]] == [(0, 12), (1, 12), (2, 12)]
    assert store.row_bytes() == (2 + 2) * 4 + 4  # observations, actions, traj_ends; qpos/qvel dropped, no env
    assert set(store.fields) == {"observations", "actions", "traj_ends"}
    for split in ("train", "val"):
        from_npz, from_store = load_dataset(source, split=split), load_dataset(tmp_path / "store", split=split)
        for name in ("observations", "actions", "traj_ends", "valid_idxs"):
            np.testing.assert_array_equal(getattr(from_store, name), getattr(from_npz, name))
            assert getattr(from_store, name).dtype == getattr(from_npz, name).dtype
    # A fixed validation subset (issue 12, item 5): whole blocks spread over the store, within the budget.
    assert [b.source for b in block_subset(store.blocks["val"], 22)] == [0, 1]
    assert [b.source for b in block_subset(store.blocks["val"], 11)] == [0]
    assert len(block_subset(store.blocks["val"], None)) == 3
    assert load_dataset(tmp_path / "store", split="val", max_transitions=11).size == 12


@pytest.mark.integration
def test_a_single_ogbench_file_packs_with_its_oracle_representations(tmp_path):
    """An official OGBench download: the task comes from the file name, oracle representations are precomputed."""
    path = tmp_path / "pointmaze-medium-navigate-v0.npz"
    arrays = write_npz(path, episodes=3)
    write_npz(tmp_path / "pointmaze-medium-navigate-v0-val.npz", episodes=1, seed=9)
    store = pack(PackConfig(str(path), str(tmp_path / "store"), keep_info=True), progress=False)
    assert store.env == "pointmaze-medium-navigate" and store.task == "pointmaze-medium"
    assert [b.rows for b in store.blocks["train"]] == [36] and [b.rows for b in store.blocks["val"]] == [12]
    assert {"oracle_reps", "qpos", "qvel"} <= set(store.fields)
    env = "pointmaze-medium-navigate-oraclerep"
    packed, loaded = load_dataset(tmp_path / "store", env_name=env), load_dataset(path, env_name=env)
    np.testing.assert_array_equal(packed.oracle_reps, loaded.oracle_reps)
    np.testing.assert_array_equal(packed.oracle_reps, arrays["qpos"][:, :2])
    np.testing.assert_array_equal(store.load("train", ["qvel"])["qvel"], arrays["qvel"])
    message = one_line_error(lambda: load_dataset(tmp_path / "store", env_name="pointmaze-large-navigate-oraclerep"))
    assert "oracle representations are pointmaze-medium's, not pointmaze-large's" in message


def test_an_interrupted_pack_is_never_a_store_and_a_rerun_finishes_it_identically(tmp_path, monkeypatch):
    source = write_source_dir(tmp_path / "src")
    reference = pack(PackConfig(str(source), str(tmp_path / "reference"), block_transitions=24), progress=False)

    original = store_module._pack_file
    calls = []

    def crash_on_the_fourth_file(path, split, *args):
        calls.append(path)
        if len(calls) == 4:  # after source 0 (train + val) and source 1's training file
            raise KeyboardInterrupt
        return original(path, split, *args)

    monkeypatch.setattr(store_module, "_pack_file", crash_on_the_fourth_file)
    config = PackConfig(str(source), str(tmp_path / "store"), block_transitions=24)
    with pytest.raises(KeyboardInterrupt):
        pack(config, progress=False)
    assert "unfinished store" in one_line_error(lambda: Store(tmp_path / "store"))
    assert "unfinished store" in one_line_error(lambda: load_dataset(tmp_path / "store"))
    # Other settings may not resume it.
    message = one_line_error(lambda: pack(PackConfig(str(source), str(tmp_path / "store"), block_transitions=12)))
    assert "unfinished pack with other settings" in message

    monkeypatch.setattr(store_module, "_pack_file", original)
    store = pack(config, progress=False)
    assert store.meta == reference.meta
    for split in ("train", "val"):
        for ours, theirs in zip(store.blocks[split], reference.blocks[split]):
            for name in store.fields:
                assert open(ours.path(name), "rb").read() == open(theirs.path(name), "rb").read()
    assert not [name for name in os.listdir(tmp_path / "store" / "train") if name.startswith(".tmp-")]
    assert store.verify() == []
    pack(config, progress=False)  # a finished store: nothing to do, nothing rewritten
    other = PackConfig(str(source), str(tmp_path / "store"), block_transitions=12)
    assert "already holds a store packed with other settings" in one_line_error(lambda: pack(other))


def test_corrupt_or_truncated_blocks_are_one_line_errors_naming_the_file(tmp_path):
    source = write_source_dir(tmp_path / "src", files=1)
    store = pack(PackConfig(str(source), str(tmp_path / "store"), block_transitions=24), progress=False)
    block = store.blocks["train"][1]
    path = block.path("observations")
    data = open(path, "rb").read()

    open(path, "wb").write(data[:-8])  # truncated: caught when the store is opened, before any data is read
    message = one_line_error(lambda: load_dataset(tmp_path / "store"))
    assert path in message and "truncated" in message
    open(path, "wb").write(data[:20] + b"X" + data[21:])  # same size, corrupt header: caught when the block is read
    message = one_line_error(lambda: Store(tmp_path / "store").read_field(block, "observations"))
    assert path in message and "corrupt block file" in message
    open(path, "wb").write(data[:-4] + b"\xff\xff\xff\x7f")  # a flipped value: only the crc32 check sees it
    assert Store(tmp_path / "store").verify() == [path]
    os.remove(path)
    assert "missing" in one_line_error(lambda: Store(tmp_path / "store"))


def test_bad_sources_are_refused_before_anything_is_written(tmp_path):
    source = write_source_dir(tmp_path / "src", files=2)
    write_npz(source / "maze-001.npz", obs_dim=3, seed=1)  # another observation width than maze-000
    message = one_line_error(lambda: pack(PackConfig(str(source), str(tmp_path / "a"))))
    assert "maze-001.npz" in message and "'observations'" in message and "must agree" in message
    assert not (tmp_path / "a").exists()

    nan_dir = tmp_path / "nan"
    os.makedirs(nan_dir)
    actions = np.zeros((48, 2), np.float32)
    actions[7, 1] = np.nan
    write_npz(nan_dir / "maze-000.npz", actions=actions)
    message = one_line_error(lambda: pack(PackConfig(str(nan_dir), str(tmp_path / "b")), progress=False))
    assert "maze-000.npz" in message and "NaN" in message and "row 7" in message
    assert "unfinished store" in one_line_error(lambda: Store(tmp_path / "b"))

    terminals = np.zeros(48, np.float32)
    terminals[11] = 1.0
    write_npz(nan_dir / "maze-000.npz", terminals=terminals)
    message = one_line_error(lambda: pack(PackConfig(str(nan_dir), str(tmp_path / "c")), progress=False))
    assert "last row is not terminal" in message

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    good = write_source_dir(tmp_path / "good", files=1)
    message = one_line_error(lambda: pack(PackConfig(str(good), str(tmp_path / "busy"))))
    assert "is not a store" in message and (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    assert "no such dataset" in one_line_error(lambda: pack(PackConfig(str(tmp_path / "nope"), str(tmp_path / "d"))))


def test_the_pack_command_prints_what_it_wrote(tmp_path):
    from typer.testing import CliRunner

    from scalerl.cli import app

    source = write_source_dir(tmp_path / "src", files=2)
    args = ["pack", str(source), str(tmp_path / "store"), "--block-transitions", "24", "--no-progress", "--verify"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "88 transitions in 4 blocks (+22 val in 2)" in result.output and "crc32 verified" in result.output
