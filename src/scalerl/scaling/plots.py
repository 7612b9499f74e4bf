"""PNG plots of scaling fits, drawn from the fit dict (``scalerl fit --json``); nothing is fitted here.

Each function draws one figure, saves it to ``path`` and returns the path (None when the fits hold nothing to draw).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from scalerl.atomic import save_figure
from scalerl.scaling.results import Curves, format_value


def _grid(count: int, columns: int = 4, size: float = 3.2):
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * 0.85 * rows), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat[:count])


def _save(figure, path: str) -> str:
    figure.tight_layout()
    return save_figure(figure, path, dpi=110)


def _order(value) -> tuple:
    """Sort numbers numerically and before strings."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _value(entry, key="value"):
    """The point value of an ``{"value", "ci"}`` entry (NaN for None)."""
    if entry is None:
        return float("nan")
    value = entry.get(key) if isinstance(entry, dict) else entry
    return float("nan") if value is None else float(value)


def _ci(entry) -> tuple[float, float]:
    low, high = (entry or {}).get("ci", [None, None])
    return (float("nan") if low is None else low, float("nan") if high is None else high)


def plot_learning_curves(
    curves: Curves, metric: str, path: str, panel_keys: list[str], line_keys: list[str], max_panels: int = 48
) -> str | None:
    """Seed-mean learning curves (shaded: +- one standard error), one panel per ``panel_keys`` value.

    Args:
        curves: per-configuration curves.
        metric: the metric's name (y label).
        path: output PNG.
        panel_keys: configuration columns that pick the panel (e.g. env and utd).
        line_keys: configuration columns that label the lines inside a panel.
        max_panels: draw at most this many panels (the first ones in sorted order).
    """
    if not curves.values:
        return None
    panels: dict[tuple, list[int]] = {}
    for index, row in curves.configs.iterrows():
        panels.setdefault(tuple(row[k] for k in panel_keys), []).append(index)
    keys = sorted(panels, key=lambda k: tuple(str(v) for v in k))[:max_panels]
    figure, axes = _grid(len(keys))
    for axis, key in zip(axes, keys):
        members = sorted(panels[key], key=lambda i: tuple(_order(curves.configs.loc[i, k]) for k in line_keys))
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(members)))
        for colour, index in zip(colours, members):
            steps, values = curves.steps[index], curves.values[index]
            with np.errstate(invalid="ignore"):
                count = np.sum(np.isfinite(values), axis=1)
                mean = np.nanmean(values, axis=1)
                error = np.nanstd(values, axis=1) / np.sqrt(np.maximum(count, 1))
            row = curves.configs.loc[index]
            label = " ".join(f"{k}={format_value(row[k])}" for k in line_keys) or None
            axis.plot(steps, mean, color=colour, lw=1, label=label)
            axis.fill_between(steps, mean - error, mean + error, color=colour, alpha=0.15, lw=0)
        axis.set_title(" ".join(f"{k}={format_value(v)}" for k, v in zip(panel_keys, key)) or metric, fontsize=8)
        axis.set_xlabel("step", fontsize=8)
        axis.set_ylabel(metric, fontsize=8)
        axis.tick_params(labelsize=7)
        if len(members) <= 8 and line_keys:
            axis.legend(fontsize=6)
    return _save(figure, path)


def _yerr(values, lows, highs) -> list[np.ndarray]:
    """Error-bar lengths below and above ``values`` for the interval ``[lows, highs]``, clipped at 0: a bootstrap
    percentile interval need not contain the point estimate (e.g. a mean of grid choices), and matplotlib rejects
    negative lengths. The JSON of ``scalerl fit`` keeps the unclipped numbers."""
    values, lows, highs = (np.asarray(a, dtype=float) for a in (values, lows, highs))
    return [np.clip(values - lows, 0, None), np.clip(highs - values, 0, None)]


def _label_sigma_ticks(axis, utds) -> None:
    """Ticks at the sweep's sigma values, written plainly (log axes otherwise crowd 2x10^0, 3x10^0, ...)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = sorted({float(u) for u in utds if np.isfinite(u) and u > 0})
    if ticks:
        axis.set_xticks(ticks)
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())


def _tidy_log_ticks(axis) -> None:
    """Log-axis labels at 1 and 3 per decade only: matplotlib otherwise labels every minor tick of a short range
    and the labels collide."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    axis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    axis.set_minor_formatter(NullFormatter())


def _widen_flat_log_axis(axis) -> None:
    """A log y-axis whose data are (numerically) one value spans 1e-15 and plots rounding noise: show a factor 2."""
    low, high = axis.get_ylim()
    if low > 0 and high / low < 1.05:
        middle = np.sqrt(low * high)
        axis.set_ylim(middle / 2, middle * 2)


