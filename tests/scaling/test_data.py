"""Results loaders: qscaled zips (with and without a step column), W&B CSV exports, and scalerl run directories."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from scalerl.errors import ScalerlError
from scalerl.scaling.results import (
    extract_curves,
    load_qscaled_zip,
    load_run_dirs,
    load_source,
    load_wandb_csv,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "qscaled")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_qscaled_sweep_zip_has_no_step_column(tmp_path):
    results = load_qscaled_zip(os.path.join(FIXTURES, "dmc_sweep.zip"))
    assert results.metrics == ["return"]
    assert results.notes[0].endswith(
        "no step column (row k is step 5000 + 1000 k) (column 0 looks like steps in 0 of 840 files)"
    )
    assert set(results.varying()) == {"env", "utd", "batch_size", "lr"}
    table = results.table
    assert sorted(table["utd"].unique()) == [1, 2, 3, 4, 5, 8]
    assert sorted(table["lr"].unique()) == [1.5e-4, 3e-4, 6e-4, 1.2e-3]
    assert table["env"].nunique() == 7
    curves = extract_curves(results, "return")
    assert len(curves.values) == 6 * 7 * 5 * 4
    first = curves.configs.iloc[0]
    assert (first["batch_size"], first["env"], first["lr"], first["utd"]) == (32, "cartpole-swingup", 1.5e-4, 1.0)
    # Row k is at step 5000 + 1000 k; every file holds ten seeds.
    np.testing.assert_array_equal(curves.steps[0][:3], [5000, 6000, 7000])
    assert all(v.shape[1] == 10 for v in curves.values)


def test_qscaled_baseline_extract_detects_its_step_column():
    results = load_qscaled_zip(os.path.join(FIXTURES, "dmc_baseline_utd2_extract.zip"))
    curves = extract_curves(results, "return")
    assert set(curves.configs["env"]) == {"cartpole-swingup", "walker-walk"}
    assert sorted(curves.configs["utd"].unique()) == [0.25, 0.5, 1, 2, 4, 8]
    with zipfile.ZipFile(os.path.join(FIXTURES, "dmc_baseline_utd2_extract.zip")) as archive:
        raw = np.load(io.BytesIO(archive.read("dmc_baseline/utd_2/walker-walk/online_returns/bs_256_lr_3e-4.npy")))
    row = curves.configs.index[(curves.configs["env"] == "walker-walk") & (curves.configs["utd"] == 2)][0]
    np.testing.assert_array_equal(curves.steps[row], raw[:, 0])
    np.testing.assert_array_equal(curves.values[row], raw[:, 1:])


def test_qscaled_zip_options_and_errors(tmp_path):
    path = tmp_path / "tiny.zip"
    returns = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 8.0]])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tiny/utd_0.5/hopper/ret/bs_64_lr_1e-3.npy", _npy(returns))
        archive.writestr("tiny/README.txt", "not data")
    results = load_qscaled_zip(path, step_start=0, step_interval=10, step_column=False, max_returns={"hopper": 500.0})
    curves = extract_curves(results, "return", ["env", "utd", "batch_size", "lr"])
    np.testing.assert_array_equal(curves.steps[0], [0, 10, 20])
    np.testing.assert_array_equal(curves.values[0], returns * 2)
    assert curves.configs.iloc[0].to_dict() == {"env": "hopper", "utd": 0.5, "batch_size": 64, "lr": 1e-3}
    # Column 0 of [1, 3, 5] is an exact arithmetic progression of integers: detection takes it as the step column.
    detected = extract_curves(load_qscaled_zip(path), "return", ["env"])
    np.testing.assert_array_equal(detected.steps[0], [1, 3, 5])
    np.testing.assert_array_equal(detected.values[0], returns[:, 1:])
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("x.txt", "")
    with pytest.raises(ScalerlError, match="no utd_<sigma>"):
        load_qscaled_zip(empty)
    with pytest.raises(ScalerlError, match="not a readable zip"):
        load_qscaled_zip(tmp_path / "missing.zip")


def test_wandb_panel_export_with_runs_table(tmp_path):
    panel = pd.DataFrame(
        {
            "Step": [1000, 2000, 3000],
            "utd2-s0 - eval/return": [10.0, 20.0, 30.0],
            "utd2-s0 - eval/return__MIN": [9.0, 19.0, 29.0],
            "utd2-s1 - eval/return": [12.0, 22.0, np.nan],
            "utd4-s0 - eval/return": [15.0, 30.0, 45.0],
        }
    )
    runs = pd.DataFrame(
        {"Name": ["utd2-s0", "utd2-s1", "utd4-s0"], "utd": [2, 2, 4], "seed": [0, 1, 0], "env_name": ["cheetah"] * 3}
    )
    panel.to_csv(tmp_path / "panel.csv", index=False)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    results = load_wandb_csv(tmp_path / "panel.csv", runs_csv=tmp_path / "runs.csv")
    assert results.metrics == ["eval/return"]
    assert "base_seed" in results.table and "env" in results.config_columns
    curves = extract_curves(results, "eval/return")
    assert list(curves.configs["utd"]) == [2, 4]
    # The two utd=2 runs differ only in their seed: they are two seeds of one configuration.
    np.testing.assert_array_equal(curves.values[0], [[10.0, 12.0], [20.0, 22.0], [30.0, np.nan]])


def test_wandb_history_export(tmp_path):
    history = pd.DataFrame(
        {
            "name": ["a", "a", "b", "b"],
            "_step": [0, 100, 0, 100],
            "return": [0.0, 50.0, 1.0, 70.0],
            "learning_rate": [1e-4, 1e-4, 3e-4, 3e-4],
            "utd": [1, 1, 1, 1],
        }
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    results = load_source(tmp_path / "history.csv")
    assert results.metrics == ["return"] and results.varying() == ["lr"]
    curves = extract_curves(results, "return")
    np.testing.assert_array_equal(curves.values[1][:, 0], [1.0, 70.0])
    with pytest.raises(ScalerlError, match="no step column"):
        pd.DataFrame({"name": ["a"], "x": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
        load_wandb_csv(tmp_path / "bad.csv")


def write_run(run_dir, agent="sharsa", seeds=2, successes=(0.5, 0.7), trial=None, data="data/x", width=256):
    """A run directory in the ``scalerl train`` format (config.json, eval.jsonl), optionally with a trial.json."""
    os.makedirs(run_dir, exist_ok=True)
    config = {
        "train": {
            "agent": agent,
            "env": "cube-single-play",
            "data": data,
            "out": str(run_dir),
            "seeds": seeds,
            "seed": 0,
            "steps": 2000,
        },
        "agent": {"lr": 3e-4, "batch_size": 256, "hidden_dims": [width, width, width], "subgoal_steps": 10},
    }
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(run_dir, "eval.jsonl"), "w") as f:
        for step, success in zip((1000, 2000), successes):
            rows = [
                {"step": step, "seed": seed, "success": success + 0.01 * seed, "episode_length": 100}
                for seed in range(seeds)
            ]
            f.writelines(json.dumps(row) + "\n" for row in rows)
    if trial is not None:
        with open(os.path.join(run_dir, "trial.json"), "w") as f:
            json.dump(trial, f)


def test_run_directories_to_one_table(tmp_path):
    sweep = tmp_path / "sweep"
    for size in (1000, 4000):
        for seed in (0, 1):
            write_run(
                sweep / f"size={size}__seed={seed}",
                trial={"params": {"dataset_size": size, "seed": seed}, "status": "done"},
            )
    write_run(sweep / "broken", trial={"params": {"dataset_size": 9}, "status": "failed"})
    results = load_run_dirs([sweep], only_done=True)
    table = results.table
    assert {"agent", "env", "lr", "batch_size", "width", "depth", "dataset_size", "subgoal_steps"} <= set(table)
    assert (
        table["width"].iloc[0] == 256 and table["depth"].iloc[0] == 3 and table["hidden_dims"].iloc[0] == "256x256x256"
    )
    assert set(results.metrics) == {"success", "episode_length"}
    assert results.varying() == ["dataset_size"]
    curves = extract_curves(results, "success")
    # Two runs with two vmapped seeds each: four seeds per configuration.
    assert [v.shape for v in curves.values] == [(2, 4), (2, 4)]
    assert len(load_run_dirs([sweep]).table["dataset_size"].unique()) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScalerlError, match="no run directories"):
        load_run_dirs([tmp_path / "empty"])


def test_dataset_size_from_a_scalerl_dataset_manifest(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"format": "scalerl-dataset/1", "transitions": 123000}))
    write_run(tmp_path / "run", data=str(data))
    assert load_run_dirs([tmp_path / "run"]).table["dataset_size"].iloc[0] == 123000


def test_a_truncated_last_line_is_ignored(tmp_path):
    write_run(tmp_path / "run")
    with open(tmp_path / "run" / "eval.jsonl", "a") as f:
        f.write('{"step": 3000, "se')
    assert load_run_dirs([tmp_path / "run"]).table["step"].max() == 2000


def test_online_run_config_gives_env_and_critic_size(tmp_path):
    """``scalerl online`` writes ``online`` / ``agent`` / ``model`` sections; env and N come from them."""
    run = tmp_path / "run"
    run.mkdir()
    config = {
        "online": {"env": "Hopper-v5", "utd": 2.0, "seed": 3, "steps": 1000},
        "agent": {"lr": 3e-4, "batch_size": 256, "critic_width": 256},
        "model": {"critic_params": 140802, "actor_params": 70000},
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "eval.jsonl").write_text('{"step": 1000, "seed": 0, "return": 5.0}\n')
    row = load_run_dirs([run]).table.iloc[0]
    assert (row["env"], row["utd"], row["batch_size"], row["n_params"], row["base_seed"]) == (
        "Hopper-v5",
        2.0,
        256,
        140802,
        3,
    )
