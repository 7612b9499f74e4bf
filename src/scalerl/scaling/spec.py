"""Sweep files: a grid of named axes (x seeds), fixed parameters and the command each trial runs.

A sweep file is TOML (YAML too when PyYAML is installed)::

    name = "utd-sweep"                      # default: the file's stem
    command = "scalerl train --agent sharsa --env {env} --data {data} --out {trial_dir} --seed {seed}"
    seeds = 2                               # or [0, 1, 2]; omit for no seed axis
    max_retries = 2                         # extra attempts per invocation for a failing trial
    timeout = 3600                          # seconds per attempt, 0 for none

    [grid]                                  # every combination is a trial
    batch_size = [256, 1024]
    subgoal_steps = [10, 25, 50]

    [params]                                # fixed values, usable as {placeholders}
    env = "puzzle-3x3-play-oraclerep"
    data = "data/puzzle-3x3-play-v0"

    [env]                                   # environment variables of every trial
    XLA_PYTHON_CLIENT_PREALLOCATE = "false"

Placeholders: every grid axis and param, ``{seed}``, ``{trial_dir}`` (absolute), ``{trial_name}``, ``{sweep_dir}``,
``{attempt}`` and ``{python}`` (this interpreter). Values are shell-quoted; a list value becomes space-separated
words (``hidden_dims = [[256, 256], [512, 512]]`` gives ``--agent.hidden-dims 256 256``). Every problem is a one-line
:class:`~scalerl.envs.ScalerlError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shlex
import shutil
import string
import sys

from scalerl.errors import ScalerlError

KEYS = {
    "name": "sweep name (default: the file's stem)",
    "command": "command template each trial runs",
    "grid": "table of axis = [values]; every combination is a trial",
    "params": "table of fixed values usable as placeholders",
    "seeds": "number of seeds or list of seeds (adds the {seed} axis)",
    "env": "table of environment variables for every trial",
    "shell": "run the command through /bin/sh (pipes, &&, redirections)",
    "cwd": "working directory of the trials (default: where the sweep is started)",
    "max_retries": "extra attempts per invocation for a failing trial",
    "timeout": "seconds per attempt (0: no limit)",
    "workers": "trials at a time when running locally (default: CPU count)",
    "nan_check": "files in the trial directory scanned for NaN / inf values (JSON lines)",
    "on_retry": "'clean' (remove the failed attempt's outputs) or 'keep'",
    "cpus_per_trial": "Ray: CPUs reserved per trial",
    "gpus_per_trial": "Ray: GPUs reserved per trial",
    "out": "sweep directory (default: sweeps/<name>)",
}
"""Every top-level key a sweep file may have, with what it means."""

RESERVED = ("seed", "trial_dir", "trial_name", "sweep_dir", "attempt", "python")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHELL_BUILTINS = {"cd", "exec", "export", "set", "true", "false", "test", "[", "echo", "exit", "source", ".", "eval"}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated sweep file.

    Attributes:
        name: the sweep's name.
        command: the command template.
        grid: ``{axis: [values]}`` in file order.
        params: fixed ``{name: value}``.
        seeds: the seed axis (empty: none).
        env: environment variables of every trial.
        shell: run through ``/bin/sh -c``.
        cwd: working directory of the trials (None: the current one).
        max_retries: extra attempts per invocation.
        timeout: seconds per attempt (0: none).
        workers: local concurrency (None: CPU count).
        nan_check: trial files scanned for NaN / inf.
        on_retry: ``clean`` or ``keep``.
        cpus_per_trial: Ray CPUs per trial.
        gpus_per_trial: Ray GPUs per trial.
        out: sweep directory from the file (None: ``sweeps/<name>``).
        path: the file it came from.
    """

    name: str
    command: str
    grid: dict[str, list]
    params: dict[str, object] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    shell: bool = False
    cwd: str | None = None
    max_retries: int = 2
    timeout: float = 0.0
    workers: int | None = None
    nan_check: tuple[str, ...] = ("metrics.jsonl", "eval.jsonl")
    on_retry: str = "clean"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    out: str | None = None
    path: str = "<sweep>"

    def trials(self) -> list[Trial]:
        """Every (grid point, seed) combination, in file order, seeds innermost."""
        axes = list(self.grid)
        seeds = self.seeds or (None,)
        trials = []
        for values in itertools.product(*(self.grid[axis] for axis in axes)):
            for seed in seeds:
                params = dict(zip(axes, values))
                if seed is not None:
                    params["seed"] = seed
                trials.append(Trial(trial_name(params), params))
        names = [t.name for t in trials]
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise ScalerlError(f"{self.path}: grid: two trials get the name '{duplicate}'; make the values distinct")
        return trials

    def render(self, trial: Trial, trial_dir: str, sweep_dir: str, attempt: int = 1) -> str:
        """The command of one trial with every placeholder filled in (values shell-quoted)."""
        values = {**self.params, **trial.params}
        values.update(
            trial_dir=os.path.abspath(trial_dir),
            trial_name=trial.name,
            sweep_dir=os.path.abspath(sweep_dir),
            attempt=attempt,
            python=sys.executable,
        )
        return self.command.format(**{key: _quote(value) for key, value in values.items()})


