"""Results as one tidy table: run directories, qscaled zips and Weights & Biases CSV exports.

Every loader returns a :class:`Results`: a pandas table with one row per (run, seed, logged step), the
configuration as columns (canonical names ``env``, ``utd``, ``batch_size``, ``lr``, ``n_params`` where known), and
the logged metrics (``return``, ``success``, ...). A *seed* is a ``(run, seed)`` pair, so runs that differ only in
their seed (one trial per seed) and seeds vmapped inside one run are treated alike. :func:`extract_curves` turns the
table into per-configuration arrays ``[T, S]`` for the fitters.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from scalerl.errors import ScalerlError
from scalerl.manifest import read_manifest
from scalerl.runs import CHECKPOINT_DIR, CONFIG_FILE, EVAL_FILE, METRICS_FILE, read_jsonl

ALIASES = {
    "env": ("env", "env_name", "environment", "task"),
    "utd": ("utd", "utd_ratio", "sigma", "updates_per_data", "replay_ratio"),
    "batch_size": ("batch_size", "bs"),
    "lr": ("lr", "learning_rate"),
    "n_params": ("n_params", "critic_params", "num_params", "model_size"),
}
"""Canonical column names and the spellings recognised for them in configs and CSV headers."""

NON_CONFIG = {"run", "seed", "step", "base_seed", "out", "status", "seeds", "resume", "progress"}
"""Columns that identify a run or a seed rather than a configuration."""


@dataclasses.dataclass
class Results:
    """A tidy table of logged metrics.

    Attributes:
        table: one row per (run, seed, step).
        config_columns: the columns that describe a configuration (runs sharing them are seeds of one configuration).
        metrics: the metric columns.
        notes: how the sources were read (e.g. a qscaled archive's layout), for the user to see.
    """

    table: pd.DataFrame
    config_columns: list[str]
    metrics: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)

    def varying(self) -> list[str]:
        """Configuration columns that take more than one value."""
        return [c for c in self.config_columns if self.table[c].nunique(dropna=False) > 1]


@dataclasses.dataclass(frozen=True)
class Curves:
    """Per-configuration learning curves for the fitters.

    Attributes:
        configs: one row per configuration (its configuration columns).
        steps: per configuration, ``[T]`` logged steps.
        values: per configuration, ``[T, S]`` metric values, one column per seed (NaN where a seed did not log).
    """

    configs: pd.DataFrame
    steps: list[np.ndarray]
    values: list[np.ndarray]


def canonical_name(name: str) -> str:
    """The canonical column name of a config key (``learning_rate`` -> ``lr``); other names are unchanged."""
    lowered = name.lower()
    for canonical, spellings in ALIASES.items():
        if lowered in spellings:
            return canonical
    return name


def _results(frames: list[pd.DataFrame], metrics: Iterable[str]) -> Results:
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "seed", "step"])
    metrics = [m for m in dict.fromkeys(metrics) if m in table.columns]
    config = [c for c in table.columns if c not in NON_CONFIG and c not in metrics]
    return Results(table, config, metrics)


def find_run_dirs(path: str | os.PathLike) -> list[str]:
    """Run directories under ``path`` (itself included): directories holding ``eval.jsonl`` or ``metrics.jsonl``."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ScalerlError(f"{path}: not a directory")
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != CHECKPOINT_DIR)
        if EVAL_FILE in files or METRICS_FILE in files:
            found.append(root)
    return sorted(found)


def _flatten_config(run_dir: str) -> dict:
    """Configuration of a run: ``config.json`` (train or online, agent and model fields) under the sweep's
    ``trial.json`` params."""
    config: dict = {}
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.isfile(config_path):
        saved = _read_json(config_path)
        for part in ("train", "online", "agent", "model"):  # offline runs write train, online runs write online
            for key, value in (saved.get(part) or {}).items():
                config[canonical_name(key)] = value
        config["base_seed"] = (saved.get("train") or saved.get("online") or {}).get("seed", 0)
        config.pop("seed", None)
        size = _dataset_size(str(config.get("data", "")))
        if size is not None:
            config["dataset_size"] = size
    trial_path = os.path.join(run_dir, "trial.json")
    if os.path.isfile(trial_path):
        trial = _read_json(trial_path)
        for key, value in (trial.get("params") or {}).items():
            config["base_seed" if key == "seed" else canonical_name(key)] = value
        config["status"] = trial.get("status")
    for key, value in list(config.items()):
        if isinstance(value, (list, tuple)):
            config[key] = "x".join(str(v) for v in value)
            if key == "hidden_dims" and value and all(isinstance(v, (int, float)) for v in value):
                config.setdefault("width", value[0])
                config.setdefault("depth", len(value))
        elif isinstance(value, dict):
            config[key] = json.dumps(value, sort_keys=True)
    return config


