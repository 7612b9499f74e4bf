"""From a results table to every fitted number: the pipeline behind ``scalerl fit`` (no plotting, no file I/O).

Online sweeps (a ``utd`` column that varies) go through the method of ``docs/scaling.md``: bootstrap crossings, B*
and eta* fits with proposals, D_J(sigma), compute and the Pareto frontier, budget-optimal sigma*, and the model-size
forms when ``n_params`` varies. Offline sweeps (``dataset_size``, ``width``, ``n_params`` or ``subgoal_steps``
varying) get a saturating power law of the final metric per agent. Every fitted number is an
:class:`~scalerl.scaling.estimates.Estimate`-shaped ``{"value", "ci"}``: the point fit plus the percentile interval
of the same fit redone on each bootstrap replicate of the seeds.

The result is a JSON-ready dict (the file ``scalerl fit --json`` writes and ``scalerl report`` reads).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from scalerl.errors import ScalerlError
from scalerl.scaling import data_efficiency as de
from scalerl.scaling import hyperparams as hp
from scalerl.scaling import model_size as ms
from scalerl.scaling._threads import single_threaded_blas
from scalerl.scaling.crossings import bootstrap_crossings, seed_mean_crossings
from scalerl.scaling.estimates import estimate
from scalerl.scaling.offline import final_values, fit_saturating_power_law
from scalerl.scaling.results import Curves, Results, extract_curves, format_value

ONLINE_KEYS = ("utd", "batch_size", "lr", "n_params")
OFFLINE_AXES = ("dataset_size", "width", "n_params", "subgoal_steps")


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """Settings of the fitting pipeline (each is a ``scalerl fit`` flag)."""

    metric: str | None = None
    """Metric to fit (default: ``return`` if logged, else ``success``)."""
    thresholds: tuple[float, ...] | None = None
    """Thresholds J (default: 10%..80% of 1000 for DMC-style returns, of 1 for success, else of the best mean)."""
    selection_threshold: float | None = None
    """Threshold at which B* and eta* are selected (default: the highest threshold)."""
    num_bootstrap: int = 100
    """Bootstrap replicates (seed resamples)."""
    seed: int = 0
    """Seed of the bootstrap."""
    interpolate: bool = False
    """Interpolate crossings between log points instead of taking the logged step."""
    confidence: float = 0.95
    """Level of the percentile confidence intervals."""
    unreached: str = "skip"
    """When no configuration of an (env, B, sigma) group (or (env, eta, sigma) group) reaches J in a bootstrap draw:
    ``skip`` leaves the draw out of that group's average; ``first`` counts the group's smallest eta (B), the
    reference's rule (qscaled's argmin over all-infinite times picks index 0 of the ascending grid)."""
    per_env_drop_highest_utd: bool = False
    """Leave each environment's highest sigma out of the per-environment B*, eta* fits, as the reference does (its
    shared-slope fit, like scalerl's, keeps every sigma)."""
    n_params: float | None = None
    """Critic parameter count N for compute (default: the runs' ``n_params`` column when constant)."""
    delta: float = 1e10
    """Data-to-compute conversion in F = C + delta * D (1e10 DMC, 4e9 Gym in the reference)."""
    compute_k: float = 10.0
    """k in C = k * sigma * B * N * D."""
    heldout: int = 1
    """Highest thresholds held out of the sigma*(F) fit to measure its prediction error."""
    baseline_utd: float = 2.0
    """sigma whose best (B, eta) is the baseline reused at every sigma."""
    propose_utds: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16, 32)
    """New sigma values to propose (B*, eta*) for."""
    propose_budgets: tuple[float, ...] | None = None
    """Budgets F to propose sigma* for (default: 2x, 10x and 100x the highest threshold's F*)."""
    offline_axes: tuple[str, ...] = OFFLINE_AXES
    """Resource columns for offline scaling fits (those that vary are fitted)."""


