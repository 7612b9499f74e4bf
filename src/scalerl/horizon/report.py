"""The report of a horizon study: success vs horizon, the horizon at 50% success, value error vs distance.

Three steps, kept apart: :func:`collect_trials` reads the trials' outputs (``eval.jsonl`` and ``diagnostics.json`` of
each ``scalerl train`` run directory); :func:`aggregate` turns them into the report's numbers (pure numpy, on the
records only); :func:`plot_success`, :func:`plot_value_error` and :func:`report_markdown` draw and write them.

Every seed of every trial is one *replicate*: a study with ``seeds = S`` sweep seeds and ``train_seeds = T`` seeds
vmapped per trial has ``S x T`` replicates per (method, task, size), and every error bar is the standard deviation
(``ddof = 0``) over them.

**Horizon at 50% success** (Park et al. 2025 ask at what horizon a method stops working). The horizon of a task is
its longest shortest path ``D``; success is the final evaluation's (OGBench's protocol: five tasks at 20-100% of
``D``). As in the data-to-threshold estimate of :mod:`scalerl.scaling.crossings` (Rybkin et al. 2025), the curve is
averaged over replicates and made monotone (an isotonic, here non-increasing, fit of success against the horizon);
the estimate is where the fit reaches 0.5, interpolated linearly in ``log D`` between the two horizons around it.
It is *not reached* when the fit stays above 0.5 at the largest horizon and *below* when it is under 0.5 already at
the smallest. The same is done for every replicate alone; their range is the error bar.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings

import numpy as np

from scalerl.horizon.study import TIMINGS_FILE, StudyConfig, build_spec, task_horizon

THRESHOLD = 0.5
"""Success rate whose crossing defines the horizon at which a method stops working."""
ERROR_KEYS = ("abs_error_steps", "bias_steps")


def collect_trials(config: StudyConfig, study_dir: str) -> list[dict]:
    """One record per trial of the study's grid: its parameters, status, and (when done) the final success of each of
    its seeds and its diagnostics' rows and rank correlations.

    Returns:
        ``[{"name", "task", "method", "size", "seed", "status", "error", "duration_s", "success": [T] | None,
        "levels": [level names] | None, "rows": [diagnostics rows] | None, "spearman": {level: [T]} | None}]``.
    """
    from scalerl.runs import read_jsonl
    from scalerl.scaling.sweep import read_trial

    spec = build_spec(config, study_dir)
    records = []
    for trial in spec.trials():
        trial_dir = os.path.join(spec.out, trial.name)
        state = read_trial(trial_dir) or {}
        record = {
            "name": trial.name,
            **{key: trial.params[key] for key in ("task", "method", "size", "seed")},
            "status": state.get("status", "pending"),
            "error": state.get("error"),
            "duration_s": state.get("duration_s"),
            "success": None,
            "levels": None,
            "rows": None,
            "spearman": None,
        }
        if record["status"] == "done":
            final = sorted(
                (
                    row
                    for row in read_jsonl(os.path.join(trial_dir, "eval.jsonl"), skip_corrupt=True)
                    if row.get("step") == config.steps
                ),
                key=lambda row: row["seed"],
            )
            record["success"] = [float(row["success"]) for row in final] or None
            try:
                with open(os.path.join(trial_dir, "diagnostics.json")) as f:
                    diagnostics = json.load(f)
            except (OSError, json.JSONDecodeError):
                diagnostics = None
            if diagnostics is not None:
                record["levels"] = [level["name"] for level in diagnostics["levels"]]
                record["rows"] = diagnostics["rows"]
                record["spearman"] = {
                    name: level["spearman"] for name, level in diagnostics["summary"].items() if "spearman" in level
                }
        records.append(record)
    return records


def _isotonic_decreasing(values: np.ndarray) -> np.ndarray:
    from scalerl.scaling.crossings import isotonic_increasing

    return -isotonic_increasing(-np.asarray(values, dtype=float))


def half_success_crossing(horizons, success, threshold: float = THRESHOLD) -> dict:
    """Where a success curve over the horizon falls to ``threshold``.

    Args:
        horizons: ``[H]`` increasing horizons.
        success: ``[H]`` success rates (NaN: no data at that horizon).
        threshold: the success rate.

    Returns:
        ``{"status", "horizon", "fit"}``: ``status`` is ``reached`` (``horizon`` interpolated in log horizon on the
        non-increasing isotonic fit ``fit``), ``below`` (the fit is under the threshold at the smallest horizon),
        ``not reached`` (above it at the largest) or ``no data``; ``horizon`` is None unless reached.
    """
    from scalerl.scaling.crossings import first_crossings

    horizons = np.asarray(horizons, dtype=float)
    success = np.asarray(success, dtype=float)
    if not np.isfinite(success).any():
        return {"status": "no data", "horizon": None, "fit": [None] * len(horizons)}
    fit = _isotonic_decreasing(success)
    fit_list = [float(value) for value in fit]
    if fit[np.isfinite(fit)][0] < threshold:
        return {"status": "below", "horizon": None, "fit": fit_list}
    # A non-increasing success is a non-decreasing failure: the first crossing of -fit over -threshold.
    log_crossing = first_crossings(np.log(horizons), -fit, np.array([-threshold]), interpolate=True)[0]
    if not math.isfinite(log_crossing):
        return {"status": "not reached", "horizon": None, "fit": fit_list}
    return {"status": "reached", "horizon": float(np.exp(log_crossing)), "fit": fit_list}


def crossing_summary(horizons, values: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """The horizon at ``threshold`` success of the replicate-mean curve and of every replicate.

    Args:
        horizons: ``[H]`` increasing horizons.
        values: ``[H, R]`` success of each replicate (NaN where missing).

    Returns:
        :func:`half_success_crossing` of the mean curve, plus ``per_replicate`` (each replicate's result) and
        ``low`` / ``high``: the range of the replicates' crossings, ``low = 0`` when one is ``below`` and ``high =
        inf`` when one is ``not reached`` (None when no replicate has data).
    """
    values = np.asarray(values, dtype=float)
    mean = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in values])
    result = half_success_crossing(horizons, mean, threshold)
    per_replicate = [half_success_crossing(horizons, values[:, r], threshold) for r in range(values.shape[1])]
    points = []
    for item in per_replicate:
        if item["status"] == "reached":
            points.append(item["horizon"])
        elif item["status"] == "below":
            points.append(0.0)
        elif item["status"] == "not reached":
            points.append(math.inf)
    result["per_replicate"] = [{"status": item["status"], "horizon": item["horizon"]} for item in per_replicate]
    result["low"] = min(points) if points else None
    result["high"] = max(points) if points else None
    return result


def _replicates(records: list[dict]) -> set:
    """The replicates of ``records``: ``(sweep seed, index of the seed within its trial)`` for every trained seed."""
    return {(record["seed"], index) for record in records for index in range(len(record["success"] or []))}


def bias_slopes(distances: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The least-squares slope of the bias against the distance, per replicate: the steps of bias each further step
    adds (0: a constant offset; 1: the value ignores the distance entirely).

    Args:
        distances: ``[B]`` bin mean distances.
        bias: ``[R, B]`` bias in steps (NaN bins are left out).

    Returns:
        ``[R]`` slopes (NaN with fewer than two finite bins).
    """
    slopes = []
    for row in np.atleast_2d(bias):
        keep = np.isfinite(row) & np.isfinite(distances)
        slopes.append(np.polyfit(distances[keep], row[keep], 1)[0] if keep.sum() >= 2 else np.nan)
    return np.asarray(slopes, dtype=float)


def _mean_std(values: np.ndarray, axis: int = 0) -> tuple[list, list]:
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are None in the report
        mean, std = np.nanmean(values, axis=axis), np.nanstd(values, axis=axis)
    return _floats(mean), _floats(std)


def _floats(values) -> list:
    return [None if not math.isfinite(float(v)) else float(v) for v in np.atleast_1d(values)]


def level_curves(records: list[dict], level: str) -> dict | None:
    """A level's value error by distance over the replicates of ``records`` (the trials of one method, task and
    size): per bin the mean distance, the mean and std of ``abs_error_steps``, ``bias_steps`` (and ``success`` for
    the level ``policy``), the bias slope of each replicate, and the Spearman correlation of the level with ``-d``.
    None when no trial has the level."""
    rows = [(record["seed"], row) for record in records for row in record["rows"] or [] if row["level"] == level]
    if not rows:
        return None
    replicates = sorted({(seed, row["seed"]) for seed, row in rows})
    bins = sorted({row["bin"] for _, row in rows})
    keys = ("success",) if level == "policy" else ERROR_KEYS
    tables = {key: np.full((len(replicates), len(bins)), np.nan) for key in (*keys, "distance_mean")}
    for seed, row in rows:
        r, b = replicates.index((seed, row["seed"])), bins.index(row["bin"])
        for key in tables:
            value = row.get(key)
            tables[key][r, b] = np.nan if value is None or value == "" else float(value)
    distance = np.nanmean(tables["distance_mean"], axis=0)
    out = {"replicates": len(replicates), "bins": bins, "distance": _floats(distance)}
    for key in keys:
        out[key], out[f"{key}_std"] = _mean_std(tables[key])
    if level != "policy" and np.isfinite(tables["bias_steps"]).any():
        out["bias_slope"] = _floats(bias_slopes(distance, tables["bias_steps"]))
        out["bias_slope_mean"], out["bias_slope_std"] = (v[0] for v in _mean_std(out["bias_slope"]))
    spearman = [v for record in records for v in (record["spearman"] or {}).get(level, []) if v is not None]
    if spearman:
        out["spearman_mean"], out["spearman_std"] = (v[0] for v in _mean_std(spearman))
    return out


def aggregate(config: StudyConfig, records: list[dict], horizons: dict[str, int]) -> dict:
    """The report's numbers from the trial records (pure).

    Args:
        config: the study.
        records: :func:`collect_trials`'s records.
        horizons: ``{task: D}`` for the study's tasks.

    Returns:
        ``{"horizons", "success", "half_success_horizon", "value_error", "trials"}``: ``success[size][method]``
        ``{"horizon", "task", "mean", "std", "n", "values"}`` over the tasks by horizon; ``half_success_horizon[size]
        [method]`` from :func:`crossing_summary`; ``value_error[size][method][task]``: ``{"primary": the level the
        plots show, "levels": {level: level_curves(...)}}``; ``trials``: counts and the failures.
    """
    tasks = sorted(config.task_list, key=horizons.get)
    success, crossings, value_error = {}, {}, {}
    for size in config.size_list:
        success[size], crossings[size], value_error[size] = {}, {}, {}
        for method in config.method_list:
            group = [r for r in records if r["method"] == method and r["size"] == size and r["status"] == "done"]
            replicates = sorted(_replicates(group))
            values = np.full((len(tasks), len(replicates)), np.nan)
            for record in group:
                for index, value in enumerate(record["success"] or []):
                    values[tasks.index(record["task"]), replicates.index((record["seed"], index))] = value
            mean, std = _mean_std(values, axis=1) if replicates else ([None] * len(tasks), [None] * len(tasks))
            success[size][method] = {
                "task": tasks,
                "horizon": [horizons[task] for task in tasks],
                "mean": mean,
                "std": std,
                "n": [int(np.isfinite(row).sum()) for row in values],
                "values": [_floats(row) for row in values],
            }
            crossings[size][method] = crossing_summary([horizons[t] for t in tasks], values.reshape(len(tasks), -1))
            value_error[size][method] = {}
            for task in tasks:
                trials = [r for r in group if r["task"] == task and r["rows"]]
                names = next((r["levels"] for r in trials), [])
                levels = {name: level_curves(trials, name) for name in [*names, "policy"]}
                value_error[size][method][task] = {
                    "primary": names[0] if names else None,
                    "levels": {name: curve for name, curve in levels.items() if curve is not None},
                }
    by_status: dict[str, int] = {}
    for record in records:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    return {
        "horizons": {task: horizons[task] for task in tasks},
        "success": success,
        "half_success_horizon": crossings,
        "value_error": value_error,
        "trials": {
            "total": len(records),
            "by_status": by_status,
            "failed": [{"name": r["name"], "error": r["error"]} for r in records if r["status"] == "failed"],
            "trial_time_s": float(sum(r["duration_s"] or 0.0 for r in records)),
        },
    }


def _colours(methods) -> dict:
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {method: palette(index % 10) for index, method in enumerate(methods)}


def plot_success(summary: dict, methods, path: str) -> str:
    """Success vs horizon (log scale), mean +- std over replicates per method, one panel per dataset size, with the
    50% line and each method's crossing (range over replicates as a horizontal bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalerl.atomic import save_figure

    sizes = list(summary["success"])
    colours = _colours(methods)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for offset, method in enumerate(methods):
            curve = summary["success"][size][method]
            x = np.asarray(curve["horizon"], float) * (1 + 0.015 * (offset - len(methods) / 2))  # dodge the bars
            mean = np.array([np.nan if v is None else v for v in curve["mean"]])
            std = np.array([0.0 if v is None else v for v in curve["std"]])
            ax.errorbar(x, mean, yerr=std, marker="o", ms=4, capsize=3, color=colours[method], label=method)
            cross = summary["half_success_horizon"][size][method]
            if cross["status"] == "reached":
                low = max(cross["low"], min(curve["horizon"]) / 2)
                high = min(cross["high"], max(curve["horizon"]) * 2)
                ax.plot([low, high], [THRESHOLD, THRESHOLD], color=colours[method], lw=3, alpha=0.35)
                ax.plot([cross["horizon"]], [THRESHOLD], marker="|", ms=14, mew=2, color=colours[method])
        ax.axhline(THRESHOLD, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        horizons = summary["success"][size][methods[0]]["horizon"]
        ax.set_xticks(horizons, [f"{h}" for h in horizons])
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("horizon: longest shortest path D (steps)")
        ax.set_ylabel("success (final evaluation)")
        ax.set_title(f"success vs horizon, {size} transitions", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_value_error(summary: dict, methods, size: str, path: str) -> str:
    """Rows: |value error| and bias in steps, and the policy's success, against the true distance; one column per
    task; one line per method (its primary level), bands one std over replicates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalerl.atomic import save_figure

    tasks = list(summary["horizons"])
    colours = _colours(methods)
    panels = (
        ("abs_error_steps", "|error| (steps)"),
        ("bias_steps", "bias (steps): + too low"),
        ("success", "success by distance"),
    )
    fig, axes = plt.subplots(len(panels), len(tasks), figsize=(4.2 * len(tasks), 8.4), squeeze=False)
    for column, task in enumerate(tasks):
        for row, (key, title) in enumerate(panels):
            ax = axes[row, column]
            for method in methods:
                entry = summary["value_error"][size][method][task]
                name = "policy" if key == "success" else entry["primary"]
                curve = entry["levels"].get(name) if name else None
                if curve is None or key not in curve:
                    continue
                x = np.asarray(curve["distance"], float)
                mean = np.array([np.nan if v is None else v for v in curve[key]])
                std = np.array([0.0 if v is None else v for v in curve[f"{key}_std"]])
                if np.all(np.isnan(mean)):
                    continue
                ax.plot(x, mean, marker="o", ms=3, color=colours[method], label=method)
                ax.fill_between(x, mean - std, mean + std, color=colours[method], alpha=0.15)
            if key == "bias_steps":
                ax.axhline(0.0, color="grey", lw=0.8)
            if key == "success":
                ax.set_ylim(-0.03, 1.03)
                ax.set_xlabel("true distance (steps)")
            if row == 0:
                ax.set_title(f"{task} (D = {summary['horizons'][task]})", fontsize=10)
            if column == 0:
                ax.set_ylabel(title)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.suptitle(f"value error vs distance, {size} transitions", fontsize=10, y=0.995)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.97), ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save_figure(fig, path, dpi=90)


