"""Metric sinks: one-line errors for a missing package, and the fan-out of rows to TensorBoard and W&B writers."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types

import pytest

from scalerl.errors import ScalerlError
from scalerl.sinks import MetricSinks, check_sinks

ROWS = [
    {"step": 100, "seed": 0, "train/actor/loss": 0.5, "success": 1, "env": "pointmaze", "note": None},
    {"step": 100, "seed": 1, "train/actor/loss": 0.25, "success": 0, "env": "pointmaze", "note": None},
    {"step": 200, "seed": 0, "train/actor/loss": 0.125, "per_task": [0.1, 0.2]},
]
EXPECTED = [  # (tag, value, step): numeric values only, tagged seedN/key
    ("seed0/train/actor/loss", 0.5, 100),
    ("seed0/success", 1, 100),
    ("seed1/train/actor/loss", 0.25, 100),
    ("seed1/success", 0, 100),
    ("seed0/train/actor/loss", 0.125, 200),
]


def _without(monkeypatch, *missing: str) -> None:
    """Make ``importlib.util.find_spec`` report the ``missing`` packages as not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))


def _fake_module(monkeypatch, name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # find_spec reads it from sys.modules
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize(
    "tensorboard, wandb_project, message",
    [
        (True, None, "--tensorboard: needs the tensorboardX package (pip install tensorboardX)"),
        (False, "my-project", "--wandb-project: needs the wandb package (pip install wandb)"),
    ],
)
def test_a_requested_sink_without_its_package_is_a_one_line_error(
    monkeypatch, tmp_path, tensorboard, wandb_project, message
):
    _without(monkeypatch, "tensorboardX", "wandb")
    with pytest.raises(ScalerlError) as error:
        check_sinks(tensorboard, wandb_project)
    assert str(error.value) == message
    with pytest.raises(ScalerlError, match="needs the"):
        MetricSinks(str(tmp_path), tensorboard=tensorboard, wandb_project=wandb_project)
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_sinks_that_are_not_requested_need_no_package(monkeypatch, tmp_path):
    _without(monkeypatch, "tensorboardX", "wandb")
    check_sinks(False, None)
    check_sinks(False, "")
    sinks = MetricSinks(str(tmp_path))
    sinks.write(ROWS)  # no writer: nothing to do
    sinks.close()
    assert list(tmp_path.iterdir()) == []


class FakeSummaryWriter:
    instances: list[FakeSummaryWriter] = []

    def __init__(self, logdir: str):
        self.logdir = logdir
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        FakeSummaryWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


def test_tensorboard_gets_every_numeric_value_tagged_by_seed_at_its_step(monkeypatch, tmp_path):
    FakeSummaryWriter.instances = []
    _fake_module(monkeypatch, "tensorboardX", SummaryWriter=FakeSummaryWriter)
    sinks = MetricSinks(str(tmp_path), tensorboard=True)
    sinks.write(ROWS[:2])
    sinks.write(ROWS[2:])
    sinks.close()
    (writer,) = FakeSummaryWriter.instances
    assert writer.logdir == os.path.join(str(tmp_path), "tensorboard")
    assert writer.scalars == EXPECTED
    assert writer.closed


class FakeWandbRun:
    def __init__(self):
        self.logged: list[tuple[dict, int]] = []
        self.finished = False

    def log(self, values: dict, step: int) -> None:
        self.logged.append((values, step))

    def finish(self) -> None:
        self.finished = True


def test_wandb_gets_one_log_call_per_row_with_the_run_config(monkeypatch, tmp_path):
    run, init_kwargs = FakeWandbRun(), {}

    def init(**kwargs):
        init_kwargs.update(kwargs)
        return run

    _fake_module(monkeypatch, "wandb", init=init)
    run_dir = str(tmp_path / "gciql-run")
    sinks = MetricSinks(run_dir, wandb_project="scaling", config={"agent": "gciql"})
    sinks.write(ROWS)
    sinks.close()
    assert init_kwargs == {"project": "scaling", "dir": run_dir, "config": {"agent": "gciql"}, "name": "gciql-run"}
    assert run.logged == [
        ({"seed0/train/actor/loss": 0.5, "seed0/success": 1}, 100),
        ({"seed1/train/actor/loss": 0.25, "seed1/success": 0}, 100),
        ({"seed0/train/actor/loss": 0.125}, 200),
    ]
    assert run.finished


def test_both_sinks_receive_the_same_rows(monkeypatch, tmp_path):
    FakeSummaryWriter.instances = []
    run = FakeWandbRun()
    _fake_module(monkeypatch, "tensorboardX", SummaryWriter=FakeSummaryWriter)
    _fake_module(monkeypatch, "wandb", init=lambda **kwargs: run)
    sinks = MetricSinks(str(tmp_path), tensorboard=True, wandb_project="scaling")
    sinks.write(ROWS)
    sinks.close()
    (writer,) = FakeSummaryWriter.instances
    assert writer.scalars == EXPECTED
    assert [(tag, value, step) for values, step in run.logged for tag, value in values.items()] == EXPECTED
    assert writer.closed and run.finished