def plot_hyperparams(online: dict, path: str) -> str | None:
    """B* and eta* versus sigma per environment: bootstrap points with intervals, shared and per-env fits."""
    hyper = online.get("hyperparams", {})
    names = [name for name in ("batch_size", "lr") if name in hyper]
    if not names:
        return None
    envs = online["envs"]
    width = max(4.0, 2.8 * len(envs))
    figure, axes = plt.subplots(len(names), len(envs), figsize=(width, 2.6 * len(names)), squeeze=False)
    proposals = hyper.get("proposals", [])
    for row, name in enumerate(names):
        fit = hyper[name]
        for column, env in enumerate(envs):
            axis = axes[row][column]
            points = [p for p in fit["points"] if p["env"] == env]
            utds = np.array([p["utd"] for p in points], dtype=float)
            values = np.array([_value(p) for p in points])
            lows, highs = np.array([_ci(p) for p in points]).T if points else (np.array([]), np.array([]))
            axis.errorbar(
                utds,
                values,
                yerr=_yerr(values, lows, highs),
                fmt="o",
                color="k",
                ms=4,
                capsize=2,
                label="bootstrap best",
            )
            proposed = [p for p in proposals if p["env"] == env and name in p]
            grid = np.geomspace(
                min([*utds, *(p["utd"] for p in proposed)] or [1]),
                max([*utds, *(p["utd"] for p in proposed)] or [1]),
                50,
            )
            shared_slope, shared_intercept = (
                _value(fit["shared"]["slope"]),
                _value(fit["shared"]["intercepts"].get(env)),
            )
            axis.plot(
                grid,
                10 ** (shared_slope * np.log10(grid) + shared_intercept),
                "C0-",
                label=f"shared slope {shared_slope:.3f}",
            )
            per_env = fit["per_env"].get(env, {})
            slope, intercept = _value(per_env.get("slope")), _value(per_env.get("intercept"))
            if np.isfinite(slope):
                axis.plot(grid, 10 ** (slope * np.log10(grid) + intercept), "C1--", lw=1, label="per-env")
            if proposed:
                axis.plot(
                    [p["utd"] for p in proposed],
                    [_value(p[name]) for p in proposed],
                    "s",
                    color="C2",
                    ms=3,
                    mfc="none",
                    label="proposed",
                )
            axis.set_xscale("log")
            axis.set_yscale("log")
            _label_sigma_ticks(axis, [*utds, *(p["utd"] for p in proposed)])
            _widen_flat_log_axis(axis)
            axis.set_title(env, fontsize=8)
            axis.set_xlabel("UTD sigma", fontsize=8)
            axis.set_ylabel("B*" if name == "batch_size" else "eta*", fontsize=8)
            axis.tick_params(labelsize=7)
            if column == 0:
                axis.legend(fontsize=6)
    return _save(figure, path)


def plot_data_efficiency(online: dict, path: str) -> str | None:
    """D_J versus sigma: the environment-aggregated data per threshold and its fitted law."""
    efficiency = online.get("data_efficiency")
    if not efficiency or not efficiency.get("fits"):
        return None
    utds = np.array(efficiency["utds"], dtype=float)
    aggregate = np.array([[np.nan if v is None else v for v in row] for row in efficiency["aggregate"]], dtype=float)
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    colours = plt.cm.plasma(np.linspace(0, 0.85, len(efficiency["fits"])))
    grid = np.geomspace(utds.min() / 2, utds.max() * 4, 100)
    for colour, row, fit in zip(colours, aggregate, efficiency["fits"]):
        axis.plot(utds, row, "o", color=colour, ms=4)
        if "alpha" in fit:
            d_min, beta, alpha = _value(fit["d_min"]), _value(fit["beta"]), _value(fit["alpha"])
            axis.plot(
                grid,
                d_min + (beta / grid) ** alpha,
                "-",
                color=colour,
                lw=1,
                label=f"J={format_value(fit['threshold'])}: alpha={alpha:.2f}",
            )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("UTD sigma")
    axis.set_ylabel("D_J: data to threshold (env-normalised)")
    axis.set_title("D_J(sigma) = D_min + (beta / sigma)^alpha", fontsize=9)
    axis.legend(fontsize=6)
    return _save(figure, path)


def plot_pareto(online: dict, path: str) -> str | None:
    """The data-compute Pareto frontier per threshold, with each threshold's budget-optimal point."""
    compute = online.get("compute", {})
    if not compute.get("frontiers"):
        return None
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    colours = plt.cm.plasma(np.linspace(0, 0.85, len(compute["frontiers"])))
    optima = {o["threshold"]: o for o in compute.get("optima", [])}
    for colour, frontier in zip(colours, compute["frontiers"]):
        c, d = np.array(frontier["compute"], dtype=float), np.array(frontier["data"], dtype=float)
        mask = np.array(frontier["pareto"], dtype=bool)
        axis.plot(c, d, ":", color=colour, lw=0.8)
        axis.plot(c[mask], d[mask], "-", color=colour, lw=1.5, label=f"J={format_value(frontier['threshold'])}")
        optimum = optima.get(frontier["threshold"])
        if optimum:
            axis.plot(_value(optimum["compute"]), _value(optimum["data"]), "o", color=colour, mec="k", ms=6)
    axis.set_xscale("log")
    axis.set_yscale("log")
    _tidy_log_ticks(axis.xaxis)
    _tidy_log_ticks(axis.yaxis)
    axis.set_xlabel("C_J: compute to threshold")
    axis.set_ylabel("D_J: data to threshold")
    axis.set_title(f"Pareto frontier (dots: min C + {compute['delta']:.2g} D)", fontsize=9)
    axis.legend(fontsize=6)
    return _save(figure, path)


