"""Learning curves of an online run: evaluation return and the TD-overfitting diagnostic (train vs validation)."""

from __future__ import annotations

import os

from scalerl.atomic import save_figure
from scalerl.plots import plt, seed_mean
from scalerl.runs import EVAL_FILE, METRICS_FILE, read_jsonl


def plot_online_run(run_dir: str, path: str | None = None) -> str:
    """Plot ``eval.jsonl``'s return and ``metrics.jsonl``'s TD losses (mean +- std over seeds); returns the PNG."""
    metrics = read_jsonl(os.path.join(run_dir, METRICS_FILE))
    evals = read_jsonl(os.path.join(run_dir, EVAL_FILE))
    fig, (return_ax, td_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps, mean, std = seed_mean(evals, "return")
    if len(steps):
        return_ax.errorbar(steps, mean, yerr=std, marker="o", capsize=3)
    return_ax.set_title("evaluation return", fontsize=9)
    for key, label in (("td/train_loss", "replay (train)"), ("td/validation_loss", "fresh (validation)")):
        steps, mean, std = seed_mean(metrics, key)
        if len(steps):
            td_ax.plot(steps, mean, marker=".", label=label)
            td_ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    td_ax.set_title("critic TD loss", fontsize=9)
    if td_ax.lines:
        td_ax.set_yscale("log")
        td_ax.legend(fontsize=7)
    for ax in (return_ax, td_ax):
        ax.set_xlabel("environment steps")
    fig.tight_layout()
    path = path or os.path.join(run_dir, "curves.png")
    return save_figure(fig, path, dpi=90)
