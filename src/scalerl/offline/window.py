"""Training data larger than the device: a streaming window of store blocks, and the reference's one-file rotation.

Park et al. (2025, *Horizon Reduction Makes RL Scalable*) train on 1B transitions by holding one 1M-transition file in
memory and moving to the next file of the sorted list every ``dataset_replace_interval`` updates (1000; 4000 for
humanoidmaze-giant), each batch drawn from that one file, the validation batch from its ``-val`` companion. scalerl
offers that path for exact reproduction (``--rotation N``) and, as its own streaming path, a window (``--window``):

* The window is a :class:`scalerl.data.Dataset` of fixed shape held on the device: ``W`` slots, each with room for the
  largest block of the store (``S`` rows, ``V`` valid transitions). A block is whole episodes, so its trajectory
  ends, written relative to the window, never leave its slot and :func:`scalerl.sampling.sample_batch` works on the
  window unchanged; every batch mixes all ``W`` blocks. Rows of a slot beyond its block are never sampled (their
  trajectory end is themselves); a block with fewer than ``V`` valid transitions repeats some of them in the slot's
  ``valid_idxs`` segment, spread evenly (at most one episode's worth per block when the packer splits files evenly),
  so each slot carries a ``1 / W`` share of every batch.
* Schedule: the blocks form a stream, epoch ``e`` being a permutation of all blocks drawn from ``(seed, e)`` by a
  fixed integer hash (the same on every machine and library version); the window after refresh ``r`` holds stream
  positions ``[r * k, r * k + W)``, position ``p`` in slot ``p mod W``. Refresh ``r`` happens before update
  ``r * R`` (``R = --window-refresh`` updates, by default a block's transitions over the batch size, so that the store
  streams through the window once per epoch-equivalent; ``k = --refresh-blocks``). So the window of update ``t``
  is a pure function of ``(seed, t)`` and a resumed run equals an uninterrupted one; every stream position stays in
  the window for the same number of updates (``W / k`` refreshes when ``k`` divides ``W``), so over whole epochs
  every block gets the same exposure; the whole store passes through the window every ``n / k`` refreshes.
* A background thread reads the next refreshes' blocks (plain reads of the store's ``.npy`` files: only the OS page
  cache holds them), puts them on the device and queues them (``PREFETCH`` refreshes ahead, which bounds host memory);
  the host loop writes them into their slots between fused chunks with one small jitted, donated update per block.
  The jitted training chunk takes the window as an argument, so it compiles once.

Where this differs from the reference: batches mix ``W`` blocks rather than one file; random goals come from the
window (the reference: from the current file); the window never reloads what it already holds. ``--rotation`` keeps
the reference's behaviour, with scalerl's per-update keys instead of NumPy's global generator.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import queue
import threading
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scalerl.data import Dataset, check_store, device_dataset, load_dataset
from scalerl.errors import ScalerlError
from scalerl.store import Block, Store, is_store

PREFETCH = 2
"""Refreshes read ahead by the background thread."""
READ_THREADS = 4
"""Threads reading the first window's blocks."""
INDEX_BYTES = 4
"""Bytes per row of ``traj_ends`` and per entry of ``valid_idxs`` on the device (int32)."""
_BYTE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