def plot_budget(online: dict, path: str) -> str | None:
    """Budget-optimal sigma* versus budget F*, the fitted law, and the held-out thresholds it predicts."""
    compute = online.get("compute", {})
    optima = compute.get("optima", [])
    if not optima:
        return None
    budgets = np.array([_value(o["budget"]) for o in optima])
    utds = np.array([_value(o["utd"]) for o in optima])
    intervals = np.array([_ci(o["utd"]) for o in optima])
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    heldout = {h["threshold"] for h in compute.get("budget_law", {}).get("heldout", [])}
    is_heldout = np.array([o["threshold"] in heldout for o in optima])
    for mask, marker, label in ((~is_heldout, "o", "fitted"), (is_heldout, "x", "held out")):
        if mask.any():
            axis.errorbar(
                budgets[mask],
                utds[mask],
                yerr=_yerr(utds[mask], intervals[mask, 0], intervals[mask, 1]),
                fmt=marker,
                color="k",
                capsize=2,
                label=label,
            )
    law = compute.get("budget_law")
    if law:
        grid = np.geomspace(budgets.min() / 2, budgets.max() * 100, 50)
        slope, intercept = _value(law["slope"]), _value(law["intercept"])
        axis.plot(grid, 10 ** (intercept + slope * np.log10(grid)), "C0-", label=f"sigma* ~ F^{slope:.2f}")
        for proposal in compute.get("budget_proposals", []):
            axis.plot(proposal["budget"], _value(proposal["utd"]), "s", color="C2", mfc="none")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("F*: budget C + delta * D at the optimum")
    axis.set_ylabel("sigma*: budget-optimal UTD")
    axis.legend(fontsize=7)
    return _save(figure, path)


def plot_offline(offline: list[dict], metric: str, path: str) -> str | None:
    """Final metric versus each resource axis (dataset size, network size, subgoal steps), one line per agent."""
    if not offline:
        return None
    axes_names = sorted({fit["axis"] for fit in offline})
    figure, axes = _grid(len(axes_names), columns=3, size=4.2)
    for axis, name in zip(axes, axes_names):
        fits = [fit for fit in offline if fit["axis"] == name]
        for colour, fit in zip(plt.cm.tab10(np.arange(len(fits)) % 10), fits):
            x = np.array(fit["points"]["x"], dtype=float)
            mean = np.array([np.nan if v is None else v for v in fit["points"]["mean"]], dtype=float)
            ci = np.array([[np.nan if v is None else v for v in c] for c in fit["points"]["ci"]], dtype=float)
            axis.errorbar(
                x, mean, yerr=_yerr(mean, ci[:, 0], ci[:, 1]), fmt="o", color=colour, capsize=2, label=fit["label"]
            )
            if "b" in fit:
                grid = np.geomspace(x.min(), x.max() * 4, 60)
                y_inf, a, b = _value(fit["y_inf"]), _value(fit["a"]), _value(fit["b"])
                axis.plot(grid, y_inf - a * grid ** (-b), "-", color=colour, lw=1)
                axis.axhline(y_inf, color=colour, ls=":", lw=0.7)
        axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.set_ylabel(f"final {metric}")
        axis.set_title(f"{metric} vs {name}: y_inf - a x^-b", fontsize=9)
        axis.legend(fontsize=6)
    return _save(figure, path)


def plot_model_size(online: dict, path: str) -> str | None:
    """D_J(sigma, N) at the selection threshold: data points per N and the fitted surface's slices."""
    models = online.get("model_size")
    if not models:
        return None
    figure, axes = _grid(len(models), columns=3, size=4.2)
    for axis, (name, model) in zip(axes, models.items()):
        if not model.get("data"):
            axis.set_visible(False)
            continue
        fit = model["data"][-1]
        points = fit["points"]
        sizes = sorted({p["n_params"] for p in points})
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
        utds = np.array([p["utd"] for p in points], dtype=float)
        grid = np.geomspace(utds.min() / 2, utds.max() * 4, 60)
        c0, a, alpha, b, beta = (_value(fit[k]) for k in ("c0", "a", "alpha", "b", "beta"))
        for colour, size in zip(colours, sizes):
            chosen = [p for p in points if p["n_params"] == size]
            axis.plot(
                [p["utd"] for p in chosen],
                [np.nan if p["data"] is None else p["data"] for p in chosen],
                "o",
                color=colour,
                label=f"N={size:.3g}",
            )
            axis.plot(grid, c0 * (1 + (a / grid) ** alpha + (b / size) ** beta), "-", color=colour, lw=1)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("UTD sigma")
        axis.set_ylabel(f"D_J, J={format_value(fit['threshold'])}")
        axis.set_title(name, fontsize=9)
        axis.legend(fontsize=6)
    return _save(figure, path)
