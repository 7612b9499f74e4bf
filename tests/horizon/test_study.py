"""`scalerl horizon-study`: the sweep it builds from a config, its one-line refusals, the report's aggregation on
hand-made trial outputs (50% crossing in log horizon, error bars, bias slopes), and the driver end to end with fake
trials (datasets before the sweep, failures recorded and retried, finished trials skipped)."""

import dataclasses
import json
import math
import os
import socket
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest
from typer.testing import CliRunner

from scalerl.errors import ScalerlError
from scalerl.horizon import study
from scalerl.horizon.report import aggregate, bias_slopes, crossing_summary, half_success_crossing, level_curves
from scalerl.horizon.study import (
    StudyConfig,
    build_spec,
    dataset_jobs,
    prepare_study_dir,
    read_study,
    run_study,
    sweep_toml,
    trial_arguments,
)
from scalerl.scaling.spec import load_spec

SMALL = StudyConfig(
    tasks="maze-n8,maze-n4",
    methods="sacbc,nsacbc-n4,rsharsa-k3,qrl",
    sizes="2k,1000",
    seeds=2,
    steps=10,
    log_interval=5,
)


def test_the_spec_has_one_trial_per_task_method_size_and_seed(tmp_path):
    spec = build_spec(SMALL, str(tmp_path))
    # Tasks by increasing horizon, sizes increasing and canonically spelled, seeds innermost.
    assert spec.grid == {"task": ["maze-n4", "maze-n8"], "method": list(SMALL.method_list), "size": ["1k", "2k"]}
    assert spec.seeds == (0, 1)
    trials = spec.trials()
    assert len(trials) == 2 * 4 * 2 * 2
    assert trials[0].name == "task=maze-n4__method=sacbc__size=1k__seed=0"
    assert trials[1].params == {"task": "maze-n4", "method": "sacbc", "size": "1k", "seed": 1}
    assert spec.out == os.path.join(str(tmp_path), "trials") and spec.on_retry == "keep"
    command = spec.render(trials[1], "T", spec.out)
    assert (
        f"--study {tmp_path} --task maze-n4 --method sacbc --size 1k --seed 1 --out {os.path.abspath('T')}" in command
    )
    assert command.startswith(f"{sys.executable} -m scalerl.horizon.study")
    assert sorted(dataset_jobs(SMALL)) == sorted(
        (task, size, seed) for task in ("maze-n4", "maze-n8") for size in ("1k", "2k") for seed in (0, 1)
    )


def test_the_sweep_file_reads_back_as_the_same_spec(tmp_path):
    spec = build_spec(SMALL, str(tmp_path))
    path = tmp_path / "sweep.toml"
    path.write_text(sweep_toml(spec))
    loaded = load_spec(path, check_executable=False)
    for field in ("name", "command", "grid", "params", "seeds", "env", "max_retries", "timeout", "on_retry", "out"):
        assert getattr(loaded, field) == getattr(spec, field), field


