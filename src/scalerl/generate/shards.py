"""Sharded, parallel, resumable dataset generation: planning, workers (local processes or Ray tasks) and the
manifest's contents.

A dataset is a directory of shards plus its manifest (:mod:`scalerl.manifest`)::

    puzzle-3x3-play-v0-00000.npz        # OGBench layout: observations, actions, terminals, qpos, qvel[, button_states]
    puzzle-3x3-play-v0-00000-val.npz    # its validation companion (10% extra episodes, at least one)
    ...
    manifest.json                       # format "scalerl-dataset/2": plan, size, per-row key specs (the header)
    shards-00000-00010.jsonl            # the journal: the plan, then one record (size, sha256, ...) per finished shard

Shard ``k`` is generated from seed ``base_seed + k`` by one worker, so its bytes depend only on the plan (without its
size) and ``k``'s episode count, never on the number of workers, on the machine that ran it (same software), on
Ray, or on the dataset's total size: a rerun with a larger ``--transitions`` grows the dataset, reusing every full
shard and regenerating only a partial last one; ``--shards A:B`` generates a slice whose directory merges with the
other slices' by copying (``docs/generate.md``). Files are written with :mod:`scalerl.atomic` (a hidden temporary name
in the same directory, fsynced and renamed only when complete); the header is written once per run and every finished
shard appends one line to the run's journal. A rerun checks the recorded shards by size (and sha256 with
``verify``), deletes stale temporary files and generates only what is missing.

Shards are zip-deflated at level 1 (``np.load`` reads them like ``np.savez_compressed`` files): on puzzle-3x3 and
pointmaze this halves the size on disk (cube: -22%), costs under 1% of generation time to write and still reads at
about 200 MB/s. Zip entries carry a fixed timestamp so identical arrays give identical files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import math
import multiprocessing
import os
import queue
import re
import signal
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scalerl.atomic import TEMP_PREFIX, atomic_path
from scalerl.envs import TASKS
from scalerl.errors import ScalerlError
from scalerl.generate.oracles import EpisodeSource, OracleParams, default_preset
from scalerl.manifest import (
    FORMAT,
    FORMAT_V1,
    MANIFEST,
    append_record,
    journal_name,
    list_journals,
    plan_difference,
    read_journal,
    read_manifest,
    repair_journal,
    sha256_file,
    start_journal,
    write_manifest,
)

GENERATOR_VERSION = "1"  # bump when the same plan would produce different bytes
DEFAULT_EPISODES_PER_SHARD = 100
COMPRESSION = "deflate-1"
_ZIP_LEVEL = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_LOCK = ".scalerl-generate.lock"
_SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9}
_SIZE_PATTERN = re.compile(r"(\d+(?:\.\d*)?)([KMB]?)")
_SLICE_PATTERN = re.compile(r"(\d*):(\d*)")
SIZE_FIELDS = ("num_shards", "total_episodes", "val_episodes_per_shard")
"""Identity fields that follow from the dataset's size: a rerun may raise them (grow the dataset), not the rest."""


def parse_size(text: str | int, flag: str = "--transitions") -> int:
    """Parse a positive count such as ``200000``, ``200K``, ``10M``, ``1.5M`` or ``1B`` (decimal units).

    Raises:
        ScalerlError: naming ``flag`` if the text is not a positive whole number with an optional K/M/B suffix.
    """
    cleaned = str(text).strip().upper().replace("_", "")
    match = _SIZE_PATTERN.fullmatch(cleaned)
    expected = "a positive count like 200000, 500K, 10M or 1B"
    if match is None:
        raise ScalerlError(f"{flag}: expected {expected}, got '{text}'")
    number, unit = match.groups()
    value = float(number) * _SIZE_UNITS[unit] if "." in number else int(number) * _SIZE_UNITS[unit]
    if value <= 0 or value != int(value):
        raise ScalerlError(f"{flag}: expected {expected}, got '{text}'")
    return int(value)