def _json(value):
    """Recursively turn numpy scalars/arrays into JSON types, NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


def choose_metric(results: Results, metric: str | None) -> str:
    """The metric to fit: the one asked for, else ``return``, else ``success``."""
    if metric:
        if metric not in results.metrics:
            found = ", ".join(results.metrics) or "none"
            raise ScalerlError(f"--metric: '{metric}' is not a logged metric; found {found}")
        return metric
    for candidate in ("return", "success", "episode_return", "eval/return"):
        if candidate in results.metrics:
            return candidate
    raise ScalerlError(f"--metric: no 'return' or 'success' metric; pass one of {', '.join(results.metrics)}")


def default_thresholds(curves: Curves, metric: str) -> np.ndarray:
    """10%, 20%, ..., 80% of the metric's scale: 1000 for DMC-style returns, 1 for success, else the best mean."""
    best = max(float(np.nanmax(np.nanmean(v, axis=1))) for v in curves.values if np.isfinite(v).any())
    lowest = min(float(np.nanmin(v)) for v in curves.values if np.isfinite(v).any())
    if lowest >= 0 and best <= 1.0:
        scale = 1.0
    elif lowest >= -1e-6 and best <= 1000.0 and metric.endswith("return"):
        scale = 1000.0
    else:
        scale = best
    return np.round(np.linspace(0.1, 0.8, 8) * scale, 10)


def fit_all(results: Results, options: FitOptions = FitOptions()) -> dict:
    """Every fit the runs support, as a JSON-ready dict with keys ``metric``, ``options``, ``online``, ``offline``.

    Raises:
        ScalerlError: when the runs vary neither ``utd`` nor an offline resource axis.
    """
    with single_threaded_blas():
        return _fit_all(results, options)


def _fit_all(results: Results, options: FitOptions) -> dict:
    hp.check_unreached_rule(options.unreached)
    metric = choose_metric(results, options.metric)
    varying = results.varying()
    offline_axes = [axis for axis in options.offline_axes if axis in varying]
    output: dict = {"metric": metric, "options": dataclasses.asdict(options), "sources": []}
    if "utd" in varying:
        output["online"] = fit_online(results, metric, options)
    if offline_axes:
        output["offline"] = fit_offline(results, metric, offline_axes, options)
    if "online" not in output and "offline" not in output:
        axes = ", ".join(("utd", *options.offline_axes))
        raise ScalerlError(f"nothing to fit: the runs vary none of {axes} (varying: {', '.join(varying) or 'nothing'})")
    return _json(output)


def _labels(configs: pd.DataFrame, keys: list[str]) -> list[str]:
    if not keys:
        return ["all"] * len(configs)
    return [
        " ".join(f"{format_value(row[k])}" if k == "env" else f"{k}={format_value(row[k])}" for k in keys)
        for _, row in configs.iterrows()
    ]


def _determined_by(configs: pd.DataFrame, column: str, by: list[str]) -> bool:
    """Whether ``column`` is a function of the ``by`` columns (so it carries no information of its own)."""
    if not by:
        return False
    frame = configs[[*by, column]].astype(str)
    return len(frame.drop_duplicates()) == len(frame[by].drop_duplicates())