def test_trial_arguments_set_each_method_through_its_own_fields(tmp_path):
    from scalerl.agents import get_agent
    from scalerl.overrides import build_config, parse_overrides

    config = StudyConfig(methods="sacbc,nsacbc-n4,rsharsa-k3,qrl", hidden=32, layers=3, subgoal_steps=5)
    built = {}
    for method, agent in (("sacbc", "sacbc"), ("nsacbc-n4", "nsacbc"), ("rsharsa-k3", "rsharsa"), ("qrl", "qrl")):
        train, diagnose = trial_arguments(config, str(tmp_path), "maze-n8", method, "100k", 1, "RUN")
        assert train[:3] == ["train", "--agent", agent]
        assert train[train.index("--data") + 1] == str(tmp_path / "data" / "maze-n8-navigate-100k-seed1")
        assert train[train.index("--seeds") + 1] == "2" and train[train.index("--seed") + 1] == "1"
        assert diagnose[:2] == ["diagnose", "RUN"]
        flags = train[train.index("--agent.hidden-dims") :]
        built[method] = build_config(get_agent(agent)[1], parse_overrides(get_agent(agent)[1], flags))
    assert built["nsacbc-n4"].nstep == 4 and built["rsharsa-k3"].levels == 3
    assert built["rsharsa-k3"].subgoal_steps == 5 and built["rsharsa-k3"].num_samples == 16
    assert built["qrl"].latent_dim == 32 and built["qrl"].hidden_dims == (32, 32, 32)
    assert {config.discount for config in built.values()} == {0.99}
    assert not hasattr(built["sacbc"], "subgoal_steps")  # fields an agent lacks are not passed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tasks": "maze-n4,lock-L8"}, "--tasks: expected tasks of one family"),
        ({"tasks": "maze-n4-navigate"}, "--tasks: 'maze-n4-navigate': give the bare task"),
        ({"tasks": "cube-single"}, "--tasks: 'cube-single' is not a horizon task"),
        ({"tasks": "maze-n4,maze-n4"}, "--tasks: 'maze-n4' is listed twice"),
        ({"methods": "nsacbc-k3"}, "--methods: cannot read 'nsacbc-k3'"),
        ({"sizes": "100k,100000"}, "--sizes: two sizes are the same"),
        ({"sizes": "lots"}, "--sizes: expected a positive count"),
        ({"steps": 1001}, "--steps: expected a multiple of --log-interval"),
        ({"discount": 1.0}, "--discount: expected"),
        ({"dataset_type": "play"}, "--dataset-type: expected navigate or explore"),
    ],
)
def test_bad_settings_are_one_line_errors(fields, message):
    with pytest.raises(ScalerlError, match="^" + message.replace("(", r"\(")) as error:
        StudyConfig(**fields)
    assert "\n" not in str(error.value)