def parse_shards(text: str | int | None) -> tuple[int | None, tuple[int | None, int | None] | None]:
    """Read ``--shards``: a number of shards ``N``, or a slice ``A:B`` of the plan's shard indices to generate here
    (shards ``A`` to ``B - 1``; ``A:`` runs to the last shard, ``:B`` starts at 0).

    Returns:
        ``(N, None)`` for a count, ``(None, (A, B))`` for a slice (None for an end left out), ``(None, None)`` for
        no flag.

    Raises:
        ScalerlError: naming ``--shards`` if the text is neither.
    """
    if text is None:
        return None, None
    cleaned = str(text).strip()
    if cleaned.isdigit():
        return int(cleaned), None
    match = _SLICE_PATTERN.fullmatch(cleaned)
    if match is None:
        raise ScalerlError(f"--shards: expected a number of shards N or a slice A:B of shard indices, got '{text}'")
    start, stop = (int(end) if end else None for end in match.groups())
    return None, (start, stop)


def resolve_shard_slice(bounds: tuple[int | None, int | None] | None, num_shards: int) -> tuple[int, int]:
    """The slice ``(start, stop)`` of ``bounds`` (from :func:`parse_shards`) within a plan of ``num_shards`` shards.

    Raises:
        ScalerlError: naming ``--shards`` if the slice is empty or reaches past the plan's last shard.
    """
    start, stop = bounds if bounds is not None else (None, None)
    start = 0 if start is None else start
    stop = num_shards if stop is None else stop
    if not 0 <= start < stop <= num_shards:
        raise ScalerlError(
            f"--shards: slice {start}:{stop} is empty or reaches past the plan's {num_shards} shards (indices "
            f"0 to {num_shards - 1}; size the plan with --transitions or --episodes-per-shard)"
        )
    return start, stop


