"""Tests of ``scalerl generate``: size parsing and planning, file writing, oracle semantics, determinism across worker
counts, resume after a crash (including a real SIGKILL), OGBench loading, the manifest and one-line CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scalerl.envs import TASKS
from scalerl.errors import ScalerlError
from scalerl.generate.oracles import EpisodeSource, _scene_block_visible, cells_at_distance, default_preset
from scalerl.generate.shards import generate_dataset, parse_size, plan_dataset, write_npz
from scalerl.manifest import FORMAT, MANIFEST, read_manifest, sha256_file
from tests.generate.helpers import TINY, checksums, run_cli, snapshot, tiny_plan

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# ------------------------------------------------------------------------------------------------- sizes, plans


@pytest.mark.parametrize(
    ("text", "expected"),
    [("200000", 200_000), ("500K", 500_000), ("10M", 10_000_000), ("1B", 10**9), ("1.5M", 1_500_000),
     ("2k", 2_000), ("1_000", 1_000), (" 3m ", 3_000_000), (7, 7)],
)  # fmt: skip
def test_parse_size_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-5", "abc", "0", "0K", "1.5", "", "10X", "1.0005K", "M", "1e6"])
def test_parse_size_rejects_with_flag_name(text):
    with pytest.raises(ScalerlError, match="^--transitions: expected a positive count"):
        parse_size(text)


def test_presets_follow_ogbench_commands():
    play = default_preset(TASKS["puzzle-3x3"], "play")
    assert (play.episodes, play.episode_length) == (1000, 1000)
    assert (play.oracle.kind, play.oracle.noise, play.oracle.noise_smoothing) == ("plan", 0.1, 0.5)
    noisy = default_preset(TASKS["cube-double"], "noisy")
    assert (noisy.oracle.kind, noisy.oracle.min_norm, noisy.oracle.p_random_action) == ("markov", 0.4, 0.1)
    assert default_preset(TASKS["puzzle-4x4"], "noisy").oracle.p_random_action == 0.2
    giant = default_preset(TASKS["pointmaze-giant"], "navigate")
    assert (giant.episodes, giant.episode_length, giant.oracle.noise) == (500, 2000, 0.5)
    stitch = default_preset(TASKS["pointmaze-medium"], "stitch")
    assert (stitch.episodes, stitch.episode_length, stitch.oracle.goal_distance) == (5000, 200, 4)
    assert default_preset(TASKS["puzzle-4x6"], "play").episodes == 5000


def test_plan_default_size_is_ogbench_size_in_shards_of_100():
    plan = plan_dataset("puzzle-3x3-play")
    assert (plan.dataset_type, plan.total_episodes, plan.episodes_per_shard, plan.num_shards) == ("play", 1000, 100, 10)
    assert plan.transitions == 1_000_000 and plan.val_episodes_per_shard == 10
    assert plan.shard_file(3) == "puzzle-3x3-play-v0-00003.npz"
    assert plan.shard_file(3, val=True) == "puzzle-3x3-play-v0-00003-val.npz"


@pytest.mark.parametrize(
    ("kwargs", "episodes", "val"),
    [
        ({"transitions": "200K"}, [100, 100], [10, 10]),
        ({"transitions": "100K"}, [50, 50], [5, 5]),  # small datasets still get two shards
        ({"transitions": "250000"}, [100, 100, 50], [10, 10, 5]),
        ({"transitions": "1500"}, [1, 1], [1, 1]),  # rounded up to whole episodes; val at least 1
        ({"transitions": "1000"}, [1], [1]),
        ({"transitions": "10K", "shards": 3}, [4, 4, 4], [1, 1, 1]),  # equal shards, total rounded up
        ({"transitions": "10K", "episodes_per_shard": 4}, [4, 4, 2], [1, 1, 1]),
        ({"shards": 3, "episodes_per_shard": 7}, [7, 7, 7], [1, 1, 1]),
    ],
)
def test_plan_shard_layout(kwargs, episodes, val):
    plan = plan_dataset("puzzle-3x3", "play", **kwargs)
    assert [plan.episodes(k) for k in range(plan.num_shards)] == episodes
    assert [plan.val_episodes(k) for k in range(plan.num_shards)] == val
    assert plan.transitions == sum(episodes) * 1000


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"env": "nosuch"}, "--env"),
        ({"env": "humanoidmaze-giant", "dataset_type": "navigate"}, "--env"),  # no scripted oracle: official data only
        ({"env": "puzzle-3x3", "dataset_type": "navigate"}, "--type"),
        ({"env": "pointmaze-large", "dataset_type": "play"}, "--type"),
        ({"env": "puzzle-3x3-play", "dataset_type": "noisy"}, "--type"),
        ({"env": "puzzle-3x3", "transitions": "-5"}, "--transitions"),
        ({"env": "puzzle-3x3", "transitions": "1M", "shards": 2, "episodes_per_shard": 3}, "--transitions"),
        ({"env": "puzzle-3x3", "shards": 0}, "--shards"),
        ({"env": "puzzle-3x3", "episodes_per_shard": -1}, "--episodes-per-shard"),
        ({"env": "puzzle-3x3", "noise": -0.1}, "--noise"),
        ({"env": "puzzle-3x3", "noise": float("nan")}, "--noise"),
        ({"env": "puzzle-3x3", "p_random_action": 1.5}, "--p-random-action"),
        ({"env": "puzzle-3x3", "episode_length": 0}, "--episode-length"),
        ({"env": "puzzle-3x3", "seed": -1}, "--seed"),
    ],
)
def test_plan_errors_name_the_flag(kwargs, flag):
    with pytest.raises(ScalerlError) as error:
        plan_dataset(**kwargs)
    message = str(error.value)
    assert message.startswith(flag) and "\n" not in message


def test_noise_override_and_type_from_env_name():
    plan = plan_dataset("pointmaze-large-stitch-v0", noise=0.2)
    assert (plan.task, plan.dataset_type, plan.oracle.noise, plan.episode_length) == (
        "pointmaze-large",
        "stitch",
        0.2,
        200,
    )


@pytest.mark.integration
def test_locomotion_mazes_build_for_evaluation():
    """Ant and humanoid mazes (Park et al. 2025's humanoidmaze-giant) are real OGBench environments in the table."""
    from scalerl.envs import make_env

    cases = (("humanoidmaze-giant-navigate-oraclerep", 69, 4000), ("antmaze-large-stitch", 29, 1000))
    for name, obs_dim, steps in cases:
        env, tasks = make_env(name)
        observation, info = env.reset(options=dict(task_id=1))
        assert observation.shape == (obs_dim,) and len(tasks) == 5
        assert TASKS[name.split("-navigate")[0].split("-stitch")[0]].max_episode_steps == steps
        assert env.spec.max_episode_steps == steps
        env.close()


@pytest.mark.integration
def test_maze_environments_leave_no_temp_files(tmp_path, monkeypatch):
    """OGBench's mazes write their XML with mkstemp and never delete it; scalerl's builders clean up after them."""
    import tempfile

    import gymnasium

    from scalerl.envs import make_env

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gymnasium.make("pointmaze-medium-v0").close()
    leaked = list(tmp_path.iterdir())
    assert [path.suffix for path in leaked] == [".xml"]  # OGBench itself leaks one file per environment
    leaked[0].unlink()
    make_env("pointmaze-medium-navigate")[0].close()
    make_env("antmaze-medium-navigate")[0].close()
    EpisodeSource("pointmaze-medium", "navigate", default_preset(TASKS["pointmaze-medium"], "navigate").oracle, 10, 0)
    assert list(tmp_path.iterdir()) == [] and tempfile.tempdir == str(tmp_path)


# ------------------------------------------------------------------------------------------------ small pieces


def test_cells_at_distance_hand_computed():
    # 0 = free; a ring around one wall. From (1, 1): right (1,2) d1, (1,3) d2, (2,3) d3; down (2,1) d1, (3,1) d2,
    # (3,2) d3; both ways meet at (3,3), d4.
    maze = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [1, 0, 1, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 1, 1],
        ]
    )
    assert cells_at_distance(maze, (1, 1), 1) == [(2, 1), (1, 2)]  # BFS order: up, left, down, right
    assert cells_at_distance(maze, (1, 1), 3) == [(3, 2), (2, 3)]
    assert cells_at_distance(maze, (1, 1), 4) == [(3, 3)]
    assert cells_at_distance(maze, (1, 1), 5) == []