# ---------------------------------------------------------------------------------------------------------- schedule


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed bijective hash of uint64 values (the same on every platform)."""
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def epoch_order(seed: int, epoch: int, num_blocks: int) -> np.ndarray:
    """The blocks of stream epoch ``epoch``: a permutation of ``range(num_blocks)`` that depends only on ``(seed,
    epoch)`` (a sort by a fixed 64-bit hash, not a library generator whose stream may change between versions).
    Read-only (cached)."""
    with np.errstate(over="ignore"):
        base = _mix64(np.array([seed], np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(epoch))
        keys = _mix64(base + np.arange(num_blocks, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93))
    order = np.argsort(keys, kind="stable")
    order.flags.writeable = False
    return order


def stream_blocks(seed: int, num_blocks: int, positions: np.ndarray) -> np.ndarray:
    """The block at each stream position (epoch ``p // n`` is :func:`epoch_order`, position ``p % n`` within it)."""
    positions = np.asarray(positions, np.int64)
    blocks = np.empty(positions.shape, np.int64)
    epochs = positions // num_blocks
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        blocks[mask] = epoch_order(seed, int(epoch), num_blocks)[positions[mask] % num_blocks]
    return blocks


@dataclasses.dataclass(frozen=True)
class WindowSchedule:
    """Which blocks the window holds at each update: a pure function of the seed and the update index.

    Attributes:
        num_blocks: blocks in the store (``n``).
        window_blocks: slots of the window (``W <= n``).
        refresh_interval: updates between two refreshes (``R``).
        refresh_blocks: blocks replaced at each refresh (``k <= W``).
        seed: the run's base seed.
    """

    num_blocks: int
    window_blocks: int
    refresh_interval: int
    refresh_blocks: int
    seed: int

    def refresh_of(self, step: int) -> int:
        """The refresh in force for update ``step`` (0-based): ``step // R``."""
        return step // self.refresh_interval

    def slots(self, refresh: int) -> np.ndarray:
        """``[W]`` the block in each slot after ``refresh``: slot ``j`` holds the stream position ``p`` of
        ``[r k, r k + W)`` with ``p mod W == j``."""
        first = refresh * self.refresh_blocks
        positions = first + (np.arange(self.window_blocks) - first) % self.window_blocks
        return stream_blocks(self.seed, self.num_blocks, positions)

    def changes(self, refresh: int) -> list[tuple[int, int]]:
        """``[(slot, block)]`` written by ``refresh`` (>= 1): positions ``[(r-1) k + W, r k + W)``."""
        positions = (refresh - 1) * self.refresh_blocks + self.window_blocks + np.arange(self.refresh_blocks)
        blocks = stream_blocks(self.seed, self.num_blocks, positions)
        return [(int(p % self.window_blocks), int(b)) for p, b in zip(positions, blocks)]


def rotation_source(step: int, interval: int, num_sources: int) -> int:
    """The source file of update ``step`` (0-based) under the reference's rotation: ``(step // interval) % n``.

    Park et al. 2025's ``main.py`` starts on the first file of the sorted list and, after every ``interval``-th
    update, moves to the next one, cycling.
    """
    return (step // interval) % num_sources


# ------------------------------------------------------------------------------------------------------------ window


def parse_window(text: str, store: Store, fields: Sequence[str]) -> int:
    """The number of window slots ``--window`` asks for: ``all``, transitions (``10M``) or bytes (``8GB``, ``512MiB``).

    A size in transitions is divided by the largest block's transitions; bytes by the device bytes of one slot (the
    largest block's rows of ``fields``, trajectory ends and valid indices). At least one block; at most all of them.

    Raises:
        ScalerlError: ``--window: ...`` for unreadable text or a size below one block.
    """
    from scalerl.generate.shards import parse_size

    blocks = store.blocks["train"]
    cleaned = text.strip().upper().replace("_", "")
    if cleaned == "ALL":
        return len(blocks)
    slot_rows = max(block.rows for block in blocks)
    slot_valid = max(block.transitions for block in blocks)
    unit = next((unit for unit in sorted(_BYTE_UNITS, key=len, reverse=True) if cleaned.endswith(unit)), None)
    if unit is not None:
        try:
            size = float(cleaned[: -len(unit)]) * _BYTE_UNITS[unit]
        except ValueError:
            raise ScalerlError(f"--window: expected a size like 10M (transitions), 8GB or all, got '{text}'") from None
        per_slot = slot_rows * (store.row_bytes(fields) + INDEX_BYTES) + slot_valid * INDEX_BYTES
        count, what = int(size // per_slot), f"{per_slot / 1e6:.1f} MB"
    else:
        size = parse_size(text, "--window")
        count, what = size // slot_valid, f"{slot_valid} transitions"
    if count < 1:
        raise ScalerlError(f"--window: {text} is less than one block ({what}); expected at least that, or all")
    return min(count, len(blocks))


def slot_arrays(store: Store, block: Block, fields: Sequence[str], slot_rows: int, slot_valid: int) -> Dataset:
    """One block laid out as a window slot, on the host: rows padded to ``slot_rows``, block-local indices.

    Padding rows are zeros whose trajectory ends at themselves (never sampled). ``valid_idxs`` lists the block's
    valid rows, repeated evenly to fill ``slot_valid`` entries (``floor`` or ``ceil`` of ``slot_valid / m`` copies
    each).
    """
    arrays = {}
    for name in fields:
        spec = store.fields[name]
        arrays[name] = np.zeros((slot_rows, *spec.shape), spec.dtype)
        store.read_field(block, name, arrays[name])
    traj_ends = np.arange(slot_rows, dtype=np.int32)
    store.read_field(block, "traj_ends", traj_ends)
    valid = np.flatnonzero(traj_ends[: block.rows] != np.arange(block.rows)).astype(np.int32)
    spread = valid[(np.arange(slot_valid, dtype=np.int64) * valid.size) // slot_valid]
    return Dataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        traj_ends=traj_ends,
        valid_idxs=spread,
        oracle_reps=arrays.get("oracle_reps"),
    )


@partial(jax.jit, donate_argnums=(0,))
def write_slot(window: Dataset, slot_data: Dataset, slot) -> Dataset:
    """Write one slot's block (:func:`slot_arrays`, on the device) into the window, in place (the window is donated).

    Block-local indices become window indices by adding the slot's first row.
    """
    slot_rows = slot_data.observations.shape[0]
    row0 = slot * slot_rows
    valid0 = slot * slot_data.valid_idxs.shape[0]

    def put(full, part, start):
        return jax.lax.dynamic_update_slice_in_dim(full, part, start, axis=0)

    reps = None
    if window.oracle_reps is not None:
        reps = put(window.oracle_reps, slot_data.oracle_reps, row0)
    return Dataset(
        observations=put(window.observations, slot_data.observations, row0),
        actions=put(window.actions, slot_data.actions, row0),
        traj_ends=put(window.traj_ends, slot_data.traj_ends + row0, row0),
        valid_idxs=put(window.valid_idxs, slot_data.valid_idxs + row0, valid0),
        oracle_reps=reps,
    )


def _empty_window(example: Dataset, slots: int) -> Dataset:
    """A window of ``slots`` slots shaped like ``example`` (one slot), filled with zeros, on the device."""

    def zeros(leaf):
        return None if leaf is None else jnp.zeros((slots * leaf.shape[0], *leaf.shape[1:]), leaf.dtype)

    return jax.jit(lambda: jax.tree.map(zeros, example))()


class _Prefetcher:
    """A daemon thread that calls ``produce(i)`` for ``i = first, first + 1, ...`` and queues the results, at most
    ``depth`` ahead; :meth:`get` returns them in order and re-raises the thread's error, if any."""

    def __init__(self, produce: Callable[[int], object], first: int, depth: int):
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first,), name="scalerl-window-reader", daemon=True)
        self._thread.start()

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                item = (index, self._produce(index), None)
            except BaseException as error:  # re-raised in the training thread
                item = (index, None, error)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            index += 1

    def get(self, index: int):
        """The item produced for ``index`` (earlier ones are dropped)."""
        while True:
            produced, item, error = self._queue.get()
            if error is not None:
                raise error
            if produced == index:
                return item
            if produced > index:
                raise RuntimeError(f"window reader is at {produced}, past {index}")

    def close(self) -> None:
        """Stop the thread and drop what it queued."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
            self._thread.join(timeout=0.1)


class StaticData:
    """Training data loaded once (the whole dataset): the same device :class:`Dataset` for every update."""

    def __init__(self, dataset: Dataset, validation: Dataset | None, description: str = ""):
        self.dataset, self.validation, self.description = dataset, validation, description

    def dataset_at(self, step: int) -> Dataset:
        """The training data for the chunk that starts at update ``step``."""
        return self.dataset

    def next_change(self, step: int) -> int | None:
        """The first update after ``step`` whose data differ (a chunk must end there); None: never."""
        return None

    def validation_at(self, step: int) -> Dataset | None:
        """The validation data for the metrics line logged after ``step`` updates."""
        return self.validation

    def close(self) -> None:
        """Nothing to stop."""


class StreamingWindow(StaticData):
    """The device window over a store's training blocks (see the module docstring), refreshed between chunks.

    Args:
        store: the open store.
        fields: the per-row fields on the device (``observations``, ``actions``, optionally ``oracle_reps``).
        schedule: which blocks the window holds when.
        start_step: the first update of this session (a resumed run starts at its checkpoint).
        validation: the fixed validation data.
    """

    def __init__(
        self,
        store: Store,
        fields: Sequence[str],
        schedule: WindowSchedule,
        start_step: int,
        validation: Dataset | None,
    ):
        blocks = store.blocks["train"]
        self.store, self.fields, self.schedule, self.blocks = store, list(fields), schedule, blocks
        self.slot_rows = max(block.rows for block in blocks)
        self.slot_valid = max(block.transitions for block in blocks)
        self.refresh = schedule.refresh_of(start_step)
        window = None
        # The first window: its blocks read by a few threads (file reads release the GIL), written slot by slot.
        # Host memory: at most READ_THREADS blocks at a time.
        slots = schedule.slots(self.refresh)
        with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
            for first in range(0, len(slots), READ_THREADS):
                group = slots[first : first + READ_THREADS]
                parts = pool.map(lambda block: jax.device_put(self._slot(int(block))), group)
                for slot, part in enumerate(parts, first):
                    window = _empty_window(part, schedule.window_blocks) if window is None else window
                    window = write_slot(window, part, slot)
        self.window = window
        slot_bytes = self.slot_rows * (store.row_bytes(self.fields) + INDEX_BYTES) + self.slot_valid * INDEX_BYTES
        description = (
            f"window: {schedule.window_blocks} of {len(blocks)} blocks ({schedule.window_blocks * self.slot_valid} "
            f"transitions, {schedule.window_blocks * slot_bytes / 1e6:.1f} MB on the device), "
            f"{schedule.refresh_blocks} block(s) replaced every {schedule.refresh_interval} updates"
        )
        super().__init__(window, validation, description)
        self._reader = _Prefetcher(self._read_refresh, self.refresh + 1, PREFETCH)

    def _slot(self, block: int) -> Dataset:
        return slot_arrays(self.store, self.blocks[block], self.fields, self.slot_rows, self.slot_valid)

    def _read_refresh(self, refresh: int) -> list[tuple[int, Dataset]]:
        """The background thread's work: refresh ``refresh``'s blocks, read and put on the device."""
        return [(slot, jax.device_put(self._slot(block))) for slot, block in self.schedule.changes(refresh)]

    def dataset_at(self, step: int) -> Dataset:
        """The window for the chunk starting at update ``step`` (refreshes due by then are written first)."""
        target = self.schedule.refresh_of(step)
        if target < self.refresh:
            raise RuntimeError(f"the window cannot go back from refresh {self.refresh} to {target}")
        while self.refresh < target:
            for slot, part in self._reader.get(self.refresh + 1):
                self.window = write_slot(self.window, part, slot)
            self.refresh += 1
        return self.window

    def next_change(self, step: int) -> int | None:
        """The next refresh boundary after ``step``."""
        interval = self.schedule.refresh_interval
        return (step // interval + 1) * interval

    def close(self) -> None:
        """Stop the background reader."""
        self._reader.close()


class Rotation(StaticData):
    """Park et al. 2025's data path: one source file of the store at a time (its blocks, exactly, unpadded), the next
    one every ``interval`` updates, read ahead by a background thread; validation on the file's ``-val`` blocks.

    Files of different sizes give windows of different shapes (one compilation each; OGBench's files are equal).
    """

    def __init__(self, store: Store, fields: Sequence[str], interval: int, start_step: int, validate: bool):
        self.store, self.fields, self.interval, self.validate = store, list(fields), interval, validate
        self.sources = sorted({block.source for block in store.blocks["train"]})
        self.turn = start_step // interval
        self.current = self._load("train", self._source(self.turn))
        self._val_cache: tuple[int, Dataset | None] | None = None
        description = (
            f"rotation: {len(self.sources)} source files, the next one every {interval} updates (Park et al. 2025)"
        )
        super().__init__(self.current, None, description)
        self._reader = _Prefetcher(lambda turn: self._load("train", self._source(turn)), self.turn + 1, 1)

    def _source(self, turn: int) -> int:
        return self.sources[rotation_source(turn * self.interval, self.interval, len(self.sources))]

    def _load(self, split: str, source: int) -> Dataset | None:
        blocks = [block for block in self.store.blocks[split] if block.source == source]
        if not blocks:
            return None
        arrays = self.store.load(split, ["traj_ends", *self.fields], blocks)
        return jax.device_put(
            device_dataset(arrays["observations"], arrays["actions"], arrays["traj_ends"], arrays.get("oracle_reps"))
        )

    def dataset_at(self, step: int) -> Dataset:
        """The file of the chunk starting at update ``step``."""
        target = step // self.interval
        while self.turn < target:
            self.current = self._reader.get(self.turn + 1)
            self.turn += 1
        return self.current

    def next_change(self, step: int) -> int | None:
        """The next file change after ``step``."""
        return (step // self.interval + 1) * self.interval

    def validation_at(self, step: int) -> Dataset | None:
        """The ``-val`` companion of the file the last update (``step - 1``) trained on, as the reference logs."""
        if not self.validate:
            return None
        source = self._source(max(step - 1, 0) // self.interval)
        if self._val_cache is None or self._val_cache[0] != source:
            self._val_cache = (source, self._load("val", source))
        return self._val_cache[1]

    def close(self) -> None:
        """Stop the background reader."""
        self._reader.close()


def auto_refresh_interval(store: Store, batch_size: int, refresh_blocks: int = 1) -> int:
    """The default updates between refreshes: ``refresh_blocks`` largest blocks' transitions over the batch size, so
    the window takes in about one batch of new transitions per update and the whole store passes through it once per
    epoch-equivalent (``N / batch_size`` updates). The reference's rotation, one 1M-transition file per 1000 updates
    at batch 1024, streams at the same rate."""
    largest = max(block.transitions for block in store.blocks["train"])
    return max(1, round(refresh_blocks * largest / batch_size))


def device_fields(oraclerep: bool) -> list[str]:
    """The per-row fields a training window holds."""
    return ["observations", "actions"] + (["oracle_reps"] if oraclerep else [])


def _available_bytes() -> int | None:
    """Memory the default device can still hold: the accelerator's limit, or the host's available memory on CPU."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def open_training_data(config, start_step: int, batch_size: int) -> StaticData:
    """The training (and validation) data of a run, as its :class:`~scalerl.offline.loop.TrainConfig` asks.

    * ``.npz`` data: the whole dataset and all its ``-val`` data, loaded once (scalerl's original path).
    * A packed store, no ``--window``: the whole store loaded once, refused in one line (with a ``--window`` hint) when
      it exceeds the memory the device has left; ``--window`` covering every block does the same.
    * ``--window`` below the store: :class:`StreamingWindow`; ``--rotation N``: :class:`Rotation`.

    On a store, validation uses a fixed subset of whole ``-val`` blocks (at most ``--val-transitions``), except under
    ``--rotation``, which validates on the current file's companion as the reference does.

    Args:
        config: the run's ``TrainConfig``.
        start_step: the first update of this session.
        batch_size: the agent's batch size (the default refresh interval streams one batch's worth per update).
    """
    from scalerl.envs import parse_env_name
    from scalerl.manifest import list_shards

    oraclerep = parse_env_name(config.env).oraclerep
    store_data = is_store(config.data)
    if not store_data:
        if config.window or config.rotation:
            flag = "--window" if config.window else "--rotation"
            raise ScalerlError(f"{flag}: needs a packed store as --data; run `scalerl pack {config.data} STORE` first")
        dataset = load_dataset(config.data, env_name=config.env)
        validation = None
        if config.validate:
            try:
                list_shards(config.data, "val")
            except ScalerlError:
                pass  # no -val data: training losses only
            else:
                validation = load_dataset(config.data, env_name=config.env, split="val", check_obs_dim=False)
        return StaticData(dataset, validation)

    store = Store(config.data)
    check_store(store, config.env)
    if config.window and config.rotation:
        raise ScalerlError("--rotation: the reference's one-file rotation replaces --window; give one of them")
    fields = device_fields(oraclerep)
    if config.rotation:
        return Rotation(store, fields, config.rotation, start_step, config.validate and bool(store.blocks["val"]))
    validation = None
    if config.validate and store.blocks["val"]:
        validation = load_dataset(
            config.data, env_name=config.env, split="val", check_obs_dim=False, max_transitions=config.val_transitions
        )
    blocks = store.blocks["train"]
    window = parse_window(config.window, store, fields) if config.window else len(blocks)
    if window >= len(blocks):
        needed = store.rows() * (store.row_bytes(fields) + 2 * INDEX_BYTES)
        available = _available_bytes()
        if available is not None and needed > available:
            raise ScalerlError(
                f"--data: {config.data} needs {needed / 1e9:.1f} GB on the device as a whole but "
                f"{available / 1e9:.1f} GB are free; train through a window, e.g. --window {available / 4e9:.0f}GB"
            )
        dataset = load_dataset(config.data, env_name=config.env, check_obs_dim=False)
        return StaticData(dataset, validation, f"whole store: {len(blocks)} blocks, {store.transitions()} transitions")
    if config.refresh_blocks > window:
        raise ScalerlError(
            f"--refresh-blocks: expected at most the window's {window} blocks, got {config.refresh_blocks}"
        )
    refresh = config.window_refresh or auto_refresh_interval(store, batch_size, config.refresh_blocks)
    schedule = WindowSchedule(len(blocks), window, refresh, config.refresh_blocks, config.seed)
    return StreamingWindow(store, fields, schedule, start_step, validation)


# -------------------------------------------------------------------------------------------------------- uniformity


def sampling_figures(
    block_transitions: Sequence[int],
    block_sources: Sequence[int],
    mode: str,
    batch_size: int,
    updates: int | None = None,
    window_blocks: int = 0,
    refresh_interval: int = 1000,
    refresh_blocks: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """How close a data path's sampling is to uniform over the whole dataset (issue 12, item 3), in expectation.

    Modes: ``uniform`` (the whole dataset on the device), ``window`` (:class:`WindowSchedule` with ``window_blocks``
    slots, ``refresh_blocks`` replaced every ``refresh_interval`` updates; each slot carries ``1 / W`` of a batch) and
    ``rotation`` (one source file at a time, the next every ``refresh_interval`` updates, uniform within the file).

    Args:
        block_transitions: valid transitions of each block, in store order.
        block_sources: the source file of each block.
        mode: ``uniform``, ``window`` or ``rotation``.
        batch_size: transitions per batch.
        updates: updates to account for; default one epoch-equivalent (``ceil(N / batch_size)``).

    Returns:
        ``updates``; ``max_rate``/``min_rate``: the highest/lowest per-transition sampling rate of a block over the
        uniform rate (1 and 1 for uniform sampling); ``rate_cv``: the coefficient of variation of the per-transition
        rate over transitions; ``tv_distance``: total variation distance between the expected sample distribution
        over blocks and the uniform one; ``blocks_per_batch`` and ``sources_per_batch``: expected distinct blocks /
        source files in one batch; ``blocks_seen``: the fraction of blocks in the device data at some point;
        ``transitions_sampled``: the expected fraction of transitions sampled at least once (Poisson approximation;
        uniform sampling of one epoch-equivalent gives ``1 - 1/e = 0.632``).
    """
    sizes = np.asarray(block_transitions, np.float64)
    sources = np.asarray(block_sources, np.int64)
    total = sizes.sum()
    num_blocks = sizes.size
    updates = math.ceil(total / batch_size) if updates is None else updates
    counts = np.zeros(num_blocks)  # expected samples per block
    seen = np.zeros(num_blocks, bool)
    per_batch_blocks = per_batch_sources = 0.0

    def account(weights: np.ndarray, span: int) -> None:
        """``span`` updates with per-block batch shares ``weights`` (summing to 1)."""
        nonlocal per_batch_blocks, per_batch_sources
        counts[:] += span * batch_size * weights
        seen[weights > 0] = True
        per_batch_blocks += span * np.sum(1.0 - (1.0 - weights) ** batch_size)
        source_weights = np.bincount(sources, weights=weights)
        per_batch_sources += span * np.sum(1.0 - (1.0 - source_weights) ** batch_size)

    if mode == "uniform":
        account(sizes / total, updates)
    elif mode in ("window", "rotation"):
        source_ids = sorted(set(sources.tolist()))
        schedule = WindowSchedule(num_blocks, max(window_blocks, 1), refresh_interval, refresh_blocks, seed)
        for refresh in range(math.ceil(updates / refresh_interval)):
            span = min(refresh_interval, updates - refresh * refresh_interval)
            if mode == "window":
                weights = np.bincount(schedule.slots(refresh), minlength=num_blocks) / schedule.window_blocks
            else:
                in_file = sources == source_ids[refresh % len(source_ids)]
                weights = np.where(in_file, sizes, 0.0) / sizes[in_file].sum()
            account(weights, span)
    else:
        raise ValueError(f"mode: expected uniform, window or rotation, got {mode!r}")
    uniform_rate = updates * batch_size / total
    rates = counts / sizes / uniform_rate  # per-transition rate of each block over the uniform rate
    mean = np.sum(sizes * rates) / total
    return dict(
        updates=float(updates),
        max_rate=float(rates.max()),
        min_rate=float(rates.min()),
        rate_cv=float(np.sqrt(np.sum(sizes * (rates - mean) ** 2) / total) / mean),
        tv_distance=float(0.5 * np.abs(counts / counts.sum() - sizes / total).sum()),
        blocks_per_batch=float(per_batch_blocks / updates),
        sources_per_batch=float(per_batch_sources / updates),
        blocks_seen=float(seen.mean()),
        transitions_sampled=float(np.sum(sizes * (1.0 - np.exp(-rates * uniform_rate))) / total),
    )


def store_sampling_figures(path: str | os.PathLike, **settings) -> dict[str, float]:
    """:func:`sampling_figures` for a packed store's training blocks (the call ``scalerl info --sampling`` can make)."""
    blocks = Store(path).blocks["train"]
    return sampling_figures([b.transitions for b in blocks], [b.source for b in blocks], **settings)