@dataclasses.dataclass(frozen=True)
class Trial:
    """One grid point (and seed): its directory name and parameter values."""

    name: str
    params: dict


def _format_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value == float(f"{value:g}") else repr(value)
    return str(value)


def _quote(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(_format_scalar(v)) for v in value)
    return shlex.quote(_format_scalar(value))


def trial_name(params: dict) -> str:
    """A directory name from parameter values: ``batch_size=256__lr=0.0003__seed=0``."""
    parts = []
    for key, value in params.items():
        text = "x".join(_format_scalar(v) for v in value) if isinstance(value, (list, tuple)) else _format_scalar(value)
        parts.append(f"{key}={text}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "__".join(parts)) or "trial"


def _check_value(path: str, where: str, value) -> None:
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return
    if isinstance(value, list) and value and all(isinstance(v, scalar) for v in value):
        return
    raise ScalerlError(f"{path}: {where}: expected a number, string, boolean or a list of them, got {value!r}")


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ScalerlError(f"{path}: cannot read the sweep file ({error.strerror})") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ScalerlError(f"{path}: YAML sweep files need PyYAML (pip install pyyaml); or use TOML") from None
        try:
            data = yaml.safe_load(raw) or {}
        except yaml.YAMLError as error:
            raise ScalerlError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ScalerlError(
                    f"{path}: TOML sweep files need Python >= 3.11 or tomli (pip install tomli)"
                ) from None
        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ScalerlError(f"{path}: not valid TOML ({error})") from None
    if not isinstance(data, dict):
        raise ScalerlError(f"{path}: expected a table of keys at the top level")
    return data


def _table(path: str, data: dict, key: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ScalerlError(f"{path}: {key}: expected a table ([{key}] section)")
    return value


def _number(path: str, data: dict, key: str, default, kind=int, minimum=0):
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ScalerlError(f"{path}: {key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if value < minimum:
        raise ScalerlError(f"{path}: {key}: expected at least {minimum}, got {value}")
    return kind(value)


def load_spec(path: str | os.PathLike, check_executable: bool = True) -> SweepSpec:
    """Read and validate a sweep file.

    Args:
        path: a ``.toml`` (or ``.yaml`` / ``.yml``) file.
        check_executable: fail if the command's program is not found.

    Raises:
        ScalerlError: one line naming the file and the key for every problem (unknown key, empty grid, unknown
            placeholder, missing executable, wrong type).
    """
    path = os.fspath(path)
    data = _read(path)
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ScalerlError(f"{path}: unknown key '{unknown[0]}'; allowed keys: {', '.join(KEYS)}")
    command = data.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ScalerlError(f"{path}: command: expected the command template as a non-empty string")
    grid = _table(path, data, "grid")
    if not grid:
        raise ScalerlError(f"{path}: grid: empty; give at least one axis, e.g. [grid] utd = [1, 2, 4]")
    for axis, values in grid.items():
        if not _NAME.match(axis) or axis in RESERVED:
            raise ScalerlError(f"{path}: grid.{axis}: not a usable axis name (letters, digits, _; not {RESERVED})")
        if not isinstance(values, list) or not values:
            raise ScalerlError(f"{path}: grid.{axis}: expected a non-empty list of values")
        for value in values:
            _check_value(path, f"grid.{axis}", value)
    params = _table(path, data, "params")
    for key, value in params.items():
        if not _NAME.match(key) or key in RESERVED:
            raise ScalerlError(f"{path}: params.{key}: not a usable name (letters, digits, _; not {RESERVED})")
        if key in grid:
            raise ScalerlError(f"{path}: params.{key}: also a grid axis; keep it in one place")
        _check_value(path, f"params.{key}", value)
    seeds = data.get("seeds", ())
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise ScalerlError(f"{path}: seeds: expected a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ScalerlError(f"{path}: seeds: expected at least 1, got {seeds}")
        seeds = tuple(range(seeds))
    elif not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        raise ScalerlError(f"{path}: seeds: expected distinct integers, got {seeds!r}")
    env = _table(path, data, "env")
    env = {str(k): _format_scalar(v) for k, v in env.items()}
    nan_check = data.get("nan_check", ["metrics.jsonl", "eval.jsonl"])
    if not isinstance(nan_check, list) or not all(isinstance(f, str) for f in nan_check):
        raise ScalerlError(f"{path}: nan_check: expected a list of file names")
    on_retry = data.get("on_retry", "clean")
    if on_retry not in ("clean", "keep"):
        raise ScalerlError(f"{path}: on_retry: expected 'clean' or 'keep', got {on_retry!r}")
    for key in ("shell",):
        if key in data and not isinstance(data[key], bool):
            raise ScalerlError(f"{path}: {key}: expected true or false")
    for key in ("name", "cwd", "out"):
        if key in data and not isinstance(data[key], str):
            raise ScalerlError(f"{path}: {key}: expected a string")
    spec = SweepSpec(
        name=data.get("name") or os.path.splitext(os.path.basename(path))[0],
        command=command,
        grid=dict(grid),
        params=dict(params),
        seeds=tuple(seeds),
        env=env,
        shell=bool(data.get("shell", False)),
        cwd=data.get("cwd"),
        max_retries=_number(path, data, "max_retries", 2),
        timeout=_number(path, data, "timeout", 0.0, float),
        workers=_number(path, data, "workers", None, int, 1),
        nan_check=tuple(nan_check),
        on_retry=on_retry,
        cpus_per_trial=_number(path, data, "cpus_per_trial", 1.0, float),
        gpus_per_trial=_number(path, data, "gpus_per_trial", 0.0, float),
        out=data.get("out"),
        path=path,
    )
    _check_placeholders(spec)
    trials = spec.trials()
    if check_executable:
        _check_executable(spec, spec.render(trials[0], "trial", "sweep"))
    return spec


def _check_placeholders(spec: SweepSpec) -> None:
    known = set(spec.grid) | set(spec.params) | set(RESERVED) - ({"seed"} if not spec.seeds else set())
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(spec.command) if field is not None]
    except ValueError as error:
        raise ScalerlError(
            f"{spec.path}: command: bad placeholder syntax ({error}); write {{{{ and }}}} for braces"
        ) from None
    for field in fields:
        name = re.split(r"[.\[!:]", field, maxsplit=1)[0]
        if name not in known:
            hint = " (add seeds = N)" if name == "seed" else ""
            raise ScalerlError(
                f"{spec.path}: command: unknown placeholder {{{field}}}{hint}; known: {', '.join(sorted(known))}"
            )


def _check_executable(spec: SweepSpec, rendered: str) -> None:
    try:
        words = shlex.split(rendered)
    except ValueError as error:
        raise ScalerlError(f"{spec.path}: command: cannot be split into words ({error})") from None
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if not words:
        raise ScalerlError(f"{spec.path}: command: no program to run")
    program = words[0]
    if spec.shell and program in _SHELL_BUILTINS:
        return
    search_path = {**os.environ, **spec.env}.get("PATH", os.defpath)
    if os.sep in program:
        base = spec.cwd or os.getcwd()
        full = program if os.path.isabs(program) else os.path.join(base, program)
        found = os.path.isfile(full) and os.access(full, os.X_OK)
    else:
        found = shutil.which(program, path=search_path) is not None
    if not found:
        raise ScalerlError(f"{spec.path}: command: executable '{program}' not found (not on PATH or not executable)")
