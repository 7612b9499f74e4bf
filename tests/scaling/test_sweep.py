"""Sweeps: sweep-file validation (one-line errors), idempotent re-runs, failures that do not stop the others,
retries, NaN divergence, interrupted trials, and one small sweep on a real local Ray cluster."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from scalerl.errors import ScalerlError
from scalerl.scaling.spec import load_spec, trial_name
from scalerl.scaling.sweep import find_nan, read_trial, run_sweep, sweep_status

FAKE_TRAIN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "fake_train.py")


def write_spec(tmp_path, body: str, name: str = "sweep.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


# Sweep files ---------------------------------------------------------------------------------------------------


def test_spec_expands_the_grid_with_seeds_and_renders_commands(tmp_path):
    path = write_spec(
        tmp_path,
        """
        command = "{python} train.py --utd {utd} --dims {dims} --name {trial_name} --out {trial_dir} --seed {seed} --env {env}"
        seeds = [3, 4]
        [grid]
        utd = [1, 2.5]
        dims = [[256, 256]]
        [params]
        env = "cube single"
        """,
    )
    spec = load_spec(path)
    assert spec.name == "sweep"
    trials = spec.trials()
    assert [t.name for t in trials] == [
        "utd=1__dims=256x256__seed=3",
        "utd=1__dims=256x256__seed=4",
        "utd=2.5__dims=256x256__seed=3",
        "utd=2.5__dims=256x256__seed=4",
    ]
    command = spec.render(trials[3], str(tmp_path / "t"), str(tmp_path))
    assert command == (
        f"{sys.executable} train.py --utd 2.5 --dims 256 256 --name utd=2.5__dims=256x256__seed=4 "
        f"--out {tmp_path / 't'} --seed 4 --env 'cube single'"
    )
    assert trial_name({"lr": 3e-4, "flag": True}) == "lr=0.0003__flag=true"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('command = "true"\nworkrs = 2\n[grid]\nx = [1]\n', "unknown key 'workrs'"),
        ('command = "true"\n[grid]\n', "grid: empty"),
        ('command = "true"\n[grid]\nx = []\n', "grid.x: expected a non-empty list"),
        ('command = "no-such-program-xyz --flag {x}"\n[grid]\nx = [1]\n', "executable 'no-such-program-xyz' not found"),
        ('command = "./missing.sh {x}"\n[grid]\nx = [1]\n', "executable './missing.sh' not found"),
        ('command = "true {y}"\n[grid]\nx = [1]\n', "unknown placeholder {y}"),
        ('command = "true {seed}"\n[grid]\nx = [1]\n', "add seeds = N"),
        ('command = "true"\nseeds = 0\n[grid]\nx = [1]\n', "seeds: expected at least 1"),
        ('command = "true"\nmax_retries = "2"\n[grid]\nx = [1]\n', "max_retries: expected an integer"),
        ('command = "true"\n[grid]\nx = [{a = 1}]\n', "grid.x: expected a number"),
        ('command = "true"\n[grid]\nx = [1]\n[params]\nx = 2\n', "params.x: also a grid axis"),
        ("[grid]\nx = [1]\n", "command: expected the command template"),
        ('command = "true\n', "not valid TOML"),
    ],
)
def test_bad_sweep_files_give_one_line_errors(tmp_path, body, message):
    path = write_spec(tmp_path, body)
    with pytest.raises(ScalerlError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")) as info:
        load_spec(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(path)


def test_yaml_sweep_files(tmp_path):
    pytest.importorskip("yaml")
    path = write_spec(tmp_path, "command: 'true {x}'\ngrid:\n  x: [1, 2]\n", name="sweep.yaml")
    assert len(load_spec(path).trials()) == 2


def test_shell_builtins_pass_the_executable_check(tmp_path):
    path = write_spec(tmp_path, 'command = "cd {trial_dir} && echo {x} > out.txt"\nshell = true\n[grid]\nx = [1]\n')
    assert load_spec(path).shell


# Running ---------------------------------------------------------------------------------------------------------


def offline_spec(tmp_path, extra_grid: str = "", flags: str = "", **keys) -> str:
    """A sweep of the fake trainer over agent x dataset size (x ``extra_grid``), one seed."""
    command = f"{{python}} {FAKE_TRAIN} --agent {{agent}} --dataset-size {{dataset_size}} --out {{trial_dir}} {flags}"
    lines = [
        f"command = {json.dumps(command.strip())}",
        "seeds = 1",
        *(f"{key} = {json.dumps(value)}" for key, value in keys.items()),
        "[grid]",
        'agent = ["gciql", "sharsa"]',
        "dataset_size = [1000, 10000, 100000]",
        extra_grid,
    ]
    return write_spec(tmp_path, "\n".join(lines))


def test_sweep_runs_every_trial_and_a_rerun_is_idempotent(tmp_path):
    spec = load_spec(offline_spec(tmp_path))
    sweep_dir = str(tmp_path / "out")
    summary = run_sweep(spec, sweep_dir, workers=2, progress=False)
    assert (summary.total, summary.done, summary.failed, summary.attempts) == (6, 6, [], 6)
    trial_dir = os.path.join(sweep_dir, "agent=sharsa__dataset_size=1000__seed=0")
    state = read_trial(trial_dir)
    assert state["status"] == "done" and state["attempts"] == 1 and state["error"] is None
    assert state["params"] == {"agent": "sharsa", "dataset_size": 1000, "seed": 0}
    assert state["duration_s"] >= 0 and state["history"][0]["returncode"] == 0
    assert {"config.json", "eval.jsonl", "metrics.jsonl", "attempt-1.log", "trial.json"} <= set(os.listdir(trial_dir))
    snapshot = {name: read_trial(os.path.join(sweep_dir, name)) for name in os.listdir(sweep_dir) if "=" in name}
    again = run_sweep(spec, sweep_dir, workers=2, progress=False)
    assert (again.skipped, again.done, again.attempts) == (6, 6, 0)
    assert snapshot == {name: read_trial(os.path.join(sweep_dir, name)) for name in snapshot}
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        assert json.load(f)["trials"] == [t.name for t in spec.trials()]


def test_a_failing_trial_does_not_stop_the_others_and_is_retried(tmp_path):
    path = offline_spec(tmp_path, extra_grid='mode = ["ok", "fail", "nan"]', flags="--mode {mode}", max_retries=1)
    spec = load_spec(path)
    summary = run_sweep(spec, str(tmp_path / "out"), workers=2, max_retries=1, progress=False)
    assert summary.total == 18 and summary.done == 6 and len(summary.failed) == 12
    status = sweep_status(str(tmp_path / "out"))
    assert len(status["done"]) == 6 and all("mode=ok" in name for name in status["done"])
    crashed = read_trial(str(tmp_path / "out" / "agent=gciql__dataset_size=1000__mode=fail__seed=0"))
    assert crashed["status"] == "failed" and crashed["attempts"] == 2 and len(crashed["history"]) == 2
    assert crashed["error"].startswith("exit code 3: Traceback") and "simulated crash" in crashed["error"]
    diverged = read_trial(str(tmp_path / "out" / "agent=sharsa__dataset_size=1000__mode=nan__seed=0"))
    assert diverged["error"].startswith("NaN divergence in metrics.jsonl") and "train/critic_loss" in diverged["error"]
    # A re-run retries only the failed trials, and counts attempts across runs.
    again = run_sweep(spec, str(tmp_path / "out"), workers=2, max_retries=0, progress=False)
    assert (again.skipped, again.attempts) == (6, 12)
    assert read_trial(str(tmp_path / "out" / "agent=gciql__dataset_size=1000__mode=fail__seed=0"))["attempts"] == 3


def test_killed_and_timed_out_trials_are_failures(tmp_path):
    path = write_spec(
        tmp_path,
        """
        command = "{python} -c 'import os, signal, time; os.kill(os.getpid(), signal.SIGKILL) if {x} == 1 else time.sleep(30)'"
        timeout = 1.0
        max_retries = 0
        [grid]
        x = [1, 2]
        """,
    )
    summary = run_sweep(load_spec(path), str(tmp_path / "out"), workers=2, progress=False)
    assert sorted(summary.failed) == ["x=1", "x=2"]
    assert read_trial(str(tmp_path / "out" / "x=1"))["error"] == "killed by SIGKILL"
    assert read_trial(str(tmp_path / "out" / "x=2"))["error"] == "timed out after 1 s"


def test_a_trial_left_running_by_a_killed_sweep_is_rerun(tmp_path):
    spec = load_spec(offline_spec(tmp_path))
    sweep_dir = tmp_path / "out"
    run_sweep(spec, str(sweep_dir), workers=2, progress=False)
    trial_dir = sweep_dir / "agent=gciql__dataset_size=1000__seed=0"
    state = read_trial(str(trial_dir))
    state.update(status="running")
    (trial_dir / "trial.json").write_text(json.dumps(state))
    (trial_dir / "stale-output.txt").write_text("from the interrupted attempt")
    summary = run_sweep(spec, str(sweep_dir), workers=2, progress=False)
    assert (summary.skipped, summary.attempts, summary.failed) == (5, 1, [])
    state = read_trial(str(trial_dir))
    assert state["attempts"] == 2 and state["history"][0]["error"].startswith("interrupted")
    assert not (trial_dir / "stale-output.txt").exists()  # on_retry = "clean"


def test_sweep_lock_refuses_a_second_live_sweep(tmp_path):
    spec = load_spec(offline_spec(tmp_path))
    sweep_dir = tmp_path / "out"
    sweep_dir.mkdir()
    import socket

    (sweep_dir / ".sweep.lock").write_text(f"{socket.gethostname()} {os.getppid()}\n")
    with pytest.raises(ScalerlError, match="another `scalerl sweep`"):
        run_sweep(spec, str(sweep_dir), progress=False)
    (sweep_dir / ".sweep.lock").write_text(f"{socket.gethostname()} 999999999\n")  # stale: taken over
    assert run_sweep(spec, str(sweep_dir), workers=2, progress=False).done == 6


def test_find_nan_reports_file_line_key_and_step(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": Infinity}\n{"bad')
    assert find_nan(str(tmp_path), ("metrics.jsonl", "eval.jsonl")) == "metrics.jsonl line 2: loss = inf, step 2"
    assert find_nan(str(tmp_path), ("eval.jsonl",)) is None


RAY_TRIAL = """
import json, os, signal, sys, time
x, trial_dir = int(sys.argv[1]), sys.argv[2]
with open(os.path.join(trial_dir, "metrics.json"), "w") as f:
    json.dump({"x": x}, f)
if x == 3:
    sys.exit(1)
if x == 4:  # kill the Ray worker running this trial
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(5)
"""


def test_small_sweep_on_a_local_ray_cluster(tmp_path):
    ray = pytest.importorskip("ray")
    (tmp_path / "trial.py").write_text(RAY_TRIAL)
    path = write_spec(
        tmp_path,
        f"""
        command = "{{python}} {tmp_path / "trial.py"} {{x}} {{trial_dir}}"
        max_retries = 0
        timeout = 60
        [grid]
        x = [1, 2, 3, 4]
        """,
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_sweep(load_spec(path), str(tmp_path / "out"), ray_address="auto", progress=False)
    finally:
        ray.shutdown()
    assert summary.done == 2 and summary.failed == ["x=3", "x=4"]
    with open(tmp_path / "out" / "x=2" / "metrics.json") as f:
        assert json.load(f) == {"x": 2}
    state = read_trial(str(tmp_path / "out" / "x=3"))
    assert state["error"] == "exit code 1" and state["history"][0]["host"]
    killed = read_trial(str(tmp_path / "out" / "x=4"))
    assert killed["status"] == "failed" and killed["error"].startswith("Ray task failed")
    assert killed["history"][0]["started"] is not None