def _dataset_size(data_path: str) -> int | None:
    """Training transitions of a scalerl dataset directory, from its manifest (None if there is none)."""
    if not data_path:
        return None
    try:
        manifest = read_manifest(data_path)
        if manifest is None:
            return None
        if "transitions" in manifest:
            return int(manifest["transitions"])
        return int(manifest["total_episodes"]) * int(manifest["episode_length"])
    except (KeyError, TypeError, ValueError, ScalerlError):
        return None


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ScalerlError(f"{path}: not readable JSON ({error})") from None


def load_run_dirs(paths: Sequence[str | os.PathLike], file: str = "eval.jsonl", only_done: bool = False) -> Results:
    """Load run directories (or directories containing them, e.g. a sweep) into one table.

    Args:
        paths: run directories, sweep directories or any directory tree holding them.
        file: the per-(step, seed) JSONL file to read: ``eval.jsonl`` (success / return) or ``metrics.jsonl``.
        only_done: skip runs whose ``trial.json`` says they did not finish.

    Returns:
        :class:`Results` with the run's configuration columns (``config.json`` train and agent fields, overridden by
        the sweep's ``trial.json`` params) and ``file``'s numeric fields as metrics.
    """
    frames, metrics = [], []
    for path in paths:
        for run_dir in find_run_dirs(path):
            jsonl = os.path.join(run_dir, file)
            if not os.path.isfile(jsonl):
                continue
            config = _flatten_config(run_dir)
            if only_done and config.get("status") not in (None, "done"):
                continue
            rows = read_jsonl(jsonl)
            if not rows:
                continue
            frame = pd.DataFrame(rows)
            if "step" not in frame:
                raise ScalerlError(f"{jsonl}: rows have no 'step' field")
            if "seed" not in frame:
                frame["seed"] = 0
            numeric = [
                c for c in frame.columns if c not in ("step", "seed") and pd.api.types.is_numeric_dtype(frame[c])
            ]
            frame = frame[["step", "seed", *numeric]]
            metrics.extend(numeric)
            for key, value in config.items():
                if key not in frame.columns:
                    frame[key] = value
            frame["run"] = os.path.relpath(run_dir, os.fspath(path)) if run_dir != os.fspath(path) else run_dir
            frames.append(frame)
    if not frames:
        raise ScalerlError(f"{', '.join(map(str, paths))}: no run directories with {file} found")
    return _results(frames, metrics)


_QSCALED_FILE = re.compile(r"(?:^|/)utd_([0-9.eE+-]+)/([^/]+)/([^/]+)/bs_([0-9]+)_lr_([0-9.eE+-]+)\.npy$")

STEP_GAP_TOLERANCE = 0.01
"""How far (a fraction of the logging interval) a logged-step gap may be from a whole multiple of that interval."""


class LoaderWarning(UserWarning):
    """A source loaded, but something in it deserves a look (``scalerl fit`` and ``report`` print these)."""


def looks_like_step_column(column: np.ndarray) -> bool:
    """Whether a column can be logged environment steps.

    True for strictly increasing integers whose gaps are each within :data:`STEP_GAP_TOLERANCE` of the logging
    interval (the median of the gaps shorter than 1.5 times the smallest) times a whole number: real logs jitter
    (steps 1, 1001, 2001, 3000, 4001: gaps 999-1001) and skip rows (gaps of 2000 in a column logged every 1000
    steps). A column of returns (one seed) is practically never like this.
    """
    column = np.asarray(column, dtype=float)
    if column.ndim != 1 or len(column) < 2 or not np.all(np.isfinite(column)):
        return False
    gaps = np.diff(column)
    if not (np.all(gaps > 0) and np.all(column == np.round(column))):
        return False
    unit = float(np.median(gaps[gaps < 1.5 * gaps.min()]))  # the logging interval: the median of the shortest gaps
    multiples = np.maximum(np.round(gaps / unit), 1.0)
    return bool(np.all(np.abs(gaps - multiples * unit) <= STEP_GAP_TOLERANCE * unit))