def test_scene_health_check():
    ok = np.array([[0.4, 0.0, 0.02], [0.4, -0.31, 0.07]])  # left of -0.3 only inside the drawer height band
    assert _scene_block_visible(ok)
    assert not _scene_block_visible(np.array([[0.4, 0.29, 0.02]]))  # too far right
    assert not _scene_block_visible(np.array([[0.4, -0.31, 0.02]]))  # too far left, not in the drawer


def test_write_npz_is_deterministic_and_loadable(tmp_path):
    arrays = {"observations": np.arange(12, dtype=np.float32).reshape(4, 3), "terminals": np.array([0, 1, 0, 1.0])}
    write_npz(tmp_path / "a.npz", arrays)
    time.sleep(1.1)  # zip timestamps have 2 s resolution; fixed dates must not depend on the clock
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as loaded:
        assert list(loaded.files) == ["observations", "terminals"]
        np.testing.assert_array_equal(loaded["observations"], arrays["observations"])


def test_cli_bad_input_is_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    before = snapshot(existing)
    cases = [
        (["--env", "puzzle-3x3", "--transitions", "-5"], "--transitions"),
        (["--env", "puzzle-3x3", "--transitions", "abc"], "--transitions"),
        (["--env", "no-such-task"], "--env"),
        (["--env", "puzzle-3x3", "--type", "stitch"], "--type"),
        (["--env", "puzzle-3x3", "--workers", "0"], "--workers"),
        (["--env", "puzzle-3x3", "--shards", "x"], "--shards"),
        (["--env", "puzzle-3x3", "--shards", "3:2"], "--shards"),
        (["--env", "puzzle-3x3", "--shards", "0:11"], "--shards"),  # the default plan has 10 shards
        (["--env", "puzzle-3x3", "--shards", "-1:2"], "--shards"),
    ]
    for args, flag in cases:
        code, _out, err = run_cli(["generate", *args, "--out", str(existing)], monkeypatch, capsys)
        assert code != 0, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {flag}"), (args, err)
    assert snapshot(existing) == before
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------------------------- real MuJoCo


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory) -> dict[tuple[str, int], tuple[Path, object]]:
    """Each tiny dataset generated with 1 and with 2 workers."""
    root = tmp_path_factory.mktemp("generated")
    results = {}
    for kind in TINY:
        for workers in (1, 2):
            out = root / f"{kind}-w{workers}"
            results[(kind, workers)] = (
                out,
                generate_dataset(tiny_plan(kind), out, workers=workers, progress_bar=False),
            )
    return results


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(TINY))
def test_one_and_two_workers_give_identical_files(tiny_datasets, kind):
    one, result = tiny_datasets[(kind, 1)]
    two, _ = tiny_datasets[(kind, 2)]
    assert checksums(one) == checksums(two)
    assert len(checksums(one)) == 4  # 2 shards + 2 val companions
    assert sorted(p.name for p in one.iterdir() if p.suffix != ".npz") == [MANIFEST, "shards-00000-00002.jsonl"]
    assert read_manifest(one) == read_manifest(two)  # journals may list the shards in finishing order
    assert result.generated == [0, 1] and result.reused == []


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(TINY))
def test_manifest_describes_the_files(tiny_datasets, kind):
    out, _ = tiny_datasets[(kind, 1)]
    plan = tiny_plan(kind)
    header = json.loads((out / MANIFEST).read_text())
    assert "shards" not in header and "complete" not in header  # records live in the journal, appended per shard
    manifest = read_manifest(out)
    assert {key: manifest[key] for key in header} == header
    assert manifest["format"] == FORMAT and manifest["complete"] is True
    assert (manifest["task"], manifest["dataset_type"], manifest["env_id"]) == (
        plan.task,
        plan.dataset_type,
        plan.env_id,
    )
    assert (manifest["num_shards"], manifest["episodes_per_shard"], manifest["episode_length"]) == (
        2,
        2,
        plan.episode_length,
    )
    assert manifest["val_episodes_per_shard"] == 1 and manifest["base_seed"] == 0
    assert manifest["oracle"] == plan.oracle.to_json()
    expected_keys = ["observations", "actions", "terminals", "qpos", "qvel"] + (
        ["button_states"] if kind == "puzzle" else []
    )
    assert list(manifest["keys"]) == expected_keys
    rows_per_episode = plan.episode_length + 1
    for index, shard in enumerate(manifest["shards"]):
        assert (shard["index"], shard["seed"], shard["episodes"]) == (index, index, 2)
        assert shard["transitions"] == 2 * plan.episode_length and shard["rows"] == 2 * rows_per_episode
        for entry in (shard, shard["val"]):
            path = out / entry["file"]
            assert sha256_file(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
            with np.load(path) as data:
                assert list(data.files) == expected_keys
                for key, spec in manifest["keys"].items():
                    assert data[key].shape == (entry["rows"], *spec["shape"]) and data[key].dtype == spec["dtype"]
                terminals = data["terminals"]
                assert terminals.sum() == entry["episodes"]
                assert np.all(terminals[rows_per_episode - 1 :: rows_per_episode] == 1)
                assert np.all(np.abs(data["actions"]) <= 1)
        assert shard["val"]["episodes"] == 1 and shard["val"]["file"] == shard["file"].replace(".npz", "-val.npz")


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ogbench_loads_a_shard_and_its_val_companion(tiny_datasets):
    import ogbench

    out, result = tiny_datasets[("puzzle", 1)]
    shard = result.manifest["shards"][1]
    train = ogbench.load_dataset(str(out / shard["file"]), add_info=True)
    assert train["observations"].shape == (shard["transitions"], 55)
    assert train["button_states"].shape == (shard["transitions"], 9)
    _, train, val = ogbench.make_env_and_datasets("puzzle-3x3-play-v0", dataset_path=str(out / shard["file"]))
    assert len(train["observations"]) == shard["transitions"]
    assert len(val["observations"]) == shard["val"]["transitions"]


@pytest.mark.integration
def test_recorded_states_match_observations(tiny_datasets):
    with np.load(tiny_datasets[("pointmaze", 1)][0] / "pointmaze-medium-navigate-v0-00000.npz") as data:
        np.testing.assert_array_equal(data["observations"], data["qpos"])  # point mass: observation = position
        # Point-mass dynamics: next position = position + 0.2 * action unless a wall stops it.
        moved = data["qpos"][1:51] - data["qpos"][:50]
        assert np.median(np.abs(moved - 0.2 * data["actions"][:50])) < 1e-3
    with np.load(tiny_datasets[("puzzle", 1)][0] / "puzzle-3x3-play-v0-00000.npz") as data:
        # Puzzle observations hold each button's state one-hot at 19 + 4 * i; button_states is the state before the
        # step.
        one_hot = np.stack([data["observations"][:, 19 + 4 * i : 21 + 4 * i] for i in range(9)], axis=1)
        np.testing.assert_array_equal(one_hot.argmax(-1), data["button_states"])
        assert set(np.unique(data["button_states"])) <= {0, 1}


def rollout(task: str, dataset_type: str, seed: int, **kwargs) -> dict[str, np.ndarray]:
    """Two 30-step episodes from a fresh source."""
    source = EpisodeSource(task, dataset_type, default_preset(TASKS[task], dataset_type).oracle, 30, seed, **kwargs)
    arrays = source.allocate(2)
    for episode in range(2):
        source.rollout(arrays, episode * source.rows_per_episode)
    source.close()
    return arrays


@pytest.mark.integration
@pytest.mark.parametrize(("task", "dataset_type"), [("cube-single", "noisy"), ("pointmaze-large", "stitch")])
def test_source_is_a_function_of_its_seed(task, dataset_type):
    first, again, other = rollout(task, dataset_type, 7), rollout(task, dataset_type, 7), rollout(task, dataset_type, 8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["actions"], other["actions"])


@pytest.mark.integration
def test_step_info_reuse_leaves_the_data_bitwise_unchanged():
    reused, plain = rollout("puzzle-3x3", "noisy", 3), rollout("puzzle-3x3", "noisy", 3, reuse_step_info=False)
    for key in reused:
        np.testing.assert_array_equal(reused[key], plain[key])


@pytest.mark.integration
def test_resume_regenerates_only_missing_or_corrupt_shards(tiny_datasets, tmp_path):
    source, _ = tiny_datasets[("pointmaze", 1)]
    expected = checksums(source)
    out = tmp_path / "resume"
    shutil.copytree(source, out)
    plan = tiny_plan("pointmaze")
    # A killed run: a stale temporary shard and manifest, shard 1's training file half-written under its final name.
    (out / f".tmp-{plan.shard_file(1)}").write_bytes(b"partial")
    (out / ".tmp-manifest.json").write_text("{")
    final = out / plan.shard_file(1)
    final.write_bytes(final.read_bytes()[:100])
    result = generate_dataset(plan, out, workers=2, progress_bar=False)
    assert (result.generated, result.reused) == ([1], [0])
    assert checksums(out) == expected
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert read_manifest(out)["complete"] is True

    # A complete dataset is checked (sizes) and left alone.
    before = snapshot(out)
    again = generate_dataset(plan, out, workers=1, progress_bar=False)
    assert (again.generated, again.reused) == ([], [0, 1])
    assert {k: v[0] for k, v in snapshot(out).items()} == {k: v[0] for k, v in before.items()}


@pytest.mark.integration
def test_refuses_a_directory_holding_another_dataset(tiny_datasets, tmp_path, monkeypatch, capsys):
    source, _ = tiny_datasets[("pointmaze", 1)]
    out = tmp_path / "other"
    shutil.copytree(source, out)
    before = snapshot(out)
    base = ["generate", "--env", "pointmaze-medium", "--type", "navigate", "--episodes-per-shard", "2",
            "--episode-length", "50", "--out", str(out), "--no-progress"]  # fmt: skip
    for extra, flag, field in [
        (["--shards", "2", "--seed", "1"], "--out", "base_seed"),
        (["--shards", "2", "--noise", "0.3"], "--out", "oracle"),
        (["--shards", "1"], "--transitions", "never shrinks"),  # 2 episodes < the 4 on disk
    ]:
        code, _, err = run_cli(base + extra, monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith(f"error: {flag}:") and field in err, err
    code, _, err = run_cli(["generate", "--env", "pointmaze-medium-stitch", "--out", str(out)], monkeypatch, capsys)
    assert code == 2 and "dataset_type" in err
    assert snapshot(out) == before

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "someone-else.npz").write_bytes(b"x")
    with pytest.raises(ScalerlError, match="no manifest.json"):
        generate_dataset(tiny_plan("pointmaze"), stray, workers=1, progress_bar=False)
    assert [p.name for p in stray.iterdir()] == ["someone-else.npz"]


@pytest.mark.integration
def test_sigkill_midway_then_rerun_matches_uninterrupted_run(tmp_path):
    scalerl = shutil.which("scalerl") or str(Path(sys.executable).with_name("scalerl"))
    args = ["generate", "--env", "pointmaze-medium", "--type", "navigate", "--shards", "6",
            "--episodes-per-shard", "8", "--episode-length", "500", "--no-progress"]  # fmt: skip
    reference = tmp_path / "reference"
    generate_dataset(
        tiny_plan("pointmaze", shards=6, episodes_per_shard=8, episode_length=500), reference, 2, progress_bar=False
    )

    out = tmp_path / "killed"
    process = subprocess.Popen([scalerl, *args, "--workers", "1", "--out", str(out)], stdout=subprocess.DEVNULL)
    first_shard = out / "pointmaze-medium-navigate-v0-00000.npz"

    def recorded_shards() -> int:
        manifest = read_manifest(out) if (out / "manifest.json").exists() else None
        return len(manifest["shards"]) if manifest else 0

    # Kill once the first shard is written and recorded (a shard written but not yet recorded is regenerated).
    deadline = time.monotonic() + 120
    while not (first_shard.exists() and recorded_shards()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorded_shards() and process.poll() is None, "the run ended before it could be killed midway"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not read_manifest(out)["complete"]
    assert len(list(out.glob("*.npz"))) < 12

    rerun = subprocess.run(
        [scalerl, *args, "--workers", "2", "--out", str(out)], check=False, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "reused after size check" in rerun.stdout
    assert checksums(out) == checksums(reference)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert read_manifest(out)["shards"] == read_manifest(reference)["shards"]
