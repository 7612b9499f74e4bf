"""The run directory: JSON-lines tolerance, truncate/append, checkpoints, the resume check and per-seed keys."""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.runs import (
    RunTimer,
    append_jsonl,
    check_run_dir,
    has_step,
    info_rows,
    iter_jsonl,
    list_checkpoints,
    logged_total_s,
    read_jsonl,
    restore_checkpoint,
    save_checkpoint,
    seed_keys,
    truncate_jsonl,
    without_wall_time,
    write_config,
)


def one_line_error(call) -> str:
    with pytest.raises(ScalerlError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_read_jsonl_skips_blank_lines_and_an_absent_file_is_empty(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_jsonl(str(path)) == []
    path.write_text('{"step": 1, "loss": 0.5}\n\n{"step": 2, "loss": NaN}\n')
    rows = read_jsonl(str(path))
    assert rows[0] == {"step": 1, "loss": 0.5} and rows[1]["step"] == 2 and np.isnan(rows[1]["loss"])
    assert [line.number for line in iter_jsonl(str(path))] == [1, 3]


def test_a_truncated_last_line_is_skipped(tmp_path):
    """A writer killed mid-line leaves a last line without its newline; the rows before it are kept."""
    path = tmp_path / "eval.jsonl"
    path.write_text('{"step": 1, "seed": 0}\n{"step": 2, "se')
    assert read_jsonl(str(path)) == [{"step": 1, "seed": 0}]
    path.write_text('{"step": 1, "se')
    assert read_jsonl(str(path)) == []


def test_a_corrupt_line_elsewhere_is_a_one_line_error_naming_file_and_line(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "se\n{"step": 3}\n')
    message = one_line_error(lambda: read_jsonl(str(path)))
    assert message == f"{path}: line 2 is not a JSON object"
    # A complete last line (with its newline) that is not JSON was not cut short by a killed writer.
    path.write_text('{"step": 1}\n{"step": 2, "se\n')
    assert "line 2" in one_line_error(lambda: read_jsonl(str(path)))
    path.write_text('{"step": 1}\n[1, 2]\n')
    assert "line 2 is not a JSON object" in one_line_error(lambda: read_jsonl(str(path)))
    assert read_jsonl(str(path), skip_corrupt=True) == [{"step": 1}]


def test_append_then_truncate_keeps_the_lines_up_to_a_step_byte_for_byte(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    append_jsonl(path, [{"step": 10, "seed": 0, "train/loss": 0.1}, {"step": 10, "seed": 1, "train/loss": 0.2}])
    append_jsonl(path, [{"step": 20, "seed": 0, "train/loss": 1 / 3}])
    with open(path, "a") as f:
        f.write('{"step": 30, "seed": 0, "train/lo')  # killed mid-line
    lines = open(path).read().splitlines(keepends=True)
    assert lines[0] == '{"step": 10, "seed": 0, "train/loss": 0.1}\n'
    truncate_jsonl(path, 20)
    assert open(path).read() == "".join(lines[:3])
    assert has_step(path, 20) and not has_step(path, 30)
    truncate_jsonl(path, 10)
    assert open(path).read() == "".join(lines[:2])
    truncate_jsonl(str(tmp_path / "absent.jsonl"), 10)
    assert not (tmp_path / "absent.jsonl").exists()


def test_truncate_completes_a_last_row_that_lost_only_its_newline(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}')
    truncate_jsonl(path, 20)
    append_jsonl(path, [{"step": 30}])
    assert [row["step"] for row in read_jsonl(path)] == [10, 20, 30]


def test_info_rows_one_row_per_seed_with_step_seed_first():
    info = {"loss": jax.numpy.array([0.5, 1.5]), "q": np.array([1.0, 2.0], np.float32)}
    rows = info_rows(7, info, 2, "train/")
    assert rows == [
        {"step": 7, "seed": 0, "train/loss": 0.5, "train/q": 1.0},
        {"step": 7, "seed": 1, "train/loss": 1.5, "train/q": 2.0},
    ]
    assert list(rows[0]) == ["step", "seed", "train/loss", "train/q"]
    assert all(type(value) is float for value in rows[1].values() if not isinstance(value, int))
    assert info_rows(3, {}, 2) == [{"step": 3, "seed": 0}, {"step": 3, "seed": 1}]


def tree(value: float) -> dict:
    return {"params": {"w": np.full((2, 3), value, np.float32)}, "step": np.array([1, 2], np.int32)}


def test_checkpoints_save_list_restore_and_prune(tmp_path):
    run_dir = str(tmp_path)
    assert list_checkpoints(run_dir) == []
    for step in (1, 2, 3):
        path = save_checkpoint(run_dir, step, tree(float(step)), keep=2)
    assert path == os.path.join(run_dir, "checkpoints", "step_00000003.msgpack")
    (tmp_path / "checkpoints" / "step_00000004.msgpack.tmp-1").write_bytes(b"partial")
    (tmp_path / "checkpoints" / ".tmp-0123abcd.msgpack").write_bytes(b"partial")
    assert [step for step, _ in list_checkpoints(run_dir)] == [2, 3]
    restored = restore_checkpoint(list_checkpoints(run_dir)[-1][1], tree(0.0))
    np.testing.assert_array_equal(restored["params"]["w"], tree(3.0)["params"]["w"])
    np.testing.assert_array_equal(restored["step"], [1, 2])


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    path = save_checkpoint(str(tmp_path), 1, tree(1.0), keep=2)
    with open(path, "r+b") as f:
        f.truncate(20)
    assert "unreadable checkpoint" in one_line_error(lambda: restore_checkpoint(path, tree(0.0)))


SAVED = {"train": {"steps": 100, "data": "d"}, "agent": {"alpha": 1.0, "hidden_dims": [32, 32]}}


def test_new_run_refuses_a_directory_that_holds_one(tmp_path):
    run_dir = str(tmp_path / "run")
    check_run_dir(run_dir, SAVED, resume=False)
    assert not os.path.exists(run_dir)  # checking writes nothing
    write_config(run_dir, SAVED)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == SAVED
    message = one_line_error(lambda: check_run_dir(run_dir, SAVED, resume=False))
    assert message == f"--out: {run_dir} already holds a run; pass --resume to continue it or choose another --out"


def test_resume_accepts_the_same_config_and_refuses_another_naming_the_keys(tmp_path):
    run_dir = str(tmp_path)
    config_path = os.path.join(run_dir, "config.json")
    message = one_line_error(lambda: check_run_dir(run_dir, SAVED, resume=True))
    assert message == f"--resume: {config_path} not found; nothing to resume"
    write_config(run_dir, SAVED)
    check_run_dir(run_dir, SAVED, resume=True)
    changed = {"train": {**SAVED["train"], "steps": 200}, "agent": {"alpha": 2.5, "hidden_dims": [32, 32]}}
    message = one_line_error(lambda: check_run_dir(run_dir, changed, resume=True, may_change=()))
    assert message == f"--resume: {config_path} differs from this command in agent.alpha, train.steps"
    # A key the saved config lacks is a difference even when the new value is None.
    added = {**SAVED, "agent": {**SAVED["agent"], "new_field": None}}
    assert "agent.new_field" in one_line_error(lambda: check_run_dir(run_dir, added, resume=True))
    (tmp_path / "config.json").write_text("{not json")
    assert "not readable JSON" in one_line_error(lambda: check_run_dir(run_dir, SAVED, resume=True))


def test_a_field_added_after_the_run_was_made_resumes_at_its_default_only(tmp_path):
    run_dir = str(tmp_path)
    write_config(run_dir, SAVED)  # made before scalerl had agent.actor_layer_norm
    defaults = {"agent": {"actor_layer_norm": True}}
    at_default = {**SAVED, "agent": {**SAVED["agent"], "actor_layer_norm": True}}
    check_run_dir(run_dir, at_default, resume=True, defaults=defaults)
    changed = {**SAVED, "agent": {**SAVED["agent"], "actor_layer_norm": False}}
    message = one_line_error(lambda: check_run_dir(run_dir, changed, resume=True, defaults=defaults))
    assert "differs from this command in agent.actor_layer_norm" in message
    # Without defaults, an added key is a difference.
    assert "agent.actor_layer_norm" in one_line_error(lambda: check_run_dir(run_dir, at_default, resume=True))


def test_resume_with_options_that_may_change(tmp_path):
    """Online runs: --steps may grow and the derived ``model`` section is not compared."""
    saved = {"online": {"steps": 100, "utd": 1.0}, "agent": {"lr": 3e-4}, "model": {"critic_params": 10}}
    write_config(str(tmp_path), saved)
    more = {"online": {"steps": 500, "utd": 1.0}, "agent": {"lr": 3e-4}, "model": {"critic_params": 11}}
    check_run_dir(str(tmp_path), more, resume=True, may_change=("online.steps", "model"))
    other = {**more, "online": {"steps": 500, "utd": 2.0}}
    message = one_line_error(lambda: check_run_dir(str(tmp_path), other, True, may_change=("online.steps", "model")))
    expected = f"--resume: {tmp_path / 'config.json'} differs from this command in online.utd"
    assert message == expected + " (only --steps may change on resume)"


TRAIN = {
    "train": {"agent": "gciql", "data": "d", "env": "e", "out": "r", "seed": 0, "seeds": 2, "steps": 200,
              "log_interval": 10, "eval_interval": 0, "eval_episodes": 10, "save_interval": 100,
              "keep_checkpoints": 2, "validate": True, "tensorboard": False, "wandb_project": None},
    "agent": {"alpha": 1.0, "batch_size": 256},
}  # fmt: skip


def test_resume_may_extend_a_run_and_change_what_it_logs_but_not_what_it_learns(tmp_path):
    """Item 6 of issue 11: --steps may rise and the logging, evaluation and checkpoint settings change on resume;
    the agent, data, environment, seeds and seed may not, nor may --steps fall below the latest checkpoint."""
    run_dir = str(tmp_path)
    write_config(run_dir, TRAIN)
    save_checkpoint(run_dir, 200, tree(1.0), keep=2)
    longer = {
        "train": {**TRAIN["train"], "steps": 400, "log_interval": 20, "eval_interval": 100, "eval_episodes": 5,
                  "save_interval": 40, "keep_checkpoints": 3, "validate": False, "tensorboard": True,
                  "wandb_project": "p", "out": "elsewhere/r"},
        "agent": TRAIN["agent"],
    }  # fmt: skip
    check_run_dir(run_dir, longer, resume=True)
    check_run_dir(run_dir, TRAIN, resume=True)  # the same --steps: only a missing final evaluation is left to do
    for section, key, value in [
        ("agent", "alpha", 2.0),
        ("agent", "batch_size", 128),
        ("train", "data", "other"),
        ("train", "env", "other"),
        ("train", "seeds", 3),
        ("train", "seed", 1),
        ("train", "agent", "sharsa"),
    ]:
        changed = {**longer, section: {**longer[section], key: value}}
        message = one_line_error(lambda changed=changed: check_run_dir(run_dir, changed, resume=True))
        assert message.startswith(f"--resume: {tmp_path / 'config.json'} differs from this command in {section}.{key}")
        assert message.endswith("may change on resume)") and "--steps, " in message and "--eval-interval" in message
    shorter = {**TRAIN, "train": {**TRAIN["train"], "steps": 150}}
    message = one_line_error(lambda: check_run_dir(run_dir, shorter, resume=True))
    assert message == f"--steps: {run_dir} has a checkpoint at step 200 and a resumed run continues from it; " + (
        "expected --steps >= 200, got 150"
    )


def test_online_resume_may_change_its_logging_and_evaluation_but_not_its_replay():
    saved = {
        "online": {"steps": 60, "utd": 1.0, "log_every": 10, "eval_every": 30, "eval_episodes": 1,
                   "validation_steps": 8, "buffer_size": 100, "start_steps": 10, "max_episode_steps": 25},
        "agent": {"lr": 3e-4},
        "model": {"critic_params": 10},
    }  # fmt: skip
    import tempfile

    with tempfile.TemporaryDirectory() as run_dir:
        write_config(run_dir, saved)
        online = {"steps": 120, "log_every": 5, "eval_every": 20, "eval_episodes": 2, "validation_steps": 0}
        check_run_dir(run_dir, {**saved, "online": {**saved["online"], **online}}, resume=True)
        for key in ("utd", "buffer_size", "start_steps", "max_episode_steps"):
            changed = {**saved, "online": {**saved["online"], key: 7}}
            message = one_line_error(lambda changed=changed: check_run_dir(run_dir, changed, resume=True))
            assert f"in online.{key} (only --out, --steps, --log-every, --eval-every" in message


def test_time_keys_are_dropped_for_comparisons_and_a_resumed_clock_continues(tmp_path):
    rows = [{"step": 10, "seed": 0, "train/loss": 0.5, "time/total_s": 3.5, "time/updates_per_s": 2.9}]
    assert without_wall_time(rows) == [{"step": 10, "seed": 0, "train/loss": 0.5}]
    path = str(tmp_path / "metrics.jsonl")
    assert logged_total_s(path, 10) == 0.0
    append_jsonl(path, rows + [{"step": 20, "seed": 0, "time/total_s": 7.0}, {"step": 30, "seed": 0}])
    assert logged_total_s(path, 25) == 7.0 and logged_total_s(path, 30) == 7.0 and logged_total_s(path, 10) == 3.5


def test_run_timer_rates_and_a_steady_rate_without_the_compiling_interval():
    now = [100.0]
    timer = RunTimer(clock=lambda: now[0])
    timer.previous_s = 50.0  # a resumed run
    now[0] += 4.0
    assert timer.interval(0, 1.0) == {"time/total_s": 54.0, "time/updates_per_s": 0.0}  # no updates yet (online)
    now[0] += 10.0
    assert timer.interval(100, 8.0) == {"time/total_s": 64.0, "time/updates_per_s": 12.5}  # compiles
    assert "no steady rate" in timer.summary()
    now[0] += 2.0
    assert timer.interval(100, 1.0)["time/updates_per_s"] == 100.0
    now[0] += 2.0
    timer.interval(100, 3.0)
    assert timer.summary() == "time: 300 updates in 18.0 s, 50.0 updates/s after the first interval (which " + (
        "compiles); run total 68.0 s"
    )


def test_seed_keys_do_not_depend_on_the_number_of_seeds():
    np.testing.assert_array_equal(seed_keys(3, 5)[:2], seed_keys(3, 2))
    np.testing.assert_array_equal(seed_keys(3, 1)[0], jax.random.fold_in(jax.random.PRNGKey(3), 0))
    assert len({tuple(np.asarray(key).tolist()) for key in seed_keys(0, 4)}) == 4
    assert not np.array_equal(seed_keys(0, 2), seed_keys(1, 2))
