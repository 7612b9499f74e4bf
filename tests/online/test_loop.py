"""Online SAC: replay buffer semantics, fused updates, UTD scheduling, resume and the CLI's errors."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.online import buffer as replay
from scalerl.online.loop import OnlineConfig, run_online, update_many, update_once, updates_at
from scalerl.online.sac import SACAgent, SACConfig
from scalerl.runs import without_wall_time

TINY_AGENT = SACConfig(batch_size=8, actor_hidden_dims=(16,), critic_width=16, critic_depth=1)


def _transition(value: float, observation_dim: int = 3, action_dim: int = 2) -> dict:
    return {
        "observations": np.full(observation_dim, value, np.float32),
        "actions": np.full(action_dim, value / 100, np.float32),
        "rewards": np.float32(value),
        "next_observations": np.full(observation_dim, value + 1, np.float32),
        "terminals": np.float32(0.0),
    }


def test_buffer_wraps_around():
    buffer = replay.ReplayBuffer.create(3, 3, 2)
    add = jax.jit(replay.add, donate_argnums=0)
    for value in range(5):
        buffer = add(buffer, _transition(float(value)))
    assert int(buffer.size) == 3 and int(buffer.pointer) == 2
    # Slots 0 and 1 were overwritten by transitions 3 and 4; slot 2 still holds transition 2.
    np.testing.assert_array_equal(buffer.data["rewards"], [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buffer.data["next_observations"][:, 0], [4.0, 5.0, 3.0])


def test_buffer_never_samples_unwritten_slots():
    buffer = replay.ReplayBuffer.create(10, 3, 2)
    for value in (1.0, 2.0, 3.0):
        buffer = replay.add(buffer, _transition(value))
    batch = replay.sample(buffer, jax.random.PRNGKey(0), 2000)
    assert set(np.unique(batch["rewards"]).tolist()) == {1.0, 2.0, 3.0}
    np.testing.assert_array_equal(batch["observations"][:, 0], batch["rewards"])  # columns stay aligned


def _filled_buffer(size: int = 20) -> replay.ReplayBuffer:
    rng = np.random.default_rng(0)
    buffer = replay.ReplayBuffer.create(size, 3, 2)
    data = {
        "observations": rng.normal(size=(size, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(size, 2)).astype(np.float32),
        "rewards": rng.normal(size=size).astype(np.float32),
        "next_observations": rng.normal(size=(size, 3)).astype(np.float32),
        "terminals": (rng.uniform(size=size) < 0.2).astype(np.float32),
    }
    return buffer.replace(data=jax.tree.map(jnp.asarray, data), pointer=jnp.int32(0), size=jnp.int32(size))


def test_fused_updates_equal_single_updates():
    # The BRO critic here; the loop tests below run the MLP critic.
    config = dataclasses.replace(TINY_AGENT, critic_type="bro")
    agent = SACAgent.create(jax.random.PRNGKey(1), 3, 2, config)
    buffer = _filled_buffer()
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    fused, infos = jax.jit(update_many, static_argnums=3)(agent, buffer, keys, config.batch_size)
    single = agent
    step = jax.jit(update_once, static_argnums=3)
    for key in keys:
        single, info = step(single, buffer, key, config.batch_size)
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(single)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(infos["critic/loss"][-1], info["critic/loss"], rtol=1e-5)
    assert np.isfinite(infos["critic/loss"]).all()


@pytest.mark.parametrize("utd", [0.25, 0.3, 0.5, 1.0, 2.0, 2.5, 8.0])
def test_utd_schedule_counts(utd):
    start, steps = 7, 103
    counts = [updates_at(t, utd, start) for t in range(steps)]
    assert sum(counts[:start]) == 0
    assert sum(counts) == math.floor((steps - start) * utd + 1e-9)
    assert set(counts[start:]) <= {math.floor(utd), math.ceil(utd)}
    if utd < 1:  # one update every 1 / utd steps, evenly spread
        gaps = np.diff(np.flatnonzero(counts))
        assert gaps.min() >= math.floor(1 / utd) and gaps.max() <= math.ceil(1 / utd)


def _config(tmp_path, name: str, **overrides) -> OnlineConfig:
    config = OnlineConfig(
        env="dmc:cartpole-swingup", steps=60, utd=1.0, seeds=2, start_steps=10, eval_every=30, eval_episodes=1,
        validation_steps=8, log_every=10, max_episode_steps=25, buffer_size=100, out=str(tmp_path / name),
    )  # fmt: skip
    return dataclasses.replace(config, **overrides)


def _checkpoint_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "checkpoints", f"step_{step:08d}.msgpack")


def _adam_counts(run_dir: str, step: int) -> np.ndarray:
    with open(_checkpoint_path(run_dir, step), "rb") as f:
        restored = flax.serialization.msgpack_restore(f.read())
    return np.asarray(restored["state"]["agent"]["opt_state"]["0"]["count"])


def test_fractional_utd_runs_the_right_number_of_updates(tmp_path):
    config = _config(tmp_path, "quarter", utd=0.25, eval_episodes=0, validation_steps=0)
    run_online(config, TINY_AGENT, progress=False)
    np.testing.assert_array_equal(_adam_counts(config.out, 60), [math.floor((60 - 10) * 0.25)] * 2)
    # The critic's parameter count (N of the model-size laws) is recorded, equal to the real twin critics' size.
    with open(os.path.join(config.out, "config.json")) as f:
        model = json.load(f)["model"]
    with open(_checkpoint_path(config.out, 60), "rb") as f:
        critic = flax.serialization.msgpack_restore(f.read())["state"]["agent"]["params"]["critic"]
    assert model["critic_params"] == sum(np.asarray(leaf)[0].size for leaf in jax.tree.leaves(critic))


def _read(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_resume_equals_uninterrupted_run(tmp_path, capsys):
    # Episodes of 25 steps and a checkpoint at step 30: the resumed environments restart mid-episode. The resumed
    # session also logs twice as often (issue 11, item 6: --log-every may change on resume, as --steps may grow).
    full = _config(tmp_path, "full")
    run_online(full, TINY_AGENT, progress=False)
    part = _config(tmp_path, "part", steps=30)
    run_online(part, TINY_AGENT, progress=False)
    capsys.readouterr()
    # A run made before weight decay and resets existed (its config.json lacks them) resumes at their defaults.
    with open(os.path.join(part.out, "config.json")) as f:
        saved = json.load(f)
    for name in ("critic_weight_decay", "actor_weight_decay", "reset_every", "reset_networks"):
        del saved["agent"][name]
    with open(os.path.join(part.out, "config.json"), "w") as f:
        json.dump(saved, f)
    run_online(dataclasses.replace(part, steps=60, log_every=5), TINY_AGENT, resume=True, progress=False)
    assert "updates/s after the first interval (which compiles); run total" in capsys.readouterr().out
    assert _read(os.path.join(part.out, "eval.jsonl")) == _read(os.path.join(full.out, "eval.jsonl"))
    resumed = without_wall_time(_read(os.path.join(part.out, "metrics.jsonl")))
    expected = without_wall_time(_read(os.path.join(full.out, "metrics.jsonl")))
    assert [row for row in resumed if row["step"] % 10 == 0] == expected
    assert sorted({row["step"] for row in resumed if row["step"] % 10}) == [35, 45, 55]
    checkpoint = os.path.join("checkpoints", "step_00000060.msgpack")
    with open(os.path.join(full.out, checkpoint), "rb") as a, open(os.path.join(part.out, checkpoint), "rb") as b:
        assert a.read() == b.read()
    with open(os.path.join(part.out, "config.json")) as f:
        assert json.load(f)["online"]["log_every"] == 5
    rows = _read(os.path.join(full.out, "metrics.jsonl"))
    assert {"td/train_loss", "td/validation_loss", "critic/loss"} <= set(rows[-1])
    # Item 7: wall time and rates on every line, the resumed session's added to the first's.
    times = {"time/total_s", "time/updates_per_s", "time/env_steps_per_s"}
    assert all(times <= set(row) and row["time/total_s"] > 0 for row in rows)
    totals = [row["time/total_s"] for row in _read(os.path.join(part.out, "metrics.jsonl"))]
    assert totals == sorted(totals)
    np.testing.assert_array_equal(_adam_counts(full.out, 60), [50, 50])
    assert os.path.isfile(os.path.join(full.out, "curves.png"))


def _group_counts(run_dir: str, step: int) -> dict:
    """Per seed, the Adam step count of each parameter group (runs with the per-group optimiser)."""
    with open(_checkpoint_path(run_dir, step), "rb") as f:
        inner = flax.serialization.msgpack_restore(f.read())["state"]["agent"]["opt_state"]["inner_states"]
    return {name: np.asarray(state["inner_state"]["0"]["count"]).tolist() for name, state in inner.items()}


def test_resume_with_resets_and_weight_decay_equals_uninterrupted_run(tmp_path):
    # sigma 2 from step 0 (one compiled step program): updates 2k+1, 2k+2 at step k; a reset every 7 updates lands
    # mid-step half the time, and the resumed session (from step 20, after 40 updates) resets after update 42 first,
    # the second of its first step, as the full run does.
    agent = dataclasses.replace(
        TINY_AGENT, reset_every=7, reset_networks="critic", critic_weight_decay=1e-3, actor_weight_decay=1e-2
    )
    settings = dict(utd=2.0, seeds=1, start_steps=0, eval_every=20, eval_episodes=0, validation_steps=0)
    full = _config(tmp_path, "full", steps=40, **settings)
    run_online(full, agent, progress=False)
    part = _config(tmp_path, "part", steps=20, **settings)
    run_online(part, agent, progress=False)
    run_online(dataclasses.replace(part, steps=40), agent, resume=True, progress=False)
    checkpoint = os.path.join("checkpoints", "step_00000040.msgpack")  # every seed's whole state
    with open(os.path.join(full.out, checkpoint), "rb") as a, open(os.path.join(part.out, checkpoint), "rb") as b:
        assert a.read() == b.read()
    resumed = without_wall_time(_read(os.path.join(part.out, "metrics.jsonl")))
    assert resumed == without_wall_time(_read(os.path.join(full.out, "metrics.jsonl")))
    # 80 updates: the critic was last reset after update 77, the actor never; at step 20 (40 updates) after 35.
    assert _group_counts(full.out, 40) == {"critic": [3], "actor": [80], "log_entropy_coef": [80]}
    assert _group_counts(part.out, 20) == {"critic": [5], "actor": [40], "log_entropy_coef": [40]}
    with open(os.path.join(part.out, "config.json")) as f:
        saved = json.load(f)["agent"]
    assert {k: saved[k] for k in ("reset_every", "reset_networks", "critic_weight_decay", "actor_weight_decay")} == {
        "reset_every": 7, "reset_networks": "critic", "critic_weight_decay": 1e-3, "actor_weight_decay": 1e-2
    }  # fmt: skip


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--utd", "0"], "--utd"),
        (["--batch-size", "-4"], "--batch-size"),
        (["--steps", "-1"], "--steps"),
        (["--critic-width", "0"], "--critic-width"),
        (["--env", "Foo-v5"], "--env"),
        (["--env", "dmc:nodomain-run"], "--env"),
    ],
)
def test_bad_flags_give_one_line_errors(flags, expected, tmp_path, monkeypatch, capsys):
    from scalerl.cli import main

    monkeypatch.setattr(sys, "argv", ["scalerl", "online", "--out", str(tmp_path / "run"), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and expected in error and "\n" not in error
    assert not (tmp_path / "run").exists()