def _step_layout(path: str, names: list[str], arrays: list[np.ndarray], step_column: bool | None) -> tuple[bool, str]:
    """Whether column 0 of every file of one archive is the step, and why: forced by ``step_column``, else decided
    by the files' majority (all files of an archive share one layout), with a :class:`LoaderWarning` for dissenters."""
    if step_column is None:
        votes = [looks_like_step_column(array[:, 0]) for array in arrays]
        count = sum(votes)
        if 2 * count == len(votes):
            raise ScalerlError(
                f"{path}: column 0 looks like a step column in {count} of {len(votes)} files and not in the others; "
                "pass --step-column yes or --step-column no"
            )
        has_steps = 2 * count > len(votes)
        dissent = [name for name, vote in zip(names, votes) if vote != has_steps]
        if dissent:
            warnings.warn(
                f"{path}: column 0 of {len(dissent)} of {len(votes)} files does {'not ' if has_steps else ''}look "
                f"like a step column (e.g. {dissent[0]}); all files are read as the majority's layout, "
                f"{'with' if has_steps else 'without'} a step column (--step-column yes|no chooses)",
                LoaderWarning,
                stacklevel=3,
            )
        reason = f"column 0 looks like steps in {count} of {len(votes)} files"
    else:
        has_steps = step_column
        reason = f"set by --step-column {'yes' if step_column else 'no'}"
    if has_steps:
        for name, array in zip(names, arrays):
            if array.shape[1] < 2:
                raise ScalerlError(f"{path}:{name}: a step column and no seed column (shape {array.shape})")
            if not np.all(np.diff(array[:, 0]) > 0):
                raise ScalerlError(
                    f"{path}:{name}: column 0 is not strictly increasing, so it cannot be the step column; "
                    "pass --step-column no if every column is a seed"
                )
    seeds = {}
    for name, array in zip(names, arrays):
        seeds.setdefault(array.shape[1] - int(has_steps), []).append(name)
    if len(seeds) > 1:
        counts = ", ".join(f"{count} seeds in {len(files)} files" for count, files in sorted(seeds.items()))
        rare = min(seeds, key=lambda count: len(seeds[count]))
        warnings.warn(
            f"{path}: files have different seed counts ({counts}; e.g. {seeds[rare][0]} has {rare}); "
            "a step column read as a seed adds one (--step-column yes|no chooses)",
            LoaderWarning,
            stacklevel=3,
        )
    return has_steps, reason


