"""The markdown report: fitted laws with confidence intervals, proposed hyper-parameters and the plots.

:func:`write_report` reads the fit dict of :func:`scalerl.scaling.analysis.fit_all` (and, for learning curves, the
per-configuration curves) and writes ``report.md`` plus PNGs into a directory. It fits nothing itself.
"""

from __future__ import annotations

import os

from scalerl.atomic import atomic_write_text
from scalerl.scaling.results import Curves, format_value


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _estimate(entry, digits: int = 4) -> str:
    """``value [low, high]`` of an ``{"value", "ci"}`` entry."""
    if not isinstance(entry, dict):
        return _number(entry, digits)
    low, high = entry.get("ci", [None, None])
    return f"{_number(entry.get('value'), digits)} [{_number(low, 3)}, {_number(high, 3)}]"


def unreached_text(unreached: dict, threshold: float | None) -> str:
    """How many bootstrap draws and groups had no configuration reaching the selection threshold, and the rule."""
    action = "left out" if unreached["rule"] == "skip" else "counted as the smallest value"
    at = "J" if threshold is None else f"J={threshold:g}"
    return (
        f"no configuration reached {at} in {unreached['draws']} of {unreached['draws_total']} draws, in "
        f"{unreached['groups']} of {unreached['groups_total']} groups ({unreached['groups_never']} in every draw); "
        f"--unreached {unreached['rule']}: {action}"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def write_report(
    fits: dict,
    out_dir: str,
    curves: Curves | None = None,
    curve_panels: list[str] | None = None,
    curve_lines: list[str] | None = None,
) -> str:
    """Write ``report.md`` and its PNGs into ``out_dir``; returns the report's path.

    Args:
        fits: the dict of :func:`~scalerl.scaling.analysis.fit_all` (or the JSON ``scalerl fit --json`` wrote).
        out_dir: output directory (created).
        curves: per-configuration learning curves for the learning-curve plot (None: no such plot).
        curve_panels: configuration columns that choose a learning-curve panel (default: the first two).
        curve_lines: configuration columns that label the lines in a panel (default: all the others).
    """
    from scalerl.scaling import plots  # matplotlib only when a report is drawn (``fit`` imports this module too)

    os.makedirs(out_dir, exist_ok=True)
    metric = fits.get("metric", "return")
    options = fits.get("options", {})
    lines = ["# Scaling-law report", ""]
    if fits.get("sources"):
        shown = [os.path.relpath(s, os.path.abspath(out_dir)) for s in fits["sources"]]  # relative: the report moves
        lines += [f"Sources (relative to this report): {', '.join(f'`{s}`' for s in shown)}.", ""]
    lines += [
        (
            f"Metric: `{metric}`. Every number is `point [low, high]`: the fit and the "
            f"{100 * options.get('confidence', 0.95):.0f}% percentile interval of the same fit redone on "
            f"{options.get('num_bootstrap', '?')} bootstrap resamples of the seeds (seed {options.get('seed', 0)})."
        ),
        "",
    ]
    if fits.get("loading"):
        lines += ["How the sources were read:", ""] + [f"- {line}" for line in fits["loading"]] + [""]
    figures = []
    if curves is not None and curves.values:
        panels = curve_panels if curve_panels is not None else list(curves.configs.columns[:2])
        lines_keys = curve_lines if curve_lines is not None else [c for c in curves.configs.columns if c not in panels]
        path = plots.plot_learning_curves(
            curves, metric, os.path.join(out_dir, "learning_curves.png"), panels, lines_keys
        )
        if path:
            figures.append(("Learning curves (seed mean +- standard error)", path))
    online = fits.get("online")
    if online:
        lines += _online_section(online, options)
        for title, function, name in (
            ("B* and eta* versus sigma", plots.plot_hyperparams, "hyperparams.png"),
            ("D_J versus sigma", plots.plot_data_efficiency, "data_efficiency.png"),
            ("Data-compute Pareto frontier", plots.plot_pareto, "pareto.png"),
            ("Budget-optimal sigma* versus budget", plots.plot_budget, "budget.png"),
            ("D_J(sigma, N)", plots.plot_model_size, "model_size.png"),
        ):
            path = function(online, os.path.join(out_dir, name))
            if path:
                figures.append((title, path))
    offline = fits.get("offline")
    if offline:
        lines += _offline_section(offline, metric)
        path = plots.plot_offline(offline, metric, os.path.join(out_dir, "offline.png"))
        if path:
            figures.append((f"Final {metric} versus resources", path))
    if figures:
        lines += ["## Figures", ""]
        for title, path in figures:
            lines += [f"### {title}", "", f"![{title}]({os.path.basename(path)})", ""]
    report_path = os.path.join(out_dir, "report.md")
    atomic_write_text(report_path, "\n".join(lines) + "\n")
    return report_path


def _online_section(online: dict, options: dict) -> list[str]:
    lines = ["## Online sweep: UTD scaling", ""]
    thresholds = ", ".join(format_value(t) for t in online["thresholds"])
    lines += [
        (
            f"Environments: {', '.join(online['envs'])}. Thresholds J: {thresholds}; B* and eta* selected at "
            f"J = {format_value(online['selection_threshold'])}. Configurations: {len(online['configs'])}."
        ),
        "",
    ]
    hyper = online.get("hyperparams", {})
    for name, symbol in (("lr", "eta*"), ("batch_size", "B*")):
        if name not in hyper:
            continue
        fit = hyper[name]
        lines += [f"### {symbol}(sigma)", "", f"`log10 {symbol}(sigma) = s * log10 sigma + a_env`", ""]
        lines += [f"Shared slope s = {_estimate(fit['shared']['slope'])}.", ""]
        if fit.get("unreached"):
            lines += [f"Selection: {unreached_text(fit['unreached'], online.get('selection_threshold'))}.", ""]
        if options.get("per_env_drop_highest_utd"):
            lines += ["Per-env fits leave out each environment's highest sigma (the reference's rule).", ""]
        rows = [
            [
                env,
                _estimate(fit["shared"]["intercepts"].get(env)),
                _estimate(fit["per_env"].get(env, {}).get("slope")),
                _estimate(fit["per_env"].get(env, {}).get("intercept")),
            ]
            for env in online["envs"]
        ]
        lines += _table(["environment", "a_env (shared slope)", "per-env slope", "per-env intercept"], rows)
    if hyper.get("proposals"):
        lines += ["### Proposed hyper-parameters for new sigma (shared-slope fits)", ""]
        has_lr = any("lr" in p for p in hyper["proposals"])
        has_batch = any("batch_size" in p for p in hyper["proposals"])
        header = ["environment", "sigma"] + (["eta*"] if has_lr else []) + (["B* (rounded to 16)"] if has_batch else [])
        rows = []
        for p in hyper["proposals"]:
            row = [p["env"], format_value(p["utd"])]
            if has_lr:
                row.append(_estimate(p.get("lr"), 3))
            if has_batch:
                row.append(f"{p.get('batch_size_rounded')} ({_estimate(p.get('batch_size'), 3)})")
            rows.append(row)
        lines += _table(header, rows)
    if hyper.get("baseline"):
        lines += [
            (
                "Baseline for comparison: the best (B, eta) at "
                f"sigma = {format_value(options.get('baseline_utd', 2.0))}, reused at every sigma:"
            ),
            "",
        ]
        lines += _table(
            ["environment", "B", "eta"],
            [[env, format_value(b["batch_size"]), _number(b["lr"], 3)] for env, b in hyper["baseline"].items()],
        )
    efficiency = online.get("data_efficiency")
    if efficiency and efficiency.get("fits"):
        lines += [
            "### Data efficiency D_J(sigma)",
            "",
            f"`{efficiency['form']}`, fitted per threshold on median-normalised data averaged over environments.",
            "",
        ]
        rows = [
            [
                format_value(f["threshold"]),
                _estimate(f.get("d_min")),
                _estimate(f.get("beta")),
                _estimate(f.get("alpha")),
            ]
            for f in efficiency["fits"]
        ]
        lines += _table(["J", "D_min", "beta", "alpha"], rows)
    compute = online.get("compute", {})
    if compute.get("note"):
        lines += [f"Compute: {compute['note']}.", ""]
    elif compute.get("optima"):
        lines += [
            "### Compute and budget-optimal sigma*",
            "",
            (
                f"`{compute['form']}` with N = {_number(compute['n_params'])}, k = {format_value(compute['k'])}, "
                f"delta = {_number(compute['delta'])}."
            ),
            "",
        ]
        rows = [
            [
                format_value(o["threshold"]),
                _estimate(o["utd"], 3),
                _estimate(o["budget"], 3),
                _estimate(o["compute"], 3),
                _estimate(o["data"], 3),
            ]
            for o in compute["optima"]
        ]
        lines += _table(["J", "sigma*", "F*", "C_J(sigma*)", "D_J(sigma*)"], rows)
        law = compute.get("budget_law")
        if law:
            lines += [
                (
                    f"`{law['form']}`: slope = {_estimate(law['slope'])}, intercept = {_estimate(law['intercept'])} "
                    f"(fitted on all but the {len(law['heldout'])} highest threshold(s))."
                ),
                "",
            ]
            rows = [
                [
                    format_value(h["threshold"]),
                    _number(h["observed_utd"], 3),
                    _number(h["predicted_utd"], 3),
                    _estimate(h["log10_error"], 3),
                ]
                for h in law["heldout"]
            ]
            lines += ["Held-out prediction error:", ""]
            lines += _table(["J", "observed sigma*", "predicted sigma*", "log10 error"], rows)
        if compute.get("budget_proposals"):
            lines += ["Proposed sigma* for new budgets:", ""]
            rows = []
            for p in compute["budget_proposals"]:
                lr = "; ".join(f"{env}: {_estimate(v, 3)}" for env, v in p.get("lr", {}).items())
                rows.append(
                    [_number(p["budget"], 3), _estimate(p["utd"], 3), _estimate(p["batch_size"], 3), lr or "n/a"]
                )
            lines += _table(["budget F", "sigma*", "B*(sigma*)", "eta*(sigma*) per environment"], rows)
    for name, model in (online.get("model_size") or {}).items():
        lines += [f"### Model size: {name}", ""]
        if "batch_size" in model:
            b = model["batch_size"]
            lines += [
                (
                    f"`{b['form']}`: a = {_estimate(b['a'])}, alpha = {_estimate(b['alpha'])}, "
                    f"b = {_estimate(b['b'])}, c = {_estimate(b['c'])}."
                ),
                "",
            ]
            if b.get("unreached"):
                lines += [f"Selection: {unreached_text(b['unreached'], online.get('selection_threshold'))}.", ""]
        if model.get("data"):
            lines += [f"`{model['data_form']}`:", ""]
            rows = [
                [format_value(f["threshold"])] + [_estimate(f[k], 3) for k in ("c0", "a", "alpha", "b", "beta")]
                for f in model["data"]
            ]
            lines += _table(["J", "c0", "a", "alpha", "b", "beta"], rows)
        if model.get("optima"):
            rows = [
                [
                    format_value(o["threshold"]),
                    _estimate(o["utd"], 3),
                    _estimate(o["n_params"], 3),
                    _estimate(o["budget"], 3),
                ]
                for o in model["optima"]
            ]
            lines += ["Compute-optimal (sigma*, N*) per threshold:", ""]
            lines += _table(["J", "sigma*", "N*", "F*"], rows)
        for law in (model.get("laws") or {}).values():
            errors = ", ".join(_estimate(e, 3) for e in law["heldout_log10_error"])
            lines += [
                (
                    f"`{law['form']}`: slope {_estimate(law['slope'])}, intercept {_estimate(law['intercept'])}; "
                    f"held-out log10 error {errors or 'n/a'}."
                ),
                "",
            ]
    return lines


def _offline_section(offline: list[dict], metric: str) -> list[str]:
    lines = [
        "## Offline sweep: final metric versus resources",
        "",
        (
            f"`{metric}(x) = y_inf - a * x ** (-b)` per agent (and other settings), on the seed mean of the final "
            "evaluation."
        ),
        "",
    ]
    rows = []
    for fit in offline:
        points = ", ".join(
            f"{format_value(x)}: {_number(m, 3)}" for x, m in zip(fit["points"]["x"], fit["points"]["mean"])
        )
        rows.append(
            [
                fit["axis"],
                fit["label"],
                _estimate(fit.get("y_inf"), 3),
                _estimate(fit.get("a"), 3),
                _estimate(fit.get("b"), 3),
                points,
            ]
        )
    lines += _table(["x", "group", "y_inf", "a", "b", "data (x: mean)"], rows)
    return lines