def test_bad_methods_and_study_directories_are_refused_before_any_work(tmp_path):
    with pytest.raises(ScalerlError, match="^--methods: nosuch: --agent: unknown agent 'nosuch'"):
        run_study(StudyConfig(methods="sacbc,nosuch"), str(tmp_path / "new"))
    with pytest.raises(ScalerlError, match="^--methods: rsharsa-k0: --agent.levels"):
        run_study(StudyConfig(methods="rsharsa-k0"), str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()
    locked = tmp_path / "locked"  # a driver is running this study (this process stands in for it)
    locked.mkdir()
    (locked / ".sweep.lock").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    with pytest.raises(ScalerlError, match="another `scalerl sweep`"):
        run_study(SMALL, str(locked))
    assert os.listdir(locked) == [".sweep.lock"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(ScalerlError, match="is not empty and holds no study.json"):
        prepare_study_dir(SMALL, str(tmp_path / "other"))
    prepare_study_dir(SMALL, str(tmp_path / "study"))
    assert read_study(str(tmp_path / "study")) == SMALL
    before = (tmp_path / "study" / "study.json").read_text()
    with pytest.raises(ScalerlError, match="^--hidden: .* holds a study with --hidden 128, not 64"):
        prepare_study_dir(dataclasses.replace(SMALL, hidden=64), str(tmp_path / "study"))
    assert (tmp_path / "study" / "study.json").read_text() == before
    grown = dataclasses.replace(SMALL, tasks="maze-n4,maze-n8,maze-n16", workers=3)
    prepare_study_dir(grown, str(tmp_path / "study"))  # the grid may grow and the resources change
    assert read_study(str(tmp_path / "study")) == grown


def test_full_switches_the_defaults_and_given_flags_win(tmp_path):
    from scalerl.cli import app

    result = CliRunner().invoke(
        app,
        [
            "horizon-study",
            "--full",
            "--steps",
            "1000",
            "--tasks",
            "maze-n8,maze-n16",
            "--dry-run",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "108 trials, 12 datasets" in result.output  # 2 tasks x 9 methods x 2 sizes x 3 seeds
    assert "--steps 1000 " in result.output and "--agent.hidden-dims 512 512 512 512" in result.output
    assert "--agent.discount 0.999" in result.output and "maze-n8-navigate-1M-seed0" in result.output
    assert not os.listdir(tmp_path)  # a dry run writes nothing


def test_half_success_horizon_is_interpolated_in_log_horizon():
    horizons = [10, 100, 1000]
    # Replicates [0.8, 0.6, 0.2] and [1.0, 0.8, 0.0]: mean [0.9, 0.7, 0.1], a third of the way from 100 to 1000.
    values = np.array([[0.8, 1.0], [0.6, 0.8], [0.2, 0.0]])
    result = crossing_summary(horizons, values)
    assert result["status"] == "reached"
    assert result["horizon"] == pytest.approx(10 ** (2 + 1 / 3))
    assert [item["horizon"] for item in result["per_replicate"]] == pytest.approx([10**2.25, 10**2.375])
    assert (result["low"], result["high"]) == pytest.approx((10**2.25, 10**2.375))
    # A rise is pooled by the non-increasing isotonic fit: [0.4, 0.8, 0.1] -> [0.6, 0.6, 0.1].
    pooled = half_success_crossing(horizons, [0.4, 0.8, 0.1])
    assert pooled["fit"] == pytest.approx([0.6, 0.6, 0.1]) and pooled["horizon"] == pytest.approx(10**2.2)
    assert half_success_crossing(horizons, [0.3, 0.2, 0.1])["status"] == "below"
    assert half_success_crossing(horizons, [0.9, 0.8, 0.6])["status"] == "not reached"
    assert half_success_crossing(horizons, [np.nan] * 3)["status"] == "no data"
    mixed = crossing_summary(horizons, np.array([[0.9, 0.4], [0.9, 0.2], [0.9, 0.1]]))
    assert mixed["status"] == "reached" and (mixed["low"], mixed["high"]) == (0.0, math.inf)


def test_bias_slopes_are_per_replicate_least_squares_lines():
    distances = np.array([1.0, 5.0, 9.0])
    bias = np.stack([0.5 * distances + 1.0, 0.3 * distances, [np.nan, 2.0, np.nan]])
    np.testing.assert_allclose(bias_slopes(distances, bias)[:2], [0.5, 0.3])
    assert np.isnan(bias_slopes(distances, bias)[2])


def _diagnostic_rows(slope_by_seed: dict[int, float], bins=(0, 1, 2)) -> list[dict]:
    """Rows of one run's diagnostics: bin ``b`` at distance ``2 b + 1``, bias ``slope * d``, |error| its absolute."""
    rows = []
    for seed, slope in slope_by_seed.items():
        for b in bins:
            distance = 2.0 * b + 1.0
            rows.append(
                {
                    "seed": seed,
                    "level": "value",
                    "bin": b,
                    "distance_mean": distance,
                    "abs_error_steps": abs(slope * distance),
                    "bias_steps": slope * distance,
                }
            )
            rows.append({"seed": seed, "level": "policy", "bin": b, "distance_mean": distance, "success": 1.0 - b / 2})
    return rows


def _record(task, method, seed, success, slopes, status="done"):
    return {
        "name": f"{task}-{method}-{seed}",
        "task": task,
        "method": method,
        "size": "1k",
        "seed": seed,
        "status": status,
        "error": None if status == "done" else "exit code 3",
        "duration_s": 2.0,
        "success": success if status == "done" else None,
        "levels": ["value"] if status == "done" else None,
        "rows": _diagnostic_rows(slopes) if status == "done" else None,
        "spearman": {"value": [0.9, 0.7]} if status == "done" else None,
    }


def test_aggregate_pools_seeds_of_every_trial_into_replicates():
    config = StudyConfig(tasks="maze-n4,maze-n8", methods="sacbc,qrl", sizes="1k", seeds=2, steps=10, log_interval=5)
    records = [
        # sacbc: two sweep seeds x two trained seeds; success [1, 0.8, 0.6, 0.6] at D = 14, all 0 at D = 47.
        _record("maze-n4", "sacbc", 0, [1.0, 0.8], {0: 0.5, 1: 0.3}),
        _record("maze-n4", "sacbc", 1, [0.6, 0.6], {0: 0.1, 1: 0.1}),
        _record("maze-n8", "sacbc", 0, [0.0, 0.0], {0: 1.0, 1: 1.0}),
        _record("maze-n8", "sacbc", 1, [0.0, 0.0], {0: 1.0, 1: 1.0}),
        _record("maze-n4", "qrl", 0, [1.0, 1.0], {0: 0.0, 1: 0.0}),
        _record("maze-n8", "qrl", 0, None, {}, status="failed"),
    ]
    summary = aggregate(config, records, {"maze-n4": 14, "maze-n8": 47})
    sacbc = summary["success"]["1k"]["sacbc"]
    assert sacbc["horizon"] == [14, 47] and sacbc["n"] == [4, 4]
    assert sacbc["mean"] == pytest.approx([0.75, 0.0]) and sacbc["std"] == pytest.approx(
        [np.std([1, 0.8, 0.6, 0.6]), 0]
    )
    crossing = summary["half_success_horizon"]["1k"]["sacbc"]
    assert crossing["horizon"] == pytest.approx(14 * (47 / 14) ** (1 / 3))  # 0.75 -> 0: a third of the way
    qrl = summary["success"]["1k"]["qrl"]
    assert qrl["n"] == [2, 0] and qrl["mean"] == [1.0, None]
    assert summary["half_success_horizon"]["1k"]["qrl"]["status"] == "not reached"
    curve = summary["value_error"]["1k"]["sacbc"]["maze-n4"]
    assert curve["primary"] == "value" and curve["levels"]["value"]["replicates"] == 4
    assert curve["levels"]["value"]["distance"] == [1.0, 3.0, 5.0]
    assert curve["levels"]["value"]["bias_slope"] == pytest.approx([0.5, 0.3, 0.1, 0.1])
    assert curve["levels"]["value"]["bias_slope_std"] == pytest.approx(np.std([0.5, 0.3, 0.1, 0.1]))
    assert curve["levels"]["value"]["bias_steps"][2] == pytest.approx(5 * np.mean([0.5, 0.3, 0.1, 0.1]))
    assert curve["levels"]["value"]["spearman_mean"] == pytest.approx(0.8)
    assert curve["levels"]["policy"]["success"] == [1.0, 0.5, 0.0]
    assert summary["value_error"]["1k"]["qrl"]["maze-n8"] == {"primary": None, "levels": {}}
    assert summary["trials"]["by_status"] == {"done": 5, "failed": 1}
    assert summary["trials"]["failed"] == [{"name": "maze-n8-qrl-0", "error": "exit code 3"}]
    assert level_curves(records[:1], "low_value") is None


FAKE_TRIAL = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
for name in ("study", "task", "method", "size", "seed", "out"):
    parser.add_argument("--" + name)
args = parser.parse_args()
if not os.path.isdir(os.path.join(args.study, "data", f"{args.task}-navigate-{args.size}-seed{args.seed}")):
    sys.exit("no dataset")
if args.method == "qrl" and not os.path.exists(os.path.join(args.study, "fixed")):
    sys.exit(3)
success = {"maze-n4": 1.0, "maze-n8": 0.0}[args.task] if args.method != "qrl" else 1.0
with open(os.path.join(args.out, "eval.jsonl"), "w") as f:
    for seed in range(2):
        f.write(json.dumps({"step": 10, "seed": seed, "success": success}) + "\\n")
rows = [{"seed": s, "level": "value", "bin": b, "distance_mean": 1.0 + b, "abs_error_steps": 0.1 * (1.0 + b),
         "bias_steps": 0.1 * (1.0 + b)} for s in range(2) for b in range(2)]
summary = {"value": {"spearman": [1.0, 1.0]}}
with open(os.path.join(args.out, "diagnostics.json"), "w") as f:
    json.dump({"levels": [{"name": "value"}], "rows": rows, "summary": summary}, f)
"""


def test_the_study_runs_its_sweep_after_the_datasets_and_resumes(tmp_path, monkeypatch):
    script = tmp_path / "fake_trial.py"
    script.write_text(FAKE_TRIAL)
    monkeypatch.setattr(
        study,
        "TRIAL_COMMAND",
        f"{{python}} {script} --study {{study}} --task {{task}} --method {{method}} "
        "--size {size} --seed {seed} --out {trial_dir}",
    )
    made = []

    def fake_generate(env, transitions, out_dir, seed=0, progress_bar=False):
        made.append((env, transitions, seed))
        os.makedirs(out_dir, exist_ok=True)

    monkeypatch.setattr("scalerl.horizon.datasets.generate_for_study", fake_generate)
    config = StudyConfig(
        tasks="maze-n4,maze-n8", methods="sacbc,qrl", sizes="1k", steps=10, log_interval=5, workers=2, max_retries=0
    )
    out = tmp_path / "study"
    report, failed = run_study(config, str(out), progress=False)
    assert sorted(made) == [("maze-n4-navigate", "1k", 0), ("maze-n8-navigate", "1k", 0)]
    assert sorted(failed) == ["task=maze-n4__method=qrl__size=1k__seed=0", "task=maze-n8__method=qrl__size=1k__seed=0"]
    text = open(report).read()
    assert "| sacbc | 1.00 ± 0.00 | 0.00 ± 0.00 | 26 |" in text  # 1 -> 0: half way in log D, 14 to 47
    assert "failed: `task=maze-n4__method=qrl__size=1k__seed=0`: exit code 3" in text
    for name in ("report.json", "success.png", "value_error_1k.png", "sweep.toml", "timings.json"):
        assert (out / name).is_file(), name
    (out / "fixed").write_text("")
    report, failed = run_study(config, str(out), progress=False)  # retries the failures, skips the rest
    assert failed == []
    timings = json.loads((out / "timings.json").read_text())
    assert [entry["skipped"] for entry in timings] == [0, 2]
    summary = json.loads((out / "report.json").read_text())
    assert summary["success"]["1k"]["qrl"]["mean"] == [1.0, 1.0]
    assert summary["half_success_horizon"]["1k"]["qrl"]["status"] == "not reached"
    assert summary["value_error"]["1k"]["sacbc"]["maze-n8"]["levels"]["value"]["bias_slope_mean"] == pytest.approx(0.1)


def test_subgoals_that_cannot_reach_the_goal_are_left_out_of_the_error_rows():
    # A stalling lock's subgoal behind the position: the goal is unreachable through it (V* = 0, no distance in steps).
    from scalerl.horizon.diagnostics import Level, PairSet, Reading, level_rows
    from scalerl.horizon.tasks import UNREACHABLE

    pairs = PairSet(
        starts=np.zeros(3, int),
        goals=np.array([1, 2, 3]),
        distances=np.array([1, 2, 3]),
        bins=np.array([0, 0, 1]),
        edges=np.array([1, 3, 5]),
    )
    steps = np.array([[2.0, UNREACHABLE, UNREACHABLE]])
    reading = Reading(Level("subgoal_q", "value", 0.5), 0.5 ** np.array([[3.0, 1.0, 1.0]]), steps, np.arange(3))
    rows = level_rows(reading, pairs, 1e-6)
    assert [row["bin"] for row in rows] == [0]  # bin 1 has no reachable subgoal
    assert rows[0]["distance_mean"] == 2.0 and rows[0]["bias_steps"] == pytest.approx(1.0)
