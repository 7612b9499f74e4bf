# ruff: noqa: B008  (typer declares options as argument defaults)
"""The scaling-law commands: ``scalerl sweep``, ``scalerl fit`` (and its printed summary) and ``scalerl report``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import typer

from scalerl.atomic import atomic_write_json
from scalerl.errors import ScalerlError


def sweep(
    spec: Path = typer.Argument(..., help="Sweep file: TOML (YAML with PyYAML). See docs/scaling.md."),
    out: Path | None = typer.Option(None, help="Sweep directory (default: the file's `out`, else sweeps/<name>)."),
    workers: int | None = typer.Option(
        None, min=1, help="Trials at a time (default: the file's `workers`, else the CPU count; Ray: cluster CPUs)."
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", min=0, help="Extra attempts per failing trial in this run (default: the file's, 2)."
    ),
    ray: str | None = typer.Option(
        None, "--ray", help="Run trials as Ray tasks: 'auto' (running cluster), 'local' (start one) or an ADDRESS."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials, their status and commands; run nothing."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show live progress (done/running/failed)."),
) -> None:
    """Run a grid of trials; re-running skips finished trials and retries failed ones."""
    from scalerl.scaling.spec import load_spec
    from scalerl.scaling.sweep import read_trial, run_sweep

    loaded = load_spec(spec)
    sweep_dir = os.path.abspath(str(out) if out else loaded.out or os.path.join("sweeps", loaded.name))
    if dry_run:
        trials = loaded.trials()
        for trial in trials:
            trial_dir = os.path.join(sweep_dir, trial.name)
            state = read_trial(trial_dir) or {}
            typer.echo(f"[{state.get('status', 'new')}] {trial.name}: {loaded.render(trial, trial_dir, sweep_dir)}")
        typer.echo(f"{len(trials)} trials in {sweep_dir}")
        return
    summary = run_sweep(loaded, sweep_dir, workers=workers, max_retries=max_retries, ray_address=ray, progress=progress)
    typer.echo(
        f"{summary.done}/{summary.total} trials done ({summary.skipped} already done), {len(summary.failed)} failed, "
        f"{summary.attempts} attempts; sweep directory: {summary.sweep_dir}"
    )
    for name in summary.failed:
        state = read_trial(os.path.join(summary.sweep_dir, name)) or {}
        typer.echo(f"  failed: {name} after {state.get('attempts')} attempts: {state.get('error')}", err=True)
    if summary.failed:
        raise typer.Exit(1)


def _parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ScalerlError(f"{flag}: expected comma-separated numbers, got '{text}'") from None


def _parse_max_returns(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        env, _, value = item.partition("=")
        try:
            out[env] = float(value)
        except ValueError:
            raise ScalerlError(f"--max-return: expected ENV=VALUE, got '{item}'") from None
    return out


_STEP_COLUMN_CHOICES = {"auto": None, "yes": True, "no": False}


def _parse_step_column(text: str) -> bool | None:
    if text not in _STEP_COLUMN_CHOICES:
        raise ScalerlError(f"--step-column: expected auto, yes or no, got '{text}'")
    return _STEP_COLUMN_CHOICES[text]


def _load(
    sources: list[Path], step_start: int, step_interval: int, max_returns: list[str] | None, step_column: str = "auto"
):
    """One table from the ``--source`` paths, and the lines to show about how they were read: the loaders' notes
    (e.g. a qscaled archive's layout) and their :class:`~scalerl.scaling.results.LoaderWarning` messages."""
    from scalerl.scaling.results import LoaderWarning, load_source, merge_results

    if not sources:
        raise ScalerlError("--source: give at least one run directory, sweep directory, qscaled .zip or W&B .csv")
    options = {
        "step_start": step_start,
        "step_interval": step_interval,
        "step_column": _parse_step_column(step_column),
        "max_returns": _parse_max_returns(max_returns),
    }
    loaded = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LoaderWarning)
        for source in sources:
            zip_options = options if str(source).endswith(".zip") else {}
            loaded.append(load_source(source, **zip_options))
    results = merge_results(loaded)
    lines = list(results.notes)
    lines += [f"warning: {w.message}" for w in caught if issubclass(w.category, LoaderWarning)]
    for w in caught:
        if not issubclass(w.category, LoaderWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return results, lines


_SOURCE_HELP = "Run directory, sweep directory, qscaled .zip or W&B .csv export (repeat for several)."


# The fitting options `scalerl fit` and `scalerl report` share (one definition each; Typer has no option groups).
_METRIC = typer.Option(None, help="Metric to fit (default: return, else success).")
_THRESHOLDS = typer.Option(None, help="Comma-separated thresholds J (default: 10%..80% of scale).")
_SELECTION_THRESHOLD = typer.Option(None, help="J at which B*, eta* are chosen (default: highest).")
_BOOTSTRAP = typer.Option(100, "--bootstrap", help="Bootstrap resamples of the seeds.")
_SEED = typer.Option(0, help="Seed of the bootstrap.")
_INTERPOLATE = typer.Option(False, "--interpolate", help="Interpolate crossings between log points.")
_N_PARAMS = typer.Option(None, help="Critic parameter count N for compute (default: from runs).")
_DELTA = typer.Option(1e10, help="Data-to-compute conversion delta in F = C + delta * D.")
_COMPUTE_K = typer.Option(10.0, help="k in C = k * sigma * B * N * D.")
_HELDOUT = typer.Option(1, help="Highest thresholds held out of the sigma*(F) fit.")
_BASELINE_UTD = typer.Option(2.0, help="sigma whose best (B, eta) is the baseline.")
_PROPOSE_UTDS = typer.Option("0.5,1,2,4,8,16,32", help="sigma values to propose B*, eta* for.")
_PROPOSE_BUDGETS = typer.Option(None, help="Budgets F to propose sigma* for (default: 2x-100x F*).")
_STEP_START = typer.Option(5000, help="qscaled zips without a step column: step of row 0.")
_STEP_INTERVAL = typer.Option(1000, help="qscaled zips without a step column: steps between rows.")
_STEP_COLUMN = typer.Option(
    "auto",
    "--step-column",
    help=(
        "auto, yes or no: is column 0 of a qscaled zip's .npy files the environment step? auto (default): decided by "
        "the majority of the archive's files (strictly increasing integers whose gaps are within 1% of a whole "
        "multiple of the logging interval), with a warning for files that disagree or seed counts that differ."
    ),
)
_MAX_RETURN = typer.Option([], help="ENV=VALUE: normalise that env's returns to 1000 (repeatable).")
_UNREACHED = typer.Option(
    "skip",
    "--unreached",
    help=(
        "skip or first: a bootstrap draw in which no configuration of an (env, B, sigma) group reaches J (resp. "
        "(env, eta, sigma) for B*): skip (default) leaves it out of the average; first counts the group's smallest "
        "eta (resp. B), the reference's rule (qscaled's argmin over all-infinite times picks index 0)."
    ),
)
_PER_ENV_DROP_HIGHEST_UTD = typer.Option(
    False,
    "--per-env-drop-highest-utd",
    help="Leave each env's highest sigma out of the per-env B*, eta* fits, as the reference does (shared fit: all).",
)
_FIT_FLAGS = (
    "metric", "thresholds", "selection_threshold", "bootstrap", "seed", "interpolate", "n_params", "delta",
    "compute_k", "heldout", "baseline_utd", "propose_utds", "propose_budgets", "unreached",
    "per_env_drop_highest_utd",
)  # fmt: skip


def _fit_options(flags: dict):
    """:class:`FitOptions` from a command's flag values (its ``locals()``), parsed and checked."""
    from scalerl.scaling.analysis import FitOptions
    from scalerl.scaling.hyperparams import check_unreached_rule

    kwargs = {name: flags[name] for name in _FIT_FLAGS}
    kwargs["num_bootstrap"] = kwargs.pop("bootstrap")
    thresholds = _parse_floats(kwargs.pop("thresholds"), "--thresholds")
    propose = _parse_floats(kwargs.pop("propose_utds"), "--propose-utds")
    budgets = _parse_floats(kwargs.pop("propose_budgets"), "--propose-budgets")
    if kwargs["num_bootstrap"] < 1:
        raise ScalerlError("--bootstrap: expected at least 1 resample")
    check_unreached_rule(kwargs["unreached"])
    return FitOptions(
        thresholds=thresholds,
        propose_utds=propose or FitOptions.propose_utds,
        propose_budgets=budgets,
        **kwargs,
    )


def fit(
    source: list[Path] = typer.Option([], "--source", help=_SOURCE_HELP),
    json_path: Path | None = typer.Option(None, "--json", help="Write every fitted number (with its CI) here."),
    metric: str | None = _METRIC,
    thresholds: str | None = _THRESHOLDS,
    selection_threshold: float | None = _SELECTION_THRESHOLD,
    bootstrap: int = _BOOTSTRAP,
    seed: int = _SEED,
    interpolate: bool = _INTERPOLATE,
    n_params: float | None = _N_PARAMS,
    delta: float = _DELTA,
    compute_k: float = _COMPUTE_K,
    heldout: int = _HELDOUT,
    baseline_utd: float = _BASELINE_UTD,
    propose_utds: str = _PROPOSE_UTDS,
    propose_budgets: str | None = _PROPOSE_BUDGETS,
    unreached: str = _UNREACHED,
    per_env_drop_highest_utd: bool = _PER_ENV_DROP_HIGHEST_UTD,
    step_start: int = _STEP_START,
    step_interval: int = _STEP_INTERVAL,
    step_column: str = _STEP_COLUMN,
    max_return: list[str] = _MAX_RETURN,
) -> None:
    """Fit the scaling laws of docs/scaling.md to runs; print a summary and optionally write all numbers as JSON."""
    flags = dict(locals())
    from scalerl.scaling.analysis import fit_all

    options = _fit_options(flags)
    results, loading = _load(source, step_start, step_interval, max_return, step_column)
    for line in loading:
        typer.echo(line, err=line.startswith("warning:"))
    fits = fit_all(results, options)
    fits["sources"] = [os.path.abspath(s) for s in source]
    fits["loading"] = loading
    for line in summary_lines(fits):
        typer.echo(line)
    if json_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        atomic_write_json(str(json_path), fits)
        typer.echo(f"wrote {os.path.abspath(json_path)}")


def summary_lines(fits: dict) -> list[str]:
    """A few lines of the headline numbers of a fit dict."""
    from scalerl.scaling.report import unreached_text

    def est(entry) -> str:
        if not isinstance(entry, dict) or entry.get("value") is None:
            return "n/a"
        low, high = entry["ci"]

        def fmt(v):
            return "n/a" if v is None else f"{v:.4g}"

        return f"{fmt(entry['value'])} [{fmt(low)}, {fmt(high)}]"

    lines = []
    online = fits.get("online")
    if online:
        lines.append(f"online: {len(online['configs'])} configurations, envs: {', '.join(online['envs'])}")
        for name, symbol in (("lr", "eta*"), ("batch_size", "B*")):
            if name in online.get("hyperparams", {}):
                lines.append(f"  {symbol}(sigma) shared slope: {est(online['hyperparams'][name]['shared']['slope'])}")
                unreached = online["hyperparams"][name].get("unreached")
                if unreached:
                    lines.append(f"    {unreached_text(unreached, online.get('selection_threshold'))}")
        for entry in online.get("data_efficiency", {}).get("fits", []):
            if "alpha" in entry:
                lines.append(f"  D_J(sigma) J={entry['threshold']:g}: alpha {est(entry['alpha'])}")
        law = online.get("compute", {}).get("budget_law")
        if law:
            errors = ", ".join(est(h["log10_error"]) for h in law["heldout"])
            lines.append(f"  sigma*(F) slope {est(law['slope'])}; held-out log10 error {errors}")
        if online.get("compute", {}).get("note"):
            lines.append(f"  {online['compute']['note']}")
    for entry in fits.get("offline", []):
        lines.append(
            f"offline {entry['axis']} [{entry['label']}]: y_inf {est(entry.get('y_inf'))}, b {est(entry.get('b'))}"
        )
    return lines


def report(
    source: list[Path] = typer.Option([], "--source", help=_SOURCE_HELP),
    out: Path = typer.Option(Path("scaling_report"), help="Directory for report.md and the PNG plots."),
    fits_path: Path | None = typer.Option(None, "--fits", help="Fits JSON from `scalerl fit --json` (else fit now)."),
    metric: str | None = _METRIC,
    thresholds: str | None = _THRESHOLDS,
    selection_threshold: float | None = _SELECTION_THRESHOLD,
    bootstrap: int = _BOOTSTRAP,
    seed: int = _SEED,
    interpolate: bool = _INTERPOLATE,
    n_params: float | None = _N_PARAMS,
    delta: float = _DELTA,
    compute_k: float = _COMPUTE_K,
    heldout: int = _HELDOUT,
    baseline_utd: float = _BASELINE_UTD,
    propose_utds: str = _PROPOSE_UTDS,
    propose_budgets: str | None = _PROPOSE_BUDGETS,
    unreached: str = _UNREACHED,
    per_env_drop_highest_utd: bool = _PER_ENV_DROP_HIGHEST_UTD,
    step_start: int = _STEP_START,
    step_interval: int = _STEP_INTERVAL,
    step_column: str = _STEP_COLUMN,
    max_return: list[str] = _MAX_RETURN,
) -> None:
    """Write PNG plots and a markdown report (fitted laws, proposed hyper-parameters) for runs or a fits JSON."""
    flags = dict(locals())
    from scalerl.scaling.analysis import choose_metric, fit_all
    from scalerl.scaling.report import write_report
    from scalerl.scaling.results import extract_curves

    fits = None
    if fits_path is not None:
        try:
            with open(fits_path) as f:
                fits = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ScalerlError(f"--fits {fits_path}: not a readable fits JSON ({error})") from None
        if not isinstance(fits, dict) or "metric" not in fits:
            raise ScalerlError(f"--fits {fits_path}: not a fits JSON written by `scalerl fit --json`")
        source = source or [Path(s) for s in fits.get("sources", []) if os.path.exists(s)]
    options = _fit_options(flags) if fits is None else None
    results, loading = _load(source, step_start, step_interval, max_return, step_column) if source else (None, [])
    for line in loading:
        typer.echo(line, err=line.startswith("warning:"))
    if fits is None:
        if results is None:
            raise ScalerlError("--source or --fits: give the runs to fit or a fits JSON")
        fits = fit_all(results, options)
        fits["sources"] = [os.path.abspath(s) for s in source]
        fits["loading"] = loading
    curves, panels, line_keys = None, None, None
    if results is not None:
        varying = results.varying()
        metric_name = choose_metric(results, fits["metric"])
        if "utd" in varying:
            panels = [c for c in ("env", "utd") if c in varying or (c == "env" and c in results.config_columns)]
            line_keys = [c for c in ("batch_size", "lr", "n_params") if c in varying]
        else:
            panels = [c for c in ("agent",) if c in varying] or varying[:1]
            line_keys = [c for c in varying if c not in panels and c in fits["options"]["offline_axes"]]
        curves = extract_curves(results, metric_name, sorted(set(varying) | set(panels)))
        line_keys = line_keys or [c for c in curves.configs.columns if c not in panels]
    path = write_report(fits, str(out), curves, panels, line_keys)
    atomic_write_json(os.path.join(out, "fits.json"), fits)
    typer.echo(f"wrote {os.path.abspath(path)} (plots and fits.json beside it)")
