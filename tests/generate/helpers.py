"""Helpers shared by the generation tests: file checksums and snapshots, the in-process CLI, tiny plans."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scalerl.generate.shards import DatasetPlan, plan_dataset
from scalerl.manifest import sha256_file

# Tiny datasets: 2 shards x 2 episodes (+1 val episode each), short episodes.
TINY = {
    "pointmaze": {
        "env": "pointmaze-medium",
        "dataset_type": "navigate",
        "shards": 2,
        "episodes_per_shard": 2,
        "episode_length": 50,
    },
    "puzzle": {"env": "puzzle-3x3", "dataset_type": "play", "shards": 2, "episodes_per_shard": 2, "episode_length": 20},
}


def tiny_plan(kind: str, **overrides) -> DatasetPlan:
    """The plan of ``TINY[kind]`` with ``overrides``."""
    return plan_dataset(**{**TINY[kind], **overrides})


def checksums(directory: Path) -> dict[str, str]:
    """sha256 of every ``.npz`` file in ``directory`` (the shards; the manifest and journals are compared apart)."""
    return {path.name: sha256_file(path) for path in sorted(directory.iterdir()) if path.suffix == ".npz"}


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every entry in ``directory`` (hidden ones included)."""
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(directory.iterdir())}


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run ``scalerl`` in-process through its real entry point; return (exit code, stdout, stderr)."""
    from scalerl.cli import main

    monkeypatch.setattr(sys, "argv", ["scalerl", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err