def load_qscaled_zip(
    path: str | os.PathLike,
    step_start: int = 5000,
    step_interval: int = 1000,
    step_column: bool | None = None,
    max_returns: dict[str, float] | None = None,
) -> Results:
    """Load a zip in the qscaled layout ``<name>/utd_<sigma>/<env>/<key>/bs_<B>_lr_<eta>.npy``.

    Each file is a ``[T, S]`` array of returns, one column per seed, or ``[T, 1 + S]`` whose column 0 is the
    environment step. The DMC sweep files have no step column: row ``k`` is at ``step_start + step_interval * k``.
    The layout is one per archive, as in the reference (qscaled's ``UTDZipHandler.load_df_from_zip``: column 0 is
    the step unless the experiment's config gives ``env_step_start`` and ``env_step_freq``; its latest version always
    reads column 0 as the step).

    Args:
        path: the zip file.
        step_start: step of row 0 when the files have no step column.
        step_interval: steps between rows when the files have no step column.
        step_column: whether column 0 is the step; None decides for the whole archive by the majority of its files
            (:func:`looks_like_step_column`), warning (:class:`LoaderWarning`) about files that disagree and about
            files with different seed counts.
        max_returns: optional ``{env: max return}``; returns are normalised to ``R * 1000 / max_return``.

    Returns:
        :class:`Results` with columns ``env, utd, batch_size, lr, run, seed, step, return``; its ``notes`` say which
        layout was used.
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ScalerlError(f"{path}: not a readable zip ({error})") from None
    names, keys, arrays = [], [], []
    with archive:
        for name in sorted(archive.namelist()):
            match = _QSCALED_FILE.search(name)
            if not match:
                continue
            try:
                array = np.load(io.BytesIO(archive.read(name)))
            except (OSError, ValueError, zipfile.BadZipFile) as error:
                raise ScalerlError(f"{path}:{name}: not a readable .npy array ({error})") from None
            if array.ndim != 2:
                raise ScalerlError(f"{path}:{name}: expected a [T, seeds] array, got shape {array.shape}")
            names.append(name)
            keys.append(match.groups())
            arrays.append(array)
    if not arrays:
        raise ScalerlError(f"{path}: no utd_<sigma>/<env>/<key>/bs_<B>_lr_<eta>.npy files in the zip")
    has_steps, reason = _step_layout(path, names, arrays, step_column)
    frames = []
    for name, (utd, env, _, batch_size, lr), array in zip(names, keys, arrays):
        if has_steps:
            steps, returns = array[:, 0].astype(np.int64), array[:, 1:].astype(float)
        else:
            steps = step_start + step_interval * np.arange(len(array), dtype=np.int64)
            returns = array.astype(float)
        if max_returns and env in max_returns:
            returns = returns * 1000.0 / max_returns[env]
        num_steps, num_seeds = returns.shape
        size = num_steps * num_seeds
        frames.append(
            {
                "env": env,
                "utd": np.full(size, float(utd)),
                "batch_size": np.full(size, int(batch_size)),
                "lr": np.full(size, float(lr)),
                "run": name,
                "size": size,
                "seed": np.tile(np.arange(num_seeds), num_steps),
                "step": np.repeat(steps, num_seeds),
                "return": returns.reshape(-1),
            }
        )
    sizes = [frame.pop("size") for frame in frames]
    columns = {}
    for key in frames[0]:
        if key in ("env", "run"):
            categories = sorted({frame[key] for frame in frames})
            codes = np.repeat([categories.index(frame[key]) for frame in frames], sizes)
            columns[key] = pd.Categorical.from_codes(codes, categories=categories)
        else:
            columns[key] = np.concatenate([frame[key] for frame in frames])
    results = _results([pd.DataFrame(columns)], ["return"])
    layout = "column 0 is the step" if has_steps else f"no step column (row k is step {step_start} + {step_interval} k)"
    results.notes.append(f"{path}: {len(arrays)} files; {layout} ({reason})")
    return results


_STEP_KEYS = ("_step", "step", "Step", "global_step", "env_step", "env_steps")
_RUN_KEYS = ("run", "name", "Name", "run_name", "run_id", "id", "ID")


def load_wandb_csv(
    path: str | os.PathLike, runs_csv: str | os.PathLike | None = None, step_key: str | None = None
) -> Results:
    """Load a CSV exported from Weights & Biases.

    Two shapes are understood:

    - a *panel* export (the chart menu's "Export CSV"): a step column and one column per run named
      ``"<run> - <metric>"`` (the ``__MIN`` / ``__MAX`` companions are ignored);
    - a *history* export (``run.history()`` of several runs concatenated): a run column (``name``, ``run``,
      ``run_id`` ...), a step column, metric columns and optionally config columns.

    Args:
        path: the CSV file.
        runs_csv: optional CSV of the Runs table (a ``Name`` column plus config columns such as ``utd``,
            ``batch_size``, ``seed``), joined on the run name.
        step_key: the step column (default: the first of ``_step``, ``step``, ``Step``, ``global_step``, ...).

    Returns:
        :class:`Results`; a config column ``seed`` becomes the base seed, so runs that differ only in it are
        seeds of one configuration.
    """
    frame = _read_csv(path)
    step_key = step_key or next((k for k in _STEP_KEYS if k in frame.columns), None)
    if step_key is None or step_key not in frame.columns:
        raise ScalerlError(f"{path}: no step column (looked for {', '.join(_STEP_KEYS)}); pass the step key")
    panel = [c for c in frame.columns if " - " in c and not c.endswith(("__MIN", "__MAX"))]
    if panel:
        long = []
        for column in panel:
            run, metric = column.split(" - ", 1)
            part = frame[[step_key, column]].dropna().rename(columns={step_key: "step", column: metric})
            part["run"] = run
            long.append(part)
        table = pd.concat(long, ignore_index=True)
        table = table.groupby(["run", "step"], as_index=False).first()
        metrics = sorted({c.split(" - ", 1)[1] for c in panel})
    else:
        run_key = next((k for k in _RUN_KEYS if k in frame.columns), None)
        table = frame.rename(columns={step_key: "step"})
        if run_key is None:
            table["run"] = os.path.basename(os.fspath(path))
        else:
            table = table.rename(columns={run_key: "run"})
        # A numeric column that changes within a run is a metric; one constant in every run is configuration.
        numeric = [
            c
            for c in table.columns
            if c not in ("step", "run") and canonical_name(c) not in ALIASES and pd.api.types.is_numeric_dtype(table[c])
        ]
        changes = table.groupby("run")[numeric].nunique(dropna=True).max() if numeric else pd.Series(dtype=int)
        metrics = [c for c in numeric if changes[c] > 1]
    table = table.rename(columns={c: canonical_name(c) for c in table.columns if c not in ("run", "step")})
    metrics = [canonical_name(m) for m in metrics]
    if runs_csv is not None:
        runs = _read_csv(runs_csv)
        name_key = next((k for k in _RUN_KEYS if k in runs.columns), None)
        if name_key is None:
            raise ScalerlError(f"{runs_csv}: no run-name column (looked for {', '.join(_RUN_KEYS)})")
        runs = runs.rename(columns={name_key: "run"})
        runs = runs.rename(columns={c: canonical_name(c) for c in runs.columns if c != "run"})
        keep = [c for c in runs.columns if c == "run" or c not in table.columns]
        table = table.merge(runs[keep], on="run", how="left")
    if "seed" in table.columns:
        table = table.rename(columns={"seed": "base_seed"})
    table["seed"] = 0
    table["step"] = pd.to_numeric(table["step"], errors="coerce")
    table = table.dropna(subset=["step"])
    metrics = [m for m in metrics if m in table.columns and m not in NON_CONFIG]
    config = [c for c in table.columns if c not in NON_CONFIG and c not in metrics]
    drop = [c for c in config if table[c].isna().all() or c.startswith("_")]
    table = table.drop(columns=drop)
    return _results([table], metrics)


def _read_csv(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise ScalerlError(f"{path}: not a readable CSV ({error})") from None


def load_source(path: str | os.PathLike, **qscaled_options) -> Results:
    """Load any supported source: a qscaled ``.zip``, a W&B ``.csv`` export, or a directory of run directories."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ScalerlError(f"--source {path}: no such file or directory")
    if path.endswith(".zip"):
        return load_qscaled_zip(path, **qscaled_options)
    if path.endswith(".csv"):
        return load_wandb_csv(path)
    return load_run_dirs([path])


def merge_results(results: Sequence[Results]) -> Results:
    """One table from several sources (configuration columns missing in a source are NaN there)."""
    if len(results) == 1:
        return results[0]
    merged = _results([r.table for r in results], [m for r in results for m in r.metrics])
    merged.notes.extend(note for r in results for note in r.notes)
    return merged


def extract_curves(results: Results, metric: str, config_columns: Sequence[str] | None = None) -> Curves:
    """Per-configuration ``[T, S]`` arrays of ``metric``.

    Args:
        results: the table.
        metric: the metric column, e.g. ``return`` or ``success``.
        config_columns: the columns that define a configuration (default: those that vary).

    Returns:
        :class:`Curves`, configurations in sorted order; seeds are the distinct ``(run, seed)`` pairs.
    """
    table = results.table
    if metric not in table.columns:
        raise ScalerlError(f"--metric: '{metric}' is not a logged metric; found {', '.join(results.metrics) or 'none'}")
    columns = list(config_columns) if config_columns is not None else results.varying()
    table = table[[*columns, "run", "seed", "step", metric]].dropna(subset=[metric])
    seed_code = table.groupby(["run", "seed"], sort=False).ngroup().to_numpy()
    if columns:
        config_code = table.groupby(columns, sort=True, dropna=False).ngroup().to_numpy()
    else:
        config_code = np.zeros(len(table), dtype=np.int64)
    order = np.argsort(config_code, kind="stable")
    bounds = np.flatnonzero(np.diff(config_code[order])) + 1
    step_all, value_all = table["step"].to_numpy(dtype=float), table[metric].to_numpy(dtype=float)
    configs, steps, values = [], [], []
    for rows in np.split(order, bounds) if len(order) else []:
        step_values, step_index = np.unique(step_all[rows], return_inverse=True)
        _, seed_index = np.unique(seed_code[rows], return_inverse=True)
        array = np.full((len(step_values), int(seed_index.max()) + 1), np.nan)
        array[step_index, seed_index] = value_all[rows]
        configs.append(table.iloc[rows[0]][columns].to_dict())
        steps.append(step_values)
        values.append(array)
    return Curves(pd.DataFrame(configs, columns=columns), steps, values)


def format_value(value) -> str:
    """A compact label for a configuration value (``3e-04``, ``256``, ``cheetah-run``)."""
    if isinstance(value, float) and not math.isnan(value):
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}"
    return str(value)
