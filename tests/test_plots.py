"""Run-directory plots: seed means against hand-computed values, and the panels ``plot_run`` draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalerl import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_seed_mean_averages_over_seeds_at_each_step_and_skips_missing_values():
    rows = [
        {"step": 20, "seed": 0, "loss": 2.0},
        {"step": 10, "seed": 0, "loss": 1.0},
        {"step": 10, "seed": 1, "loss": 3.0},
        {"step": 20, "seed": 1, "loss": 4.0},
        {"step": 20, "seed": 2, "loss": None},  # not logged for this seed
        {"step": 30, "seed": 0, "other": 7.0},  # no loss at step 30
        {"step": 40, "seed": 0, "loss": 5.0},
        {"step": 40, "seed": 1, "loss": 5.0},
        {"step": 40, "seed": 2, "loss": 8.0},
    ]
    steps, mean, std = plots.seed_mean(rows, "loss")
    np.testing.assert_array_equal(steps, [10, 20, 40])
    np.testing.assert_allclose(mean, [2.0, 3.0, 6.0])
    # Population std (ddof 0): [1, 3] -> 1; [2, 4] -> 1; [5, 5, 8] -> sqrt(((-1)^2 + (-1)^2 + 2^2) / 3) = sqrt(2).
    np.testing.assert_allclose(std, [1.0, 1.0, np.sqrt(2.0)])


def test_seed_mean_of_an_absent_key_is_empty():
    steps, mean, std = plots.seed_mean([{"step": 1, "seed": 0, "loss": 1.0}], "success")
    assert steps.size == mean.size == std.size == 0


def _write_run(run_dir, with_eval: bool = True) -> None:
    run_dir.mkdir()
    metrics = []
    for step in (100, 200, 300):
        for seed in (0, 1):
            metrics.append(
                {
                    "step": step,
                    "seed": seed,
                    "train/actor/loss": 1.0 / step + seed,
                    "val/actor/loss": 2.0 / step + seed,
                    "train/critic/loss": 0.5 * seed,
                    "train/critic/q_mean": 10.0,  # not a loss: no panel
                }
            )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
    if with_eval:
        evals = [
            {"step": step, "seed": seed, "success": 0.25 * seed + step / 1000} for step in (150, 300) for seed in (0, 1)
        ]
        (run_dir / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in evals))


def test_plot_run_writes_curves_png_into_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    _write_run(run_dir)
    path = plots.plot_run(str(run_dir))
    assert path == str(run_dir / "curves.png")
    assert (run_dir / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
    other = plots.plot_run(str(run_dir), str(tmp_path / "elsewhere.png"))
    assert other == str(tmp_path / "elsewhere.png")
    assert (tmp_path / "elsewhere.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture
def drawn_figures(monkeypatch):
    """Capture the figures ``plot_run`` saves instead of writing them."""
    figures = []

    def save(figure, path, dpi=None):
        figures.append(figure)
        return path

    monkeypatch.setattr(plots, "save_figure", save)
    yield figures
    for figure in figures:
        plots.plt.close(figure)


def test_plot_run_draws_one_panel_per_loss_with_train_and_val_curves_and_one_for_success(tmp_path, drawn_figures):
    run_dir = tmp_path / "run"
    _write_run(run_dir)
    plots.plot_run(str(run_dir))
    (figure,) = drawn_figures
    visible = [ax for ax in figure.axes if ax.axison]
    assert [ax.get_title() for ax in visible] == ["train/actor/loss", "train/critic/loss", "success"]
    actor, critic, success = visible
    assert [line.get_label() for line in actor.get_lines()] == ["train", "val"]
    np.testing.assert_allclose(actor.get_lines()[0].get_ydata(), [1 / 100 + 0.5, 1 / 200 + 0.5, 1 / 300 + 0.5])
    np.testing.assert_allclose(actor.get_lines()[1].get_ydata(), [2 / 100 + 0.5, 2 / 200 + 0.5, 2 / 300 + 0.5])
    assert [line.get_label() for line in critic.get_lines()] == ["train"]  # no val/critic/loss logged
    np.testing.assert_allclose(critic.get_lines()[0].get_ydata(), [0.25, 0.25, 0.25])
    # Success: mean over seeds per evaluation step, on a [0, 1] axis.
    np.testing.assert_allclose(success.get_lines()[0].get_xdata(), [150, 300])
    np.testing.assert_allclose(success.get_lines()[0].get_ydata(), [0.125 + 0.15, 0.125 + 0.3])
    assert success.get_ylim() == pytest.approx((-0.02, 1.02))


def test_plot_run_without_evaluations_has_no_success_panel(tmp_path, drawn_figures):
    run_dir = tmp_path / "run"
    _write_run(run_dir, with_eval=False)
    plots.plot_run(str(run_dir))
    (figure,) = drawn_figures
    assert [ax.get_title() for ax in figure.axes if ax.axison] == ["train/actor/loss", "train/critic/loss"]