class ShardLayout:
    """How a plan's episodes fall into shard files; a plan class with ``task``, ``dataset_type``,
    ``episode_length``, ``episodes_per_shard`` and ``total_episodes`` fields inherits it (:class:`DatasetPlan`, the
    horizon testbed's plan)."""

    task: str
    dataset_type: str
    episode_length: int
    episodes_per_shard: int
    total_episodes: int

    @property
    def dataset_name(self) -> str:
        """OGBench's dataset stem, e.g. ``puzzle-3x3-play-v0``."""
        return f"{self.task}-{self.dataset_type}-v0"

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return math.ceil(self.total_episodes / self.episodes_per_shard)

    @property
    def transitions(self) -> int:
        """Training transitions over all shards."""
        return self.total_episodes * self.episode_length

    def episodes(self, index: int) -> int:
        """Training episodes of shard ``index``."""
        return min(self.episodes_per_shard, self.total_episodes - index * self.episodes_per_shard)

    def val_episodes(self, index: int) -> int:
        """Validation episodes of shard ``index``: 10% of its training episodes, at least one."""
        return max(1, self.episodes(index) // 10)

    def shard_file(self, index: int, val: bool = False) -> str:
        """File name of shard ``index`` (or of its validation companion): 5 digits, more only past shard 99999, so
        a file's name never changes when the dataset grows."""
        return f"{self.dataset_name}-{index:05d}{'-val' if val else ''}.npz"


@dataclasses.dataclass(frozen=True)
class DatasetPlan(ShardLayout):
    """Everything that determines a dataset's bytes.

    Attributes:
        task: scalerl task name, e.g. ``puzzle-3x3``.
        dataset_type: ``play``, ``noisy``, ``navigate`` or ``stitch``.
        base_seed: shard ``k`` is generated from seed ``base_seed + k``.
        oracle: oracle parameters.
        episode_length: actions per episode (an episode has ``episode_length + 1`` rows).
        episodes_per_shard: training episodes in every shard but possibly the last.
        total_episodes: training episodes over all shards.
    """

    task: str
    dataset_type: str
    base_seed: int
    oracle: OracleParams
    episode_length: int
    episodes_per_shard: int
    total_episodes: int

    @property
    def env_id(self) -> str:
        """The Gymnasium id of the task."""
        return TASKS[self.task].env_id

    @property
    def val_episodes_per_shard(self) -> int:
        """Validation episodes of a full shard."""
        return self.val_episodes(0)

    def shard_steps(self, index: int) -> int:
        """Environment steps of shard ``index``, its validation companion included (progress units)."""
        return (self.episodes(index) + self.val_episodes(index)) * self.episode_length

    def identity(self) -> dict[str, Any]:
        """The manifest header's plan fields: all must match for a directory to be resumed, all but
        :data:`SIZE_FIELDS` (which may grow) for it to be grown."""
        return {
            "format": FORMAT,
            "generator_version": GENERATOR_VERSION,
            "task": self.task,
            "env_id": self.env_id,
            "dataset_type": self.dataset_type,
            "base_seed": self.base_seed,
            "num_shards": self.num_shards,
            "episodes_per_shard": self.episodes_per_shard,
            "episode_length": self.episode_length,
            "val_episodes_per_shard": self.val_episodes_per_shard,
            "total_episodes": self.total_episodes,
            "oracle": self.oracle.to_json(),
            "compression": COMPRESSION,
        }

    def journal_plan(self) -> dict[str, Any]:
        """What a shard's bytes depend on besides its index and episode count: the identity less its format and
        size; the first line of every shard journal, so slices of different plans are never merged."""
        identity = self.identity()
        return {field: identity[field] for field in identity if field != "format" and field not in SIZE_FIELDS}


def plan_dataset(
    env: str,
    dataset_type: str | None = None,
    transitions: str | int | None = None,
    shards: int | None = None,
    episodes_per_shard: int | None = None,
    seed: int = 0,
    noise: float | None = None,
    p_random_action: float | None = None,
    episode_length: int | None = None,
) -> DatasetPlan:
    """Validate the generation flags and work out the shard layout.

    Size: ``transitions`` (rounded up to whole episodes), or ``shards`` x ``episodes_per_shard``, or OGBench's
    published size when neither is given. Given ``transitions`` and ``shards``, every shard gets the same number of
    episodes (the total is rounded up to a multiple of ``shards``); otherwise all shards but the last hold
    ``episodes_per_shard`` episodes (default: 100, halved down for small datasets so they still have two shards).

    Args:
        env: task or dataset name (``puzzle-3x3`` or ``puzzle-3x3-play``).
        dataset_type: dataset type; defaults to the one in ``env``, else the task's first type.
        transitions: training transitions, e.g. ``"10M"``.
        shards: number of shards.
        episodes_per_shard: training episodes per shard.
        seed: base seed.
        noise: override of the oracle's noise level.
        p_random_action: override of the random-action probability (OGBench uses it for ``noisy``).
        episode_length: override of the actions per episode.

    Raises:
        ScalerlError: a one-line message naming the offending flag.
    """
    from scalerl.envs import parse_env_name

    parsed = parse_env_name(env)
    task = parsed.task
    if dataset_type is None:
        dataset_type = parsed.dataset_type or task.types[0]
    elif parsed.dataset_type is not None and parsed.dataset_type != dataset_type:
        raise ScalerlError(f"--type: '{dataset_type}' contradicts the type in --env '{env}'")
    if dataset_type not in task.types:
        raise ScalerlError(f"--type: '{dataset_type}' is not available for {task.name}; expected one of {task.types}")
    preset = default_preset(task, dataset_type)

    oracle = preset.oracle
    if noise is not None:
        if not (math.isfinite(noise) and noise >= 0):
            raise ScalerlError(f"--noise: expected a non-negative number, got {noise}")
        oracle = dataclasses.replace(oracle, noise=float(noise))
    if p_random_action is not None:
        if not 0.0 <= p_random_action <= 1.0:
            raise ScalerlError(f"--p-random-action: expected a probability in [0, 1], got {p_random_action}")
        oracle = dataclasses.replace(oracle, p_random_action=float(p_random_action))
    if episode_length is None:
        episode_length = preset.episode_length
    elif episode_length < 1:
        raise ScalerlError(f"--episode-length: expected a positive integer, got {episode_length}")
    if seed < 0:
        raise ScalerlError(f"--seed: expected a non-negative integer, got {seed}")
    if shards is not None and shards < 1:
        raise ScalerlError(f"--shards: expected a positive integer, got {shards}")
    if episodes_per_shard is not None and episodes_per_shard < 1:
        raise ScalerlError(f"--episodes-per-shard: expected a positive integer, got {episodes_per_shard}")

    if transitions is not None:
        if shards is not None and episodes_per_shard is not None:
            raise ScalerlError("--transitions: give either --transitions or --shards with --episodes-per-shard")
        total = math.ceil(parse_size(transitions) / episode_length)
        if shards is not None:
            episodes_per_shard = math.ceil(total / shards)
            total = episodes_per_shard * shards
    elif shards is not None and episodes_per_shard is not None:
        total = shards * episodes_per_shard
    else:
        total = math.ceil(preset.episodes * preset.episode_length / episode_length)
        if shards is not None:
            episodes_per_shard = math.ceil(total / shards)
            total = episodes_per_shard * shards
    if episodes_per_shard is None:
        episodes_per_shard = min(DEFAULT_EPISODES_PER_SHARD, max(1, math.ceil(total / 2)))
    return DatasetPlan(
        task=task.name,
        dataset_type=dataset_type,
        base_seed=seed,
        oracle=oracle,
        episode_length=episode_length,
        episodes_per_shard=episodes_per_shard,
        total_episodes=total,
    )


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a deflated ``.npz`` whose bytes depend only on the arrays and their order."""
    with open(path, "wb") as file:
        with zipfile.ZipFile(file, "w") as archive:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                archive.writestr(info, buffer.getbuffer(), compresslevel=_ZIP_LEVEL)
        file.flush()
        os.fsync(file.fileno())


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """One shard to generate (picklable, sent to a worker process)."""

    plan: DatasetPlan
    index: int
    out_dir: str

    @property
    def seed(self) -> int:
        """The shard's seed, ``base_seed + index``."""
        return self.plan.base_seed + self.index


def generate_shard(job: ShardJob, progress: Callable[[int], None] | None = None) -> dict:
    """Generate shard ``job.index`` and its validation companion, write both atomically, return their record.

    Args:
        job: the shard.
        progress: called with the number of transitions after every episode.

    Returns:
        The manifest record of the shard, plus ``"keys"`` (per-row shape and dtype of every array).
    """
    plan = job.plan
    source = EpisodeSource(plan.task, plan.dataset_type, plan.oracle, plan.episode_length, job.seed)
    rows_per_episode = source.rows_per_episode
    splits = {}
    try:
        for split, episodes in (("train", plan.episodes(job.index)), ("val", plan.val_episodes(job.index))):
            arrays = source.allocate(episodes)
            for episode in range(episodes):
                source.rollout(arrays, episode * rows_per_episode)
                if progress is not None:
                    progress(plan.episode_length)
            splits[split] = arrays
    finally:
        source.close()

    out_dir = Path(job.out_dir)
    record: dict[str, Any] = {"index": job.index, "seed": job.seed}
    # The inner block renames its file first, so the companion comes first: a training file under its final name
    # always has its val file beside it.
    with (
        atomic_path(out_dir / plan.shard_file(job.index)) as train_temp,
        atomic_path(out_dir / plan.shard_file(job.index, val=True)) as val_temp,
    ):
        for split, temp in (("val", val_temp), ("train", train_temp)):
            write_npz(temp, splits[split])
            episodes = len(splits[split]["terminals"]) // rows_per_episode
            entry = {
                "file": plan.shard_file(job.index, val=split == "val"),
                "rows": episodes * rows_per_episode,
                "transitions": episodes * plan.episode_length,
                "episodes": episodes,
                "sha256": sha256_file(temp),
                "bytes": os.path.getsize(temp),
            }
            if split == "val":
                record["val"] = entry
            else:
                record.update(entry)
    record["keys"] = {key: {"shape": list(shape), "dtype": dtype} for key, (shape, dtype) in source.key_specs.items()}
    return _ordered_record(record)


def _ordered_record(record: dict) -> dict:
    order = ("index", "seed", "file", "rows", "transitions", "episodes", "sha256", "bytes", "val", "keys")
    return {key: record[key] for key in order if key in record}


def _worker_main(jobs, results, parent_pid: int) -> None:
    """Worker process: generate shards from ``jobs`` until a ``None``, report on ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    _die_with_parent(parent_pid)

    def progress(transitions: int) -> None:
        if os.getppid() != parent_pid:  # orphaned (parent SIGKILLed): stop instead of finishing the shard
            os._exit(1)
        results.put(("progress", transitions))

    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            results.put(("done", generate_shard(job, progress)))
        except BaseException:  # noqa: BLE001  (report any failure to the parent, then stop)
            results.put(("error", (job.index, traceback.format_exc())))
            return


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start spawned workers without re-running ``__main__`` (the ``scalerl`` script would import all of the CLI,
    JAX included, in every worker); workers only need :mod:`scalerl.generate`."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None  # multiprocessing reads it unconditionally
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _run_workers(jobs: list[ShardJob], workers: int, on_progress, on_done) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited MuJoCo / JAX state
    job_queue, results = context.Queue(), context.Queue()
    for job in jobs:
        job_queue.put(job)
    workers = max(1, min(workers, len(jobs)))
    for _ in range(workers):
        job_queue.put(None)
    processes = [
        context.Process(target=_worker_main, args=(job_queue, results, os.getpid()), daemon=True)
        for _ in range(workers)
    ]
    with _main_module_hidden():
        for process in processes:
            process.start()
    remaining = {job.index for job in jobs}
    try:
        while remaining:
            try:
                kind, payload = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a generation worker died (exit code {dead[0]})") from None
                continue
            if kind == "progress":
                on_progress(payload)
            elif kind == "done":
                remaining.discard(payload["index"])
                on_done(payload)
            else:
                index, trace = payload
                raise RuntimeError(f"shard {index} failed in a worker:\n{trace}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two runs never write into it at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    path = directory / _LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:  # the lock file was replaced by a finishing run
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise ScalerlError(f"--out: another 'scalerl generate' is writing to {directory}") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


def _run_ray(ray, jobs: list[ShardJob], workers: int | None, on_done) -> None:
    """Generate ``jobs`` as Ray tasks (one CPU each, at most ``workers`` at a time; default: the cluster's CPUs),
    calling ``on_done`` with each record on the driver as its task finishes.

    A task lost with its node is retried by Ray (shard files are written atomically and deterministically, so a
    retry writes the same bytes); an exception inside a task stops the run, its finished shards recorded.
    """
    task = ray.remote(num_cpus=1, max_retries=2, retry_exceptions=False)(generate_shard)
    capacity = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    waiting = list(jobs)
    running: dict[Any, ShardJob] = {}
    try:
        while waiting or running:
            while waiting and len(running) < capacity:
                job = waiting.pop(0)
                running[task.remote(job)] = job
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for reference in ready:
                job = running.pop(reference)
                try:
                    record = ray.get(reference)
                except ray.exceptions.RayError as error:
                    message = " ".join(str(error).split())[:300]
                    raise RuntimeError(f"shard {job.index} failed on Ray ({type(error).__name__}): {message}") from None
                on_done(record)
    finally:
        for reference in running:
            with contextlib.suppress(Exception):
                ray.cancel(reference, force=True)


def _shard_is_intact(directory: Path, record: dict, check_hash: bool) -> bool:
    """Whether both files of a recorded shard exist with the recorded size (and sha256, if ``check_hash``)."""
    for entry in (record, record.get("val") or {}):
        path = directory / str(entry.get("file", ""))
        if not entry.get("file") or not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return False
        if check_hash and sha256_file(path) != entry.get("sha256"):
            return False
    return True


def _fits_plan(record: dict, plan: DatasetPlan) -> bool:
    """Whether a record describes shard ``record['index']`` of ``plan``: its files' names and episode counts (a
    partial last shard of a smaller plan does not fit a grown one)."""
    index, val = record.get("index"), record.get("val") or {}
    return (
        isinstance(index, int)
        and 0 <= index < plan.num_shards
        and record.get("file") == plan.shard_file(index)
        and record.get("episodes") == plan.episodes(index)
        and val.get("file") == plan.shard_file(index, val=True)
        and val.get("episodes") == plan.val_episodes(index)
    )


def _existing(directory: Path, plan: DatasetPlan) -> tuple[dict | None, list[tuple[Path, list[dict]]]]:
    """The header and the journals (path, records) of a directory holding ``plan``'s dataset, possibly smaller.

    Raises:
        ScalerlError: one line if ``directory`` holds anything else: a file, ``.npz`` files without a manifest, a
            dataset of another plan (naming the first field that differs), a larger dataset of this plan (a dataset
            grows but never shrinks), or a journal written for another plan (naming it).
    """
    if directory.exists() and not directory.is_dir():
        raise ScalerlError(f"--out: {directory} exists and is not a directory")
    header = read_manifest(directory, journals=False) if directory.is_dir() else None
    if header is None:
        if directory.is_dir() and (any(directory.glob("*.npz")) or list_journals(directory)):
            raise ScalerlError(f"--out: {directory} holds .npz files but no {MANIFEST}; refusing to write into it")
        return None, []
    if header.get("format") not in (FORMAT, FORMAT_V1):
        raise ScalerlError(f"--out: {directory / MANIFEST} has format {header.get('format')!r}; expected '{FORMAT}'")
    for field, wanted in plan.identity().items():
        if field != "format" and field not in SIZE_FIELDS and header.get(field) != wanted:
            raise ScalerlError(
                f"--out: {directory} holds a different dataset ({field}: {header.get(field)!r}, this run: "
                f"{wanted!r}); use another --out or delete it"
            )
    if not isinstance(header.get("total_episodes"), int) or header["total_episodes"] > plan.total_episodes:
        raise ScalerlError(
            f"--transitions: {directory} holds a larger dataset (total_episodes: {header.get('total_episodes')!r}, "
            f"this run: {plan.total_episodes}); a dataset grows but never shrinks: use another --out"
        )
    journals = []
    if isinstance(header.get("shards"), list):  # format 1: the records live in manifest.json itself
        journals.append((directory / MANIFEST, header["shards"]))
    for path in list_journals(directory):
        journal_plan, records = read_journal(path)
        difference = plan_difference(journal_plan, plan.journal_plan())
        if difference is not None:
            raise ScalerlError(
                f"--out: {path} was written for another dataset ({difference}, journal vs this run); merge only "
                "slices of one plan into a directory"
            )
        journals.append((path, records))
    return header, journals


def _reusable_shards(
    directory: Path,
    plan: DatasetPlan,
    journals: list[tuple[Path, list[dict]]],
    shard_slice: tuple[int, int],
    verify: bool,
) -> tuple[dict[int, dict], bool]:
    """The recorded shards to keep, and whether the journals need rewriting (a record dropped or a conflict resolved).

    Records that do not fit ``plan`` (a smaller plan's partial last shard) are dropped. Shards in ``shard_slice`` are
    checked on disk by size (and sha256 if ``verify``); shards outside it are another run's business and kept as
    recorded, unless two journals record one differently (slices of different software merged): then the record
    whose sha256 matches the file is kept.
    """
    start, stop = shard_slice
    options: dict[int, list[dict]] = {}
    for _, records in journals:
        for record in records:
            kept = options.setdefault(record["index"], [])
            if record not in kept:  # identical records of overlapping slices count once
                kept.append(record)
    rewrite = any(path.name == MANIFEST for path, _ in journals)  # format 1: move its records into a journal
    checks: list[tuple[int, dict, bool]] = []
    reusable: dict[int, dict] = {}
    for index, records in options.items():
        fitting = [record for record in records if _fits_plan(record, plan)]
        rewrite = rewrite or len(fitting) < len(records)
        if len(fitting) == 1 and not start <= index < stop:
            reusable[index] = fitting[0]
        else:
            checks += [(index, record, verify or len(fitting) > 1) for record in fitting]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        intact = list(pool.map(lambda check: _shard_is_intact(directory, check[1], check[2]), checks))
    for (index, record, _), ok in zip(checks, intact):
        if ok and index not in reusable:
            reusable[index] = record
        else:
            rewrite = True
    return reusable, rewrite


def _header(plan: DatasetPlan, keys: dict) -> dict:
    """The manifest header of ``plan``: its identity, name, size, software versions and per-row key specs."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    header = plan.identity()
    header.update(
        {
            "dataset_name": plan.dataset_name,
            "transitions": plan.transitions,
            "software": {
                "scalerl": installed("scalerl"),
                "ogbench": installed("ogbench"),
                "mujoco": installed("mujoco"),
                "numpy": np.__version__,
            },
            "keys": keys,
        }
    )
    return header


@dataclasses.dataclass
class GenerationResult:
    """What :func:`generate_dataset` did.

    Attributes:
        manifest: the final manifest (:func:`scalerl.manifest.read_manifest`: header and all recorded shards).
        generated: indices of the shards generated by this run.
        reused: indices of the run's slice found intact from an earlier run (by size, or sha256 with ``verify``).
    """

    manifest: dict
    generated: list[int]
    reused: list[int]

    @property
    def bytes(self) -> int:
        """Size on disk of all recorded shard files."""
        return sum(shard["bytes"] + shard["val"]["bytes"] for shard in self.manifest["shards"])


def generate_dataset(
    plan: DatasetPlan,
    out_dir: str | os.PathLike,
    workers: int | None = None,
    progress_bar: bool = True,
    shard_slice: tuple[int, int] | None = None,
    verify: bool = False,
    ray_address: str | None = None,
) -> GenerationResult:
    """Generate (finish, or grow) the dataset described by ``plan`` in ``out_dir``.

    Args:
        plan: the dataset. A directory holding a smaller dataset of the same plan grows to this size.
        out_dir: the dataset directory.
        workers: local worker processes (default: all CPU cores), or with ``ray_address`` the most shards in flight
            (default: the cluster's CPUs).
        progress_bar: show the aggregated progress bar.
        shard_slice: ``(start, stop)``: generate only shards ``start`` to ``stop - 1`` (default: all).
        verify: check the sha256 of the slice's recorded shards before reusing them (default: their sizes only).
        ray_address: run each shard as a Ray task on this cluster (``local``, ``auto`` or an address); ``out_dir``
            must then be the same shared directory on every node.

    Raises:
        ScalerlError: before anything is written, if ``out_dir`` holds a different or larger dataset, is locked by
            another run or is not a directory, the slice is not within the plan, or Ray cannot be reached.
    """
    from scalerl import progress

    if workers is not None and workers < 1:
        raise ScalerlError(f"--workers: expected a positive integer, got {workers}")
    start, stop = resolve_shard_slice(shard_slice, plan.num_shards)
    directory = Path(out_dir)
    _existing(directory, plan)  # refuse before touching anything
    ray, owns_ray = (None, False)
    if ray_address:
        from scalerl.scaling.sweep import connect_ray

        ray, owns_ray = connect_ray(ray_address)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _exclusive(directory):
            previous, journals = _existing(directory, plan)
            for stale in directory.glob(TEMP_PREFIX + "*"):
                stale.unlink()
            reusable, rewrite = _reusable_shards(directory, plan, journals, (start, stop), verify)
            journal = directory / journal_name(start, stop)
            if rewrite:  # rare (a shard dropped, a format-1 manifest): one rewrite, then only appends
                start_journal(journal, plan.journal_plan(), [reusable[index] for index in sorted(reusable)])
                for path, _ in journals:
                    if path.name != MANIFEST and path != journal:
                        path.unlink()
            elif journal.exists():
                repair_journal(journal)
            header = _header(plan, keys=(previous or {}).get("keys") or {})
            write_manifest(directory, header)

            todo = [index for index in range(start, stop) if index not in reusable]
            reused = [index for index in range(start, stop) if index in reusable]
            bar = progress.progress_bar(
                sum(plan.shard_steps(index) for index in range(start, stop)),
                initial=sum(plan.shard_steps(index) for index in reused),
                unit=" transitions",
                unit_scale=True,
                desc=plan.dataset_name,
                enabled=progress_bar and bool(todo),
                smoothing=0.05,
            )

            def on_done(record: dict) -> None:
                keys = record.pop("keys")
                if header["keys"] and header["keys"] != keys:
                    raise RuntimeError(f"shard {record['index']} has keys {keys}, expected {header['keys']}")
                if not header["keys"]:  # the first shard of a new dataset: the header learns its key specs, once
                    header["keys"] = keys
                    write_manifest(directory, header)
                if not journal.exists():
                    start_journal(journal, plan.journal_plan(), [])
                append_record(journal, record)  # O(1) per shard: one line appended
                if ray is not None:
                    bar.update(plan.shard_steps(record["index"]))

            with bar:
                if todo:
                    out = str(directory.absolute())  # Ray tasks may run in another working directory
                    jobs = [ShardJob(plan=plan, index=index, out_dir=out) for index in todo]
                    if ray is not None:
                        _run_ray(ray, jobs, workers, on_done)
                    else:
                        _run_workers(jobs, workers or os.cpu_count() or 1, bar.update, on_done)
    finally:
        if owns_ray:
            ray.shutdown()
    return GenerationResult(manifest=read_manifest(directory), generated=todo, reused=reused)
