"""Plots of a run directory: learning curves (losses, validation losses, evaluation success)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalerl.atomic import save_figure  # noqa: E402
from scalerl.runs import EVAL_FILE, METRICS_FILE, read_jsonl  # noqa: E402


def seed_mean(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean, std)`` of ``key`` over seeds at each logged step."""
    by_step: dict[int, list[float]] = {}
    for row in rows:
        if key in row and row[key] is not None:
            by_step.setdefault(row["step"], []).append(row[key])
    steps = np.array(sorted(by_step))
    values = [np.asarray(by_step[s], dtype=float) for s in steps]
    return steps, np.array([v.mean() for v in values]), np.array([v.std() for v in values])


def plot_run(run_dir: str, path: str | None = None) -> str:
    """Plot every loss key of ``metrics.jsonl`` (train and val) and the success of ``eval.jsonl``; returns the PNG."""
    metrics = read_jsonl(os.path.join(run_dir, METRICS_FILE))
    evals = read_jsonl(os.path.join(run_dir, EVAL_FILE))
    keys = sorted({k for row in metrics for k in row if k.startswith("train/") and k.endswith("loss")})
    panels = keys + (["success"] if evals else [])
    cols = min(4, max(1, len(panels)))
    rows_count = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows_count, cols, figsize=(4 * cols, 3 * rows_count), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        if key == "success":
            steps, mean, std = seed_mean(evals, "success")
            ax.errorbar(steps, mean, yerr=std, marker="o", capsize=3)
            ax.set_ylim(-0.02, 1.02)
        else:
            for split in ("train", "val"):
                name = split + key[len("train") :]
                steps, mean, std = seed_mean(metrics, name)
                if len(steps):
                    ax.plot(steps, mean, label=split)
                    ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
            ax.legend(fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("updates")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    path = path or os.path.join(run_dir, "curves.png")
    return save_figure(fig, path, dpi=90)
