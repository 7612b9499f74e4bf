"""The training loop: fused == single updates, vmapped seeds == separate runs, checkpoints, resume."""

import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

from scalerl.agents import AGENTS, get_agent, sampler_config
from scalerl.data import compact
from scalerl.errors import ScalerlError
from scalerl.offline.loop import create_agents, make_policy_fn, train_chunk
from scalerl.overrides import build_config, parse_overrides
from scalerl.runs import list_checkpoints, read_jsonl, restore_checkpoint, save_checkpoint, seed_keys, without_wall_time

TINY = ["--agent.hidden-dims", "16", "16", "--agent.batch-size", "8"]


def tiny_config(name, extra=()):
    _, config_cls = get_agent(name)
    overrides = parse_overrides(config_cls, TINY + list(extra))
    if "num_samples" in {f for f in config_cls.__dataclass_fields__}:
        overrides["num_samples"] = 4
    if "subgoal_steps" in config_cls.__dataclass_fields__:
        overrides["subgoal_steps"] = 3
    return build_config(config_cls, overrides)


def toy_dataset(episodes=6, length=12, obs_dim=3, action_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    rows = episodes * length
    terminals = np.zeros(rows, np.float32)
    terminals[length - 1 :: length] = 1
    return compact(
        dict(
            observations=rng.normal(size=(rows, obs_dim)).astype(np.float32),
            actions=rng.uniform(-1, 1, size=(rows, action_dim)).astype(np.float32),
            terminals=terminals,
        )
    )


def setup(name, seeds=2):
    agent_cls, _ = get_agent(name)
    config = tiny_config(name)
    dataset = toy_dataset()
    sampler = sampler_config(config)
    keys = seed_keys(0, seeds)
    agents = create_agents(agent_cls, config, dataset, sampler, keys)
    data_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    return agents, dataset, data_keys, sampler, config


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# The loop's equivalences do not depend on the agent's losses; one agent per family keeps CI time flat as the
# registry grows: flow BC (no value), GCIQL (TD with a target network), SHARSA (hierarchical, rejection sampling).
LOOP_AGENTS = [name for name in ("fbc", "gciql", "sharsa") if name in AGENTS]


@pytest.mark.parametrize("name", LOOP_AGENTS)
def test_fused_vmapped_and_restored_agents_are_equivalent(name, tmp_path):
    """K fused updates == K single updates (bitwise); vmapped seeds == separate runs; save/restore: identical actions.

    One test per agent so the compiled programs are shared between the three checks.
    """
    agents, dataset, data_keys, sampler, config = setup(name, seeds=2)
    single = jax.tree.map(lambda x: x.copy(), agents)
    fused, _ = train_chunk(agents, dataset, data_keys, 0, sampler, config.batch_size, 3)
    for step in range(3):
        single, _ = train_chunk(single, dataset, data_keys, step, sampler, config.batch_size, 1)
    assert_trees_equal(fused, single)  # bit for bit on CPU: chunking never changes a run (resumes rely on it)

    agent_cls, _ = get_agent(name)
    for s in range(2):
        alone = create_agents(agent_cls, config, dataset, sampler, seed_keys(0, 2)[s : s + 1])
        alone, _ = train_chunk(alone, dataset, data_keys[s : s + 1], 0, sampler, config.batch_size, 3)
        for x, y in zip(jax.tree.leaves(fused), jax.tree.leaves(alone)):
            np.testing.assert_allclose(np.asarray(x)[s], np.asarray(y)[0], rtol=1e-5, atol=1e-6)

    save_checkpoint(str(tmp_path), 3, fused, keep=2)
    template = create_agents(agent_cls, config, dataset, sampler, seed_keys(5, 2))
    restored = restore_checkpoint(list_checkpoints(str(tmp_path))[-1][1], template)
    observations = np.asarray(dataset.observations[:10])[None].repeat(2, 0)
    key = jax.random.PRNGKey(3)
    expected = make_policy_fn(fused)(observations, observations, key)
    np.testing.assert_array_equal(make_policy_fn(restored)(observations, observations, key), expected)


def test_bad_agent_overrides_are_one_line_errors():
    _, config_cls = get_agent("gciql")
    with pytest.raises(ScalerlError, match="--agent.nope"):
        parse_overrides(config_cls, ["--agent.nope", "1"])
    with pytest.raises(ScalerlError, match="--agent.batch-size: expected int"):
        parse_overrides(config_cls, ["--agent.batch-size", "big"])
    assert parse_overrides(config_cls, ["--agent.hidden-dims", "8", "4"]) == {"hidden_dims": (8, 4)}


def scalerl(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "scalerl.cli", *args], capture_output=True, text=True, env={**os.environ}
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def tiny_maze(tmp_path_factory):
    """A real generated pointmaze-medium dataset: 4 shards x 2 episodes x 200 steps."""
    out = tmp_path_factory.mktemp("data") / "pm"
    scalerl(
        "generate",
        "--env",
        "pointmaze-medium",
        "--type",
        "navigate",
        "--shards",
        "4",
        "--episodes-per-shard",
        "2",
        "--episode-length",
        "200",
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    )
    return out


def loop_config(data, out, steps, **overrides):
    from scalerl.offline.loop import TrainConfig

    values = dict(
        agent="gciql",
        env="pointmaze-medium-navigate",
        data=str(data),
        out=str(out),
        steps=steps,
        seeds=2,
        log_interval=10,
        save_interval=20,
        eval_episodes=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def metrics(run_dir) -> list[dict]:
    return read_jsonl(os.path.join(run_dir, "metrics.jsonl"))


@pytest.mark.integration
def test_a_killed_run_resumed_with_more_steps_equals_an_uninterrupted_one(tiny_maze, tmp_path, capsys):
    """Issue 11, items 6, 7 and 9: a run resumed with a higher --steps (and other log/checkpoint intervals) equals an
    uninterrupted one bit for bit (time/ keys aside); every metrics line carries the wall time and the update rate;
    a stream that is not a terminal gets progress lines, not a redrawn bar."""
    from scalerl.offline.loop import train

    config = tiny_config("gciql")
    full = tmp_path / "full"
    train(loop_config(tiny_maze, full, 40), config, progress=False)
    # A 30-step run killed after its checkpoint at step 20 and its metric line at step 30: the tail after the
    # checkpoint is recomputed, not kept; then it is resumed with --steps 40 (refused before issue 11).
    killed = tmp_path / "killed"
    train(loop_config(tiny_maze, killed, 30), config, progress=False)
    os.remove(killed / "checkpoints" / "step_00000030.msgpack")
    capsys.readouterr()
    train(loop_config(tiny_maze, killed, 40), config, resume=True, progress=True)
    output = capsys.readouterr()
    assert without_wall_time(metrics(killed)) == without_wall_time(metrics(full))
    assert len(metrics(full)) == 8
    last_checkpoint = os.path.join("checkpoints", "step_00000040.msgpack")
    assert (killed / last_checkpoint).read_bytes() == (full / last_checkpoint).read_bytes()
    assert json.loads((killed / "config.json").read_text())["train"]["steps"] == 40

    # Wall time on every line, continued across the resume (the resumed lines add to the 20-step total).
    for row in metrics(full) + metrics(killed):
        assert row["time/total_s"] > 0 and row["time/updates_per_s"] > 0
    totals = [row["time/total_s"] for row in metrics(killed)]
    assert totals == sorted(totals)
    assert "updates/s after the first interval (which compiles); run total" in output.out
    # Progress on a stream that is not a terminal: lines, never a redrawn bar; the last one at the end.
    assert "\r" not in output.err and "gciql x2: 40/40 upd (100%), in " in output.err.splitlines()[-1]

    # Fused chunks do not change results: the full run's files up to its checkpoint at step 20, moved to another
    # directory and resumed with --log-interval 25 (chunks of 5 and 15 updates instead of 10 and 10), end with the
    # same agents.
    rechunked = tmp_path / "rechunked"
    (rechunked / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000020.msgpack", rechunked / "checkpoints")
    shutil.copy(full / "config.json", rechunked)
    (rechunked / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics(full)[:4]))
    train(loop_config(tiny_maze, rechunked, 40, log_interval=25, save_interval=25), config, resume=True, progress=False)
    assert (rechunked / last_checkpoint).read_bytes() == (full / last_checkpoint).read_bytes()
    assert [row["step"] for row in metrics(rechunked)] == [10, 10, 20, 20, 25, 25, 40, 40]

    message = "--steps: .* has a checkpoint at step 40 .* expected --steps >= 40, got 30"
    with pytest.raises(ScalerlError, match=message):
        train(loop_config(tiny_maze, rechunked, 30, log_interval=25, save_interval=25), config, resume=True)


def train_args(data, out, steps, extra=()):
    return [
        "train",
        "--agent",
        "gciql",
        "--env",
        "pointmaze-medium-navigate",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--seeds",
        "2",
        "--log-interval",
        "10",
        "--save-interval",
        "20",
        "--eval-episodes",
        "0",
        "--no-progress",
        *TINY,
        *extra,
    ]


@pytest.mark.integration
def test_resume_refuses_a_different_config_and_out_is_never_overwritten(tiny_maze, tmp_path):
    from scalerl.offline.loop import train

    config = tiny_config("gciql")
    train(loop_config(tiny_maze, tmp_path / "run", 20), config, progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    again = scalerl(*train_args(tiny_maze, tmp_path / "run", 20), check=False)
    assert again.returncode == 2 and again.stderr.startswith("error: --out:") and again.stderr.count("\n") == 1
    # A longer run may resume (issue 11, item 6), but not with another agent setting.
    changed = scalerl(*train_args(tiny_maze, tmp_path / "run", 40, ["--resume", "--agent.alpha", "2.5"]), check=False)
    assert changed.returncode == 2 and "in agent.alpha (only --out, --steps" in changed.stderr
    assert changed.stderr.count("\n") == 1
    bad_flag = scalerl(*train_args(tiny_maze, tmp_path / "other", 20, ["--agent.alpha", "high"]), check=False)
    assert bad_flag.returncode == 2 and "--agent.alpha: expected float" in bad_flag.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    assert not (tmp_path / "other").exists()


@pytest.mark.integration
def test_tiny_end_to_end_generate_train_evaluate(tiny_maze, tmp_path):
    out = tmp_path / "sharsa"
    result = scalerl(
        "train",
        "--agent",
        "sharsa",
        "--env",
        "pointmaze-medium-navigate-oraclerep",
        "--data",
        str(tiny_maze),
        "--out",
        str(out),
        "--steps",
        "20",
        "--seeds",
        "2",
        "--log-interval",
        "10",
        "--save-interval",
        "20",
        "--eval-episodes",
        "1",
        "--no-progress",
        *TINY,
        "--agent.num-samples",
        "4",
        "--agent.subgoal-steps",
        "5",
    )
    assert "success at step 20" in result.stdout
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 1]
    assert all(0.0 <= r["success"] <= 1.0 and len([k for k in r if k.startswith("success/")]) == 5 for r in rows)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for row in metrics for k, v in row.items() if k.startswith(("train/", "val/")))
    assert any(k.startswith("val/") for k in metrics[0])
    assert (out / "curves.png").stat().st_size > 0
    evaluated = scalerl("eval", str(out), "--episodes", "1")
    assert "seed 1: success" in evaluated.stdout


def test_missing_logging_package_is_a_one_line_error_before_anything_is_written(tmp_path):
    import importlib.util

    from scalerl.offline.loop import TrainConfig, train

    if importlib.util.find_spec("tensorboardX") is not None:
        pytest.skip("tensorboardX is installed")
    config = TrainConfig(
        agent="fbc", env="pointmaze-medium", data=str(tmp_path), out=str(tmp_path / "run"), tensorboard=True
    )
    with pytest.raises(ScalerlError, match="--tensorboard: needs the tensorboardX package"):
        train(config, tiny_config("fbc"), progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_dataset_of_another_environment_leaves_no_run_directory(tiny_maze, tmp_path):
    from scalerl.offline.loop import train

    config = loop_config(tiny_maze, tmp_path / "run", 10, env="puzzle-3x3-play")
    with pytest.raises(ScalerlError, match="observations have dimension 2 but puzzle-3x3-play expects 55"):
        train(config, tiny_config("gciql"), progress=False)
    assert not (tmp_path / "run").exists()