def _column(configs: pd.DataFrame, name: str) -> np.ndarray:
    if name in configs.columns:
        return pd.to_numeric(configs[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(configs), np.nan)


def fit_online(results: Results, metric: str, options: FitOptions) -> dict:
    """The online method of ``docs/scaling.md`` (data to threshold through model size) on runs that vary ``utd``."""
    varying = results.varying()
    config_columns = sorted(set(varying) | ({"env"} & set(results.config_columns)))
    curves = extract_curves(results, metric, config_columns)
    configs = curves.configs
    n_params_varies = "n_params" in varying
    online_keys = [c for c in ONLINE_KEYS if c in config_columns]
    # The environment (and any other setting that is not a restatement of the online hyper-parameters).
    group_keys = [
        c
        for c in config_columns
        if c not in ONLINE_KEYS and (c == "env" or not _determined_by(configs, c, online_keys))
    ]
    labels = _labels(configs, group_keys + (["n_params"] if n_params_varies else []))
    env_names = sorted(set(labels))
    env_index = np.array([env_names.index(label) for label in labels])
    utd, batch, lr, n_params = (_column(configs, key) for key in ONLINE_KEYS)
    if not np.all(np.isfinite(utd) & (utd > 0)):
        raise ScalerlError("utd: every run needs a positive numeric utd for an online fit")

    thresholds = (
        np.asarray(options.thresholds, dtype=float) if options.thresholds else default_thresholds(curves, metric)
    )
    thresholds = np.sort(thresholds)
    selection = options.selection_threshold if options.selection_threshold is not None else thresholds[-1]
    if not np.any(np.isclose(thresholds, selection)):
        thresholds = np.sort(np.append(thresholds, selection))
    select = int(np.argmin(np.abs(thresholds - selection)))
    rng = np.random.default_rng(options.seed)
    point = np.stack(
        [seed_mean_crossings(s, v, thresholds, options.interpolate) for s, v in zip(curves.steps, curves.values)]
    )  # [C, J]
    boot = np.stack(
        [
            bootstrap_crossings(s, v, thresholds, options.num_bootstrap, rng, options.interpolate)
            for s, v in zip(curves.steps, curves.values)
        ]
    )  # [C, R, J]
    level = options.confidence
    output: dict = {
        "envs": env_names,
        "thresholds": thresholds,
        "selection_threshold": float(thresholds[select]),
        "configs": [
            {
                "env": env_names[env_index[c]],
                **{key: value for key, value in zip(ONLINE_KEYS, (utd[c], batch[c], lr[c], n_params[c]))},
                "seeds": int(curves.values[c].shape[1]),
                "crossings": [estimate(point[c, j], boot[c, :, j], level) for j in range(len(thresholds))],
            }
            for c in range(len(configs))
        ],
    }

    hyper = _fit_hyperparams(env_index, env_names, utd, batch, lr, point[:, select], boot[:, :, select], options)
    output["hyperparams"] = hyper["json"]
    chosen = _choose_data_configs(env_index, utd, batch, lr, point[:, select], hyper)
    data_fit = _fit_data_efficiency(chosen, env_names, utd, point, boot, thresholds, options)
    output["data_efficiency"] = data_fit["json"]
    output["compute"] = _fit_compute(results, data_fit, hyper, env_names, utd, batch, n_params, thresholds, options)
    if n_params_varies:
        raw_labels = _labels(configs, group_keys)
        output["model_size"] = _fit_model_size(
            raw_labels, utd, batch, lr, n_params, point, boot, thresholds, select, options
        )
    return output


def _fit_hyperparams(env_index, env_names, utd, batch, lr, times_point, times_boot, options) -> dict:
    """B* and eta* per (env, sigma), shared and per-env log-linear fits, proposals and the baseline."""
    level = options.confidence
    cells = np.column_stack([env_index, utd])
    fits, points = {}, {}
    for name, free, other in (("lr", lr, batch), ("batch_size", batch, lr)):
        if not np.all(np.isfinite(free)):
            continue
        # Only meaningful if the hyper-parameter varies within an (env, sigma) cell.
        if not any(len(np.unique(free[(env_index == e) & (utd == u)])) > 1 for e, u in set(map(tuple, cells))):
            continue
        other = np.where(np.isfinite(other), other, 0.0)
        best = hp.best_values(cells, free, other, times_boot, options.unreached)
        points[name] = best
        fits[name] = {
            "shared": hp.fit_best_values(best, shared=True, level=level),
            "per_env": hp.fit_best_values(
                best, shared=False, level=level, drop_highest_utd=options.per_env_drop_highest_utd
            ),
        }
    json_out: dict = {}
    for name, best in points.items():
        json_out[name] = {
            "points": [
                {"env": env_names[e], "utd": u, **estimate(v, reps, level).to_json()}
                for e, u, v, reps in zip(best.envs, best.utds, best.value, best.replicates)
            ],
            "shared": {
                "slope": fits[name]["shared"].slopes[next(iter(fits[name]["shared"].slopes))],
                "intercepts": {env_names[e]: est for e, est in fits[name]["shared"].intercepts.items()},
            },
            "per_env": {
                env_names[e]: {
                    "slope": fits[name]["per_env"].slopes[e],
                    "intercept": fits[name]["per_env"].intercepts[e],
                }
                for e in fits[name]["per_env"].slopes
            },
            "unreached": {"rule": options.unreached, **best.unreached_counts()},
        }
    proposals = []
    if fits:
        for e, env in enumerate(env_names):
            for new_utd in options.propose_utds:
                row = {"env": env, "utd": float(new_utd)}
                if "lr" in fits:
                    row["lr"] = fits["lr"]["shared"].predict_estimate(e, float(new_utd), level)
                if "batch_size" in fits:
                    row["batch_size"] = fits["batch_size"]["shared"].predict_estimate(e, float(new_utd), level)
                    row["batch_size_rounded"] = int(hp.round_batch_size(row["batch_size"].value))
                proposals.append(row)
    json_out["proposals"] = proposals
    baseline = {}
    if np.any(np.isclose(utd, options.baseline_utd)) and np.all(np.isfinite(batch)) and np.all(np.isfinite(lr)):
        for e, (b, eta) in hp.baseline_best(env_index, utd, batch, lr, times_point, options.baseline_utd).items():
            baseline[env_names[e]] = {"utd": options.baseline_utd, "batch_size": b, "lr": eta}
    json_out["baseline"] = baseline
    return {"json": json_out, "fits": fits}


def _choose_data_configs(env_index, utd, batch, lr, times_point, hyper) -> dict:
    """Per (env, sigma), the configuration whose D_J represents that sigma.

    With fitted B* and eta*, the configuration nearest (in log space) to the shared-slope prediction, as the
    reference does; otherwise the one reaching the selection threshold first.
    """
    fits = hyper["fits"]
    chosen = {}
    for e in np.unique(env_index):
        for u in np.unique(utd[env_index == e]):
            rows = np.flatnonzero((env_index == e) & (utd == u))
            if len(rows) == 1:
                chosen[(int(e), float(u))] = int(rows[0])
                continue
            if fits:
                distance = np.zeros(len(rows))
                if "lr" in fits:
                    distance += np.abs(np.log10(lr[rows]) - np.log10(fits["lr"]["shared"].predict(e, u)))
                if "batch_size" in fits:
                    distance += np.abs(np.log10(batch[rows]) - np.log10(fits["batch_size"]["shared"].predict(e, u)))
                chosen[(int(e), float(u))] = int(rows[np.argmin(distance)])
            else:
                times = np.where(np.isnan(times_point[rows]), np.inf, times_point[rows])
                chosen[(int(e), float(u))] = int(rows[np.argmin(times)])
    return chosen


def _fit_data_efficiency(chosen, env_names, utd, point, boot, thresholds, options) -> dict:
    """D_J(sigma) per threshold on median-normalised data aggregated over environments."""
    level = options.confidence
    utds = np.unique(utd)
    num_envs, num_utds, num_boot = len(env_names), len(utds), boot.shape[1]
    d_point = np.full((num_envs, num_utds, len(thresholds)), np.nan)
    d_boot = np.full((num_envs, num_utds, num_boot, len(thresholds)), np.nan)
    for (e, u), config in chosen.items():
        k = int(np.flatnonzero(utds == u)[0])
        d_point[e, k] = point[config]
        d_boot[e, k] = boot[config]
    fits, json_fits, aggregates = [], [], []
    for j, threshold in enumerate(thresholds):
        aggregate, _ = de.normalise_across_envs(d_point[:, :, j])
        aggregates.append(aggregate)
        params = de.fit_data_efficiency(utds, aggregate)
        replicate_params = []
        for r in range(num_boot):
            replicate_aggregate, _ = de.normalise_across_envs(d_boot[:, :, r, j])
            replicate_params.append(de.fit_data_efficiency(utds, replicate_aggregate) if params else None)
        fits.append((params, replicate_params))
        entry = {"threshold": float(threshold)}
        if params is not None:
            for field in ("d_min", "beta", "alpha"):
                samples = [getattr(p, field) if p else np.nan for p in replicate_params]
                entry[field] = estimate(getattr(params, field), samples, level)
        json_fits.append(entry)
    json_out = {
        "utds": utds,
        "per_env": {env_names[e]: d_point[e].T for e in range(num_envs)},  # [J, U] per environment
        "aggregate": np.array(aggregates),  # [J, U]
        "fits": json_fits,
        "form": "D_J(sigma) = d_min + (beta / sigma) ** alpha",
    }
    return {"json": json_out, "fits": fits, "utds": utds}


def _batch_size_function(hyper, env_names, batch):
    """B*(sigma) used for compute: the mean over environments of the shared-slope fit, else the swept batch size."""
    fits = hyper["fits"]
    if "batch_size" in fits:
        shared = fits["batch_size"]["shared"]
        envs = [e for e in range(len(env_names)) if np.isfinite(shared.intercepts[e].value)]
        return lambda sigma: np.mean([shared.predict(e, sigma) for e in envs], axis=0)
    if np.all(np.isfinite(batch)):
        constant = float(np.exp(np.mean(np.log(batch))))
        return lambda sigma: np.full(np.shape(sigma), constant)
    return None


def _fit_compute(results, data_fit, hyper, env_names, utd, batch, n_params, thresholds, options) -> dict:
    """C_J(sigma), the data-compute Pareto frontier, budget-optimal sigma* and the sigma*(F) law."""
    level = options.confidence
    n = options.n_params
    if n is None and np.all(np.isfinite(n_params)) and len(np.unique(n_params)) >= 1:
        values, counts = np.unique(n_params, return_counts=True)
        n = float(values[np.flatnonzero(counts == counts.max())[-1]])
    batch_fn = _batch_size_function(hyper, env_names, batch)
    if n is None or batch_fn is None:
        missing = "the critic parameter count N (--n-params)" if n is None else "a batch size"
        return {"note": f"compute, Pareto frontier and sigma* need {missing}; skipped"}
    utds = data_fit["utds"]
    grid = np.geomspace(utds.min() / 2, utds.max() * 4, 200)
    batch_grid = batch_fn(grid)
    frontiers, optima, replicate_optima = [], [], []
    for j, (params, replicate_params) in enumerate(data_fit["fits"]):
        if params is None:
            continue
        data = params(grid)
        compute = de.compute_to_threshold(grid, batch_grid, n, data, options.compute_k)
        best = de.budget_optimum(grid, compute, data, options.delta)
        reps = []
        for p in replicate_params:
            if p is None:
                reps.append(None)
                continue
            d = p(grid)
            reps.append(
                de.budget_optimum(
                    grid, de.compute_to_threshold(grid, batch_grid, n, d, options.compute_k), d, options.delta
                )
            )
        frontiers.append(
            {
                "threshold": float(thresholds[j]),
                "utd": grid,
                "compute": compute,
                "data": data,
                "pareto": de.pareto_mask(compute, data),
            }
        )
        optima.append((float(thresholds[j]), best))
        replicate_optima.append(reps)
    json_optima = []
    for (threshold, best), reps in zip(optima, replicate_optima):
        entry = {"threshold": threshold}
        for field in ("utd", "budget", "compute", "data"):
            entry[field] = estimate(getattr(best, field), [getattr(r, field) if r else np.nan for r in reps], level)
        json_optima.append(entry)
    output = {
        "n_params": n,
        "k": options.compute_k,
        "delta": options.delta,
        "form": "C_J = k * sigma * B*(sigma) * N * D_J(sigma);  F = C + delta * D",
        "batch_size_grid": batch_grid,
        "frontiers": frontiers,
        "optima": json_optima,
    }
    if len(optima) >= 3:
        budgets = np.array([best.budget for _, best in optima])
        sigmas = np.array([best.utd for _, best in optima])
        law = de.fit_budget_law(budgets, sigmas, options.heldout)
        if law is not None:
            replicate_laws = []
            for r in range(len(replicate_optima[0])):
                rep = [replicate_optima[j][r] for j in range(len(optima))]
                if any(x is None for x in rep):
                    replicate_laws.append(None)
                    continue
                replicate_laws.append(de.fit_budget_law([x.budget for x in rep], [x.utd for x in rep], options.heldout))
            heldout_count = len(law.heldout_log10_error)
            heldout = []
            for i in range(heldout_count):
                j = len(optima) - heldout_count + i
                samples = [
                    rl.heldout_log10_error[i] if rl is not None and len(rl.heldout_log10_error) > i else np.nan
                    for rl in replicate_laws
                ]
                heldout.append(
                    {
                        "threshold": optima[j][0],
                        "observed_utd": float(sigmas[j]),
                        "predicted_utd": float(law(budgets[j])),
                        "log10_error": estimate(law.heldout_log10_error[i], samples, level),
                    }
                )
            output["budget_law"] = {
                "form": "log10 sigma* = intercept + slope * log10 F",
                "slope": estimate(law.slope, [rl.slope if rl else np.nan for rl in replicate_laws], level),
                "intercept": estimate(law.intercept, [rl.intercept if rl else np.nan for rl in replicate_laws], level),
                "heldout": heldout,
            }
            top_budget = budgets[-1]
            proposal_budgets = options.propose_budgets or (2 * top_budget, 10 * top_budget, 100 * top_budget)
            proposals = []
            for budget in proposal_budgets:
                # Intervals: sigma* from each replicate's law, and B*, eta* evaluated at those sigma*.
                sigma = float(law(budget))
                sigmas_r = np.array([float(rl(budget)) if rl is not None else np.nan for rl in replicate_laws])
                finite = np.where(np.isfinite(sigmas_r), sigmas_r, sigma)
                row = {
                    "budget": float(budget),
                    "utd": estimate(sigma, sigmas_r, level),
                    "batch_size": estimate(float(batch_fn(np.array([sigma]))[0]), batch_fn(finite), level),
                }
                if "lr" in hyper["fits"]:
                    shared = hyper["fits"]["lr"]["shared"]
                    row["lr"] = {
                        env: estimate(float(shared.predict(e, sigma)), shared.predict(e, finite), level)
                        for e, env in enumerate(env_names)
                    }
                proposals.append(row)
            output["budget_proposals"] = proposals
    return output


def _fit_model_size(labels, utd, batch, lr, n_params, point, boot, thresholds, select, options) -> dict:
    """B*(sigma, N), D_J(sigma, N) per threshold and the compute-optimal (sigma*, N*) per environment."""
    level = options.confidence
    output = {}
    names = sorted(set(labels))
    for name in names:
        rows = np.flatnonzero(np.array(labels) == name)
        entry: dict = {}
        batch_model = None
        if np.all(np.isfinite(batch[rows])) and len(np.unique(batch[rows])) > 1:
            other = np.where(np.isfinite(lr[rows]), lr[rows], 0.0)
            cells = np.column_stack([np.zeros(len(rows)), utd[rows], n_params[rows]])
            best = hp.best_values(cells, batch[rows], other, boot[rows, :, select], options.unreached)
            batch_model = ms.fit_batch_size_model(best.cells[:, 1], best.cells[:, 2], best.value)
            if batch_model is not None:
                reps = [
                    ms.fit_batch_size_model(best.cells[:, 1], best.cells[:, 2], best.replicates[:, r])
                    for r in range(best.replicates.shape[1])
                ]
                entry["batch_size"] = {
                    "form": "B*(sigma, N) = a / (sigma ** alpha * (1 + (b / N) ** c))",
                    **{
                        f: estimate(getattr(batch_model, f), [getattr(m, f) if m else np.nan for m in reps], level)
                        for f in ("a", "alpha", "b", "c")
                    },
                    "points": [{"utd": c[1], "n_params": c[2], "value": v} for c, v in zip(best.cells, best.value)],
                    "unreached": {"rule": options.unreached, **best.unreached_counts()},
                }
        elif np.all(np.isfinite(batch[rows])):
            constant = float(np.exp(np.mean(np.log(batch[rows]))))
            batch_model = ms.BatchSizeModel(a=constant, alpha=0.0, b=0.0, c=1.0)
        # Per (sigma, N) cell, the configuration reaching the selection threshold first.
        cell_best = {}
        for row in rows:
            key = (utd[row], n_params[row])
            time = point[row, select] if np.isfinite(point[row, select]) else np.inf
            if key not in cell_best or time < cell_best[key][0]:
                cell_best[key] = (time, row)
        cell_keys = sorted(cell_best)
        chosen = np.array([cell_best[k][1] for k in cell_keys])
        cell_utd = np.array([k[0] for k in cell_keys])
        cell_n = np.array([k[1] for k in cell_keys])
        data_fits, optima = [], []
        for j, threshold in enumerate(thresholds):
            model = ms.fit_data_model(cell_utd, cell_n, point[chosen, j])
            if model is None:
                continue
            reps = [ms.fit_data_model(cell_utd, cell_n, boot[chosen, r, j]) for r in range(boot.shape[1])]
            data_fits.append(
                {
                    "threshold": float(threshold),
                    **{
                        f: estimate(getattr(model, f), [getattr(m, f) if m else np.nan for m in reps], level)
                        for f in ("c0", "a", "alpha", "b", "beta")
                    },
                    "points": [
                        {"utd": u, "n_params": n, "data": d} for u, n, d in zip(cell_utd, cell_n, point[chosen, j])
                    ],
                }
            )
            if batch_model is not None:
                box = ((cell_utd.min() / 2, cell_utd.max() * 4), (cell_n.min() / 2, cell_n.max() * 8))
                best = ms.compute_optimal(batch_model, model, options.delta, *box, k=options.compute_k)
                rep_best = [
                    ms.compute_optimal(batch_model, m, options.delta, *box, k=options.compute_k) if m else None
                    for m in reps
                ]
                optima.append((float(threshold), best, rep_best))
        entry["data"] = data_fits
        entry["data_form"] = "D_J(sigma, N) = c0 * (1 + (a / sigma) ** alpha + (b / N) ** beta)"
        entry["optima"] = [
            {
                "threshold": t,
                **{
                    f: estimate(getattr(b, f), [getattr(x, f) if x else np.nan for x in reps], level)
                    for f in ("utd", "n_params", "budget", "compute", "data")
                },
            }
            for t, b, reps in optima
        ]
        if len(optima) >= 3:
            budgets = np.array([b.budget for _, b, _ in optima])
            laws = {}
            for field in ("utd", "n_params"):
                fit = ms.fit_power_law_in_budget(budgets, [getattr(b, field) for _, b, _ in optima], options.heldout)
                if fit is None:
                    continue
                slope, intercept, errors = fit
                replicate_fits = []
                for r in range(boot.shape[1]):
                    rep = [reps[r] for _, _, reps in optima]
                    replicate_fits.append(
                        None
                        if any(x is None for x in rep)
                        else ms.fit_power_law_in_budget(
                            [x.budget for x in rep], [getattr(x, field) for x in rep], options.heldout
                        )
                    )
                laws[field] = {
                    "form": f"log10 {field}* = intercept + slope * log10 F",
                    "slope": estimate(slope, [f[0] if f else np.nan for f in replicate_fits], level),
                    "intercept": estimate(intercept, [f[1] if f else np.nan for f in replicate_fits], level),
                    "heldout_log10_error": [
                        estimate(
                            error,
                            [f[2][i] if f is not None and len(f[2]) > i else np.nan for f in replicate_fits],
                            level,
                        )
                        for i, error in enumerate(errors)
                    ],
                }
            entry["laws"] = laws
        output[name] = entry
    return output


def fit_offline(results: Results, metric: str, axes: list[str], options: FitOptions) -> list[dict]:
    """Saturating power law of the final metric versus each varying resource axis, per agent (and other settings)."""
    level = options.confidence
    varying = results.varying()
    curves = extract_curves(results, metric, varying)
    rng = np.random.default_rng(options.seed)
    finals = [final_values(v) for v in curves.values]  # per config [S]
    fits = []
    for axis in axes:
        # Columns that only restate the axis (e.g. the dataset path of each dataset size) do not split groups.
        group_keys = [c for c in varying if c != axis and not _determined_by(curves.configs, c, [axis])]
        x_all = pd.to_numeric(curves.configs[axis], errors="coerce").to_numpy(dtype=float)
        keys = (
            [tuple(row[k] for k in group_keys) for _, row in curves.configs.iterrows()]
            if group_keys
            else [()] * len(x_all)
        )
        for key in sorted(set(keys), key=str):
            rows = sorted((i for i, k in enumerate(keys) if k == key and np.isfinite(x_all[i])), key=lambda i: x_all[i])
            if len(rows) < 2:
                continue
            x = x_all[rows]
            seeds = [finals[i][np.isfinite(finals[i])] for i in rows]
            mean = np.array([s.mean() if len(s) else np.nan for s in seeds])
            resampled = np.stack(
                [
                    np.array([rng.choice(s, len(s)).mean() if len(s) else np.nan for s in seeds])
                    for _ in range(options.num_bootstrap)
                ]
            )  # [R, P]
            law = fit_saturating_power_law(x, mean)
            entry = {
                "axis": axis,
                "group": {k: v for k, v in zip(group_keys, key)},
                "label": " ".join(
                    f"{format_value(v)}" if k == "agent" else f"{k}={format_value(v)}" for k, v in zip(group_keys, key)
                )
                or "all",
                "points": {
                    "x": x,
                    "mean": mean,
                    "ci": [estimate(m, resampled[:, p], level).to_json()["ci"] for p, m in enumerate(mean)],
                    "seeds": [len(s) for s in seeds],
                },
                "form": "y(x) = y_inf - a * x ** (-b)",
            }
            if law is not None:
                reps = [fit_saturating_power_law(x, resampled[r]) for r in range(options.num_bootstrap)]
                for field in ("y_inf", "a", "b"):
                    entry[field] = estimate(
                        getattr(law, field), [getattr(m, field) if m else np.nan for m in reps], level
                    )
            fits.append(entry)
    return fits