def _pm(mean, std, digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _crossing_text(cross: dict, horizons: list[int]) -> str:
    """``"215 [178, 237]"``: the estimate and the range over replicates (``< D_min``: below at the smallest horizon;
    ``> D_max``: not reached)."""

    def point(value: float) -> str:
        if value == 0:
            return f"< {horizons[0]}"
        return f"> {horizons[-1]}" if math.isinf(value) else f"{value:.0f}"

    status = cross["status"]
    if status == "no data":
        return "no data"
    text = {"below": f"< {horizons[0]}", "not reached": f"not reached (> {horizons[-1]})"}.get(status)
    text = text or f"{cross['horizon']:.0f}"
    low, high = cross["low"], cross["high"]
    if low is not None and len(cross["per_replicate"]) > 1 and not (point(low) == point(high) and point(low) in text):
        text += f" [{point(low)}, {point(high)}]"
    return text


def report_markdown(config: StudyConfig, summary: dict, figures: dict[str, str], timings: list[dict]) -> str:
    """The report's text: settings, success vs horizon with the 50% horizons, value error tables, how to read it,
    the trials' status and time."""
    methods, tasks = list(config.method_list), list(summary["horizons"])
    horizons = [summary["horizons"][t] for t in tasks]
    seeds = config.seeds * config.train_seeds
    lines = [
        "# Horizon study",
        "",
        "Tasks (horizon D = longest shortest path, in steps): "
        + ", ".join(f"`{t}` (D = {summary['horizons'][t]})" for t in tasks)
        + f"; `{config.dataset_type}` data of {', '.join(config.size_list)} transitions. Methods: "
        + ", ".join(f"`{m}`" for m in methods)
        + f". Each trial: `scalerl train` for {config.steps:,} updates (batch {config.batch_size}, "
        f"{config.layers}x{config.hidden} MLPs, discount {config.discount}, subgoal steps {config.subgoal_steps}), "
        f"evaluated with OGBench's protocol ({config.eval_episodes} episodes x 5 tasks per seed), then `scalerl "
        f"diagnose` ({config.bins} distance bins x {config.pairs_per_bin} pairs, {config.rollouts_per_bin} rollouts "
        f"per bin). Error bars: one standard deviation over {seeds} seed(s) ({config.seeds} sweep seed(s) x "
        f"{config.train_seeds} trained per trial).",
        "",
    ]
    for size in config.size_list:
        lines += [
            f"## Success vs horizon ({size} transitions)",
            "",
            "| method | " + " | ".join(f"D = {h}" for h in horizons) + " | horizon at 50% success [range over seeds] |",
            "|---|" + "---:|" * len(horizons) + "---|",
        ]
        for method in methods:
            curve = summary["success"][size][method]
            cells = " | ".join(_pm(m, s) for m, s in zip(curve["mean"], curve["std"]))
            cross = _crossing_text(summary["half_success_horizon"][size][method], horizons)
            lines.append(f"| {method} | {cells} | {cross} |")
        lines += ["", f"![success vs horizon]({figures['success']})", ""]
    for size in config.size_list:
        lines += [
            f"## Value error vs distance ({size} transitions)",
            "",
            "Per method and task, for each level the diagnostics read: the mean |error| and bias (steps) in the "
            "nearest and farthest distance bins, the bias slope (steps of bias per step of distance, a least-squares "
            "line over the bins, per seed) and the Spearman correlation of the level with -d.",
            "",
            "| method | level | task | \\|error\\| near | \\|error\\| far | bias near | bias far | bias slope | "
            "Spearman |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for method in methods:
            for task in tasks:
                for level, curve in summary["value_error"][size][method][task]["levels"].items():
                    if level == "policy":
                        continue
                    error, bias = curve.get("abs_error_steps", []), curve.get("bias_steps", [])
                    error_std, bias_std = curve.get("abs_error_steps_std", []), curve.get("bias_steps_std", [])
                    near_far = [
                        _pm(values[i], stds[i], 1) if values else "-"
                        for values, stds in ((error, error_std), (bias, bias_std))
                        for i in (0, -1)
                    ]
                    slope = _pm(curve.get("bias_slope_mean"), curve.get("bias_slope_std"), 3)
                    spearman = _pm(curve.get("spearman_mean"), curve.get("spearman_std"), 2)
                    near, far = curve["distance"][0], curve["distance"][-1]
                    lines.append(
                        f"| {method} | {level} | {task} (d {near:.0f} / {far:.0f}) | "
                        + " | ".join(near_far)
                        + f" | {slope} | {spearman} |"
                    )
        lines += ["", f"![value error vs distance]({figures[size]})", ""]
    trials = summary["trials"]
    status = ", ".join(f"{count} {name}" for name, count in sorted(trials["by_status"].items()))
    wall = sum(entry.get("total_s", 0.0) for entry in timings)
    lines += [
        "## How to read it",
        "",
        "* **|error| and bias** are in steps: `d_hat - d` with `d_hat = log V / log gamma` (QRL: its distance). A "
        "flat bias is a constant factor on the values; a bias that grows with `d` (a positive slope) is error that "
        "accumulates with the horizon, the claim of Park et al. 2025 for one-step TD. CRL's critic is a contrastive "
        "score known up to a per-goal constant: only its ranking (Spearman with -d) is read.",
        "* On the discrete tasks the sampler rewards a goal only on its own dataset row (as OGBench's does), so a "
        "revisit of the goal state is not rewarded: learned values read a few tenths of a step pessimistic at every "
        "distance on random-walk data, a constant offset, not one that grows (docs/horizon.md).",
        "* The horizon at 50% success interpolates, in log horizon, the isotonic (non-increasing) fit of the mean "
        "success over seeds; the bracket is the range of the same estimate made from each seed alone.",
        "",
        "## Trials",
        "",
        f"{trials['total']} trials: {status}. Trial time (sum over trials): {trials['trial_time_s'] / 60:.1f} min; "
        f"wall time of the study's invocations: {wall / 60:.1f} min ({len(timings)} invocation(s)).",
    ]
    for failure in trials["failed"]:
        lines.append(f"* failed: `{failure['name']}`: {failure['error']}")
    return "\n".join(lines) + "\n"


def write_study_report(config: StudyConfig, study_dir: str) -> str:
    """Collect, aggregate, plot and write ``report.md``, ``report.json``, ``success.png`` and one
    ``value_error_<size>.png`` per size into ``study_dir``; returns the path of ``report.md``."""
    from scalerl.atomic import atomic_write_json, atomic_write_text

    records = collect_trials(config, study_dir)
    summary = aggregate(config, records, {task: task_horizon(task) for task in config.task_list})
    methods = list(config.method_list)
    figures = {"success": "success.png"}
    plot_success(summary, methods, os.path.join(study_dir, figures["success"]))
    for size in config.size_list:
        figures[size] = f"value_error_{size}.png"
        plot_value_error(summary, methods, size, os.path.join(study_dir, figures[size]))
    try:
        with open(os.path.join(study_dir, TIMINGS_FILE)) as f:
            timings = json.load(f)
    except (OSError, json.JSONDecodeError):
        timings = []
    atomic_write_json(
        os.path.join(study_dir, "report.json"),
        {"config": dataclasses.asdict(config), **summary, "figures": figures},
    )
    path = os.path.join(study_dir, "report.md")
    atomic_write_text(path, report_markdown(config, summary, figures, timings))
    return path
