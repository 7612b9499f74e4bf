"""The run directory: its config check, JSON-lines logs, checkpoints and per-seed keys, for every trainer.

Offline runs (``scalerl train``), online runs (``scalerl online``) and sweep trials share one layout::

    RUN_DIR/config.json                         the run's settings (a resumed run must match them, but for its
                                                length and logging: :data:`RESUME_MAY_CHANGE`)
    RUN_DIR/metrics.jsonl                       one JSON object per line: training losses per (log step, seed) and
                                                the wall time (``time/`` keys, :class:`RunTimer`)
    RUN_DIR/eval.jsonl                          one JSON object per line: evaluation results per (eval step, seed)
    RUN_DIR/checkpoints/step_XXXXXXXX.msgpack   the trainer's state of all seeds (the last few are kept)

Every JSON-lines file is read by :func:`iter_jsonl`. A writer appends a row and its newline together, so a last line
without its newline that is not JSON was cut short by a killed writer and is skipped; any other line that is not a
JSON object is a one-line :class:`~scalerl.errors.ScalerlError` naming the file and line.

JAX and Flax are imported inside the functions that need them, so the analysis commands that read run directories
(``fit``, ``report``, ``sweep``) do not load JAX.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from scalerl.atomic import atomic_write_bytes, atomic_write_json
from scalerl.errors import ScalerlError

if TYPE_CHECKING:
    import jax

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
CHECKPOINT_DIR = "checkpoints"


RESUME_MAY_CHANGE = (
    "train.out",
    "train.steps",
    "train.log_interval",
    "train.eval_interval",
    "train.eval_episodes",
    "train.save_interval",
    "train.keep_checkpoints",
    "train.validate",
    "train.tensorboard",
    "train.wandb_project",
    "online.out",
    "online.steps",
    "online.log_every",
    "online.eval_every",
    "online.eval_episodes",
    "online.validation_steps",
    "model",
)
"""What a resumed run may change: where it lives, how long it trains, and what it logs, evaluates and checkpoints
(nothing here changes the agents' updates, which depend only on ``(seed, update index)``); and the ``model`` section,
derived from the rest. The agent, data, environment, seeds and seed, the replay and UTD settings may not change."""


def check_run_dir(
    run_dir: str,
    saved: dict,
    resume: bool,
    may_change: tuple[str, ...] = RESUME_MAY_CHANGE,
    defaults: dict | None = None,
) -> None:
    """Refuse a run that does not fit ``run_dir``: a new run needs a directory without ``config.json``; a resumed
    run one whose ``config.json`` equals ``saved`` except in ``may_change``, and ``--steps`` no lower than its latest
    checkpoint. Nothing is written; a resumed run then writes ``saved`` as its new ``config.json``.

    Args:
        run_dir: the run directory.
        saved: the ``config.json`` this command writes, in JSON types (``{section: {key: value}}``).
        resume: whether the command continues the run.
        may_change: what may differ on resume: ``section.key`` options (``train.steps``) or whole sections derived
            from the rest (``model``); :data:`RESUME_MAY_CHANGE` by default. A refusal names the differing
            ``section.key`` and the options of ``saved``'s sections that may change.
        defaults: ``{section: {key: default}}`` in JSON types: a key that the run's ``config.json`` lacks (a field
            added to scalerl after the run was made) is no difference when this command sets it to its default,
            which is the behaviour the run had.

    Raises:
        ScalerlError: one line starting ``--resume:``, ``--out:`` or ``--steps:``.
    """
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not resume:
        if os.path.isfile(config_path):
            raise ScalerlError(
                f"--out: {run_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
        return
    if not os.path.isfile(config_path):
        raise ScalerlError(f"--resume: {config_path} not found; nothing to resume")
    previous = read_config(run_dir, flag="--resume")
    changed = [
        key
        for key in _differences(previous, saved)
        if not {key, key.split(".", 1)[0]} & set(may_change)
        and not _new_field_at_default(key, previous, saved, defaults)
    ]
    if changed:
        options = [
            "--" + key.split(".", 1)[1].replace("_", "-")
            for key in may_change
            if "." in key and key.split(".", 1)[0] in saved
        ]
        allowed = f" (only {', '.join(options)} may change on resume)" if options else ""
        raise ScalerlError(f"--resume: {config_path} differs from this command in {', '.join(changed)}{allowed}")
    checkpoints = list_checkpoints(run_dir)
    latest = checkpoints[-1][0] if checkpoints else 0
    for section in ("train", "online"):
        steps = saved.get(section, {}).get("steps", latest)
        if steps < latest:
            raise ScalerlError(
                f"--steps: {run_dir} has a checkpoint at step {latest} and a resumed run continues from it; "
                f"expected --steps >= {latest}, got {steps}"
            )


def _new_field_at_default(key: str, previous: dict, saved: dict, defaults: dict | None) -> bool:
    """Whether ``section.key`` is absent from the old config and set to its default (``defaults``) by this one."""
    section, _, name = key.partition(".")
    section_defaults = (defaults or {}).get(section, {})
    return (
        bool(name)
        and isinstance(previous.get(section), dict)
        and name not in previous[section]
        and name in section_defaults
        and saved.get(section, {}).get(name) == section_defaults[name]
    )


def _differences(previous, saved: dict) -> list[str]:
    """The ``section.key`` (or whole ``section``) where two saved configs differ, a key missing on one side included;
    sorted. Empty exactly when the two are equal."""
    if not isinstance(previous, dict):
        return sorted(saved)
    missing = object()
    changed = []
    for section in previous.keys() | saved.keys():
        old, new = previous.get(section, missing), saved.get(section, missing)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [
                f"{section}.{key}" for key in old.keys() | new.keys() if old.get(key, missing) != new.get(key, missing)
            ]
        elif old != new:
            changed.append(section)
    return sorted(changed)


def read_config(run_dir: str, flag: str = "RUN_DIR") -> dict:
    """The run's ``config.json`` as a dict.

    Raises:
        ScalerlError: one line starting with ``flag``: the file is missing or is not readable JSON.
    """
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ScalerlError(f"{flag}: {config_path} not found; expected a run directory written by scalerl")
    try:
        with open(config_path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise ScalerlError(f"{flag}: {config_path} is not readable JSON ({error})") from None


def write_config(run_dir: str, saved: dict) -> None:
    """Create ``run_dir`` if needed and write ``saved`` as its ``config.json`` (atomically)."""
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_json(os.path.join(run_dir, CONFIG_FILE), saved)


class JsonlLine(NamedTuple):
    """One row of a JSON-lines file: its 1-based line number, its text (with the newline) and the parsed object."""

    number: int
    text: str
    row: dict


def iter_jsonl(path: str, skip_corrupt: bool = False) -> Iterator[JsonlLine]:
    """The rows of a JSON-lines file, blank lines skipped; nothing if the file is absent.

    Args:
        path: the file.
        skip_corrupt: skip every line that is not a JSON object instead of raising (for scans of files that may
            still be written to, such as the sweep's NaN check).

    Raises:
        ScalerlError: ``PATH: line N is not a JSON object`` for a line that is not one, unless ``skip_corrupt`` or it
            is a last line without its newline (a killed writer's partial line, always skipped).
    """
    if not os.path.isfile(path):
        return
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                row = None
            if isinstance(row, dict):
                yield JsonlLine(number, text, row)
            elif text.endswith("\n") and not skip_corrupt:
                raise ScalerlError(f"{path}: line {number} is not a JSON object")


def read_jsonl(path: str, skip_corrupt: bool = False) -> list[dict]:
    """The rows of a JSON-lines file (empty if it is absent); see :func:`iter_jsonl` for what is skipped."""
    return [line.row for line in iter_jsonl(path, skip_corrupt)]


def append_jsonl(path: str, rows: list[dict]) -> None:
    """Append one JSON line per row and fsync, so a checkpoint written afterwards never gets ahead of the log."""
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_jsonl(path: str, max_step: int) -> None:
    """Drop the rows logged after ``max_step`` (a killed run's tail, and any partial last line) so a resumed run's
    file equals an uninterrupted run's. Kept lines keep their bytes; an absent file stays absent."""
    if not os.path.isfile(path):
        return
    kept = [line.text for line in iter_jsonl(path) if line.row["step"] <= max_step]
    atomic_write_bytes(path, "".join(text if text.endswith("\n") else text + "\n" for text in kept).encode())


def has_step(path: str, step: int) -> bool:
    """Whether a JSON-lines file has a row logged at ``step``."""
    return any(row["step"] == step for row in read_jsonl(path))


def info_rows(step: int, info: dict, num_seeds: int, prefix: str = "") -> list[dict]:
    """``{key: [S]}`` per-seed values (device arrays) -> one ``{"step", "seed", prefix + key: float}`` row per seed."""
    import jax

    host = {f"{prefix}{key}": np.asarray(value) for key, value in jax.device_get(info).items()}
    return [
        {"step": step, "seed": s, **{key: float(value[s]) for key, value in host.items()}} for s in range(num_seeds)
    ]


TIME_PREFIX = "time/"
"""Prefix of the wall-time keys of metrics lines; they differ between two otherwise identical runs."""


def without_wall_time(rows: list[dict]) -> list[dict]:
    """``rows`` without their ``time/`` keys: what must be identical between a resumed and an uninterrupted run."""
    return [{key: value for key, value in row.items() if not key.startswith(TIME_PREFIX)} for row in rows]


def logged_total_s(path: str, step: int) -> float:
    """The ``time/total_s`` of the last row of ``path`` logged at or before ``step`` (0 if none): where a resumed
    run's clock continues from."""
    rows = [row for row in read_jsonl(path) if row["step"] <= step and "time/total_s" in row]
    return float(rows[-1]["time/total_s"]) if rows else 0.0


class RunTimer:
    """The wall time of a run for its metrics lines and its last line.

    Every metrics line carries ``time/total_s``, the seconds since the run began (a resumed run adds the total logged
    at its checkpoint, so the time of every session counts once up to it), and ``time/updates_per_s``, the updates
    per second of the interval since the previous line. The first interval with updates also compiles them, so the
    steady rate printed at the end leaves it out (and any interval before it).

    Attributes:
        previous_s: seconds the run had taken before this session (set once a resumed run knows it).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.started = clock()
        self.previous_s = 0.0
        self.updates = 0
        self.compiled = False
        self.steady_updates, self.steady_s = 0, 0.0

    def total_s(self) -> float:
        """Seconds since the run began, earlier sessions included."""
        return self.previous_s + self.clock() - self.started

    def interval(self, updates: int, seconds: float) -> dict:
        """Record an interval of ``updates`` updates that took ``seconds``; returns its line's ``time/`` keys."""
        self.updates += updates
        if self.compiled:
            self.steady_updates += updates
            self.steady_s += seconds
        self.compiled = self.compiled or updates > 0
        rate = updates / seconds if seconds > 0 else 0.0
        return {"time/total_s": round(self.total_s(), 3), "time/updates_per_s": round(rate, 3)}

    def summary(self) -> str:
        """One line: this session's updates and seconds, the steady rate and the run's total seconds."""
        if self.steady_s > 0:
            steady = f"{self.steady_updates / self.steady_s:.1f} updates/s after the first interval (which compiles)"
        else:
            steady = "no steady rate (a single interval)"
        session = self.clock() - self.started
        return f"time: {self.updates} updates in {session:.1f} s, {steady}; run total {self.total_s():.1f} s"


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``[num_seeds]`` keys, ``fold_in(PRNGKey(seed), i)``: seed ``i`` does not depend on how many seeds run."""
    import jax
    import jax.numpy as jnp

    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


def checkpoint_path(run_dir: str, step: int) -> str:
    """``RUN_DIR/checkpoints/step_XXXXXXXX.msgpack``."""
    return os.path.join(run_dir, CHECKPOINT_DIR, f"step_{step:08d}.msgpack")


def save_checkpoint(run_dir: str, step: int, tree, keep: int) -> str:
    """Atomically write ``tree`` (any pytree: agents, or a trainer's whole state) at ``step`` and keep only the last
    ``keep`` checkpoints. Returns the file path."""
    import flax.serialization
    import jax

    path = checkpoint_path(run_dir, step)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_bytes(path, flax.serialization.to_bytes(jax.device_get(tree)))
    for _, old in list_checkpoints(run_dir)[:-keep]:
        os.remove(old)
    return path


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """``[(step, path)]`` of finished checkpoints, oldest first (temporary files are ignored)."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        if name.startswith("step_") and name.endswith(".msgpack"):
            found.append((int(name[len("step_") : -len(".msgpack")]), os.path.join(directory, name)))
    return sorted(found)


def restore_checkpoint(path: str, template):
    """The pytree stored at ``path``, in the structure of ``template``.

    Raises:
        ScalerlError: ``PATH: unreadable checkpoint (...)`` if the file is corrupt or does not fit ``template``.
    """
    import flax.serialization

    with open(path, "rb") as f:
        data = f.read()
    try:
        return flax.serialization.from_bytes(template, data)
    except Exception as error:  # msgpack raises several types on corrupt input
        raise ScalerlError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None
