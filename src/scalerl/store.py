"""A packed dataset store: uncompressed, memory-mappable arrays in blocks of whole episodes, for 10M to 1B transitions.

``scalerl pack SRC DST`` turns a dataset of ``.npz`` shards (a ``scalerl generate`` directory, one official OGBench
file, or a directory of many 1M-transition OGBench / horizon-reduction files with their ``-val.npz`` companions)
into a store that training reads without decompressing, concatenating or re-validating anything::

    DST/store.json                      format "scalerl-store/1": task, fields, splits, one entry per block
    DST/train/000042-001/observations.npy   block 1 of source file 42: [rows, obs_dim] float32
    DST/train/000042-001/actions.npy        [rows, action_dim] float32
    DST/train/000042-001/traj_ends.npy      [rows] int32, the block-local index of each row's trajectory end
    DST/train/000042-001/oracle_reps.npy    [rows, goal_dim] float32 (OGBench's oracle goal representations)
    DST/train/000042.json               the source file's record (its blocks, their sizes and crc32 checksums)
    DST/val/...                         the same for the -val companions (source index = the training file's)

A block holds whole episodes of one source file (``--block-transitions`` rows or fewer, episodes split evenly over a
file's blocks), so a window of blocks is a valid compact dataset and the reference's one-file rotation (Park et al.
2025) is a set of blocks. The oracle goal representations are computed once here
(:func:`scalerl.envs.oracle_reps`); ``qpos``/``qvel``/``button_states``, which only feed them, are dropped unless
``--keep-info``. Row indices inside a block are int32 (a block has far fewer than 2^31 rows); global row offsets are
Python ints (int64 in arrays), so a store may exceed 2^31 rows.

Validation (NaN and inf, dimensions, dtypes, truncated trajectories) happens here, once. Training only checks what is
cheap: ``store.json``, every block file's size, and each ``.npy`` header as the block is read; a truncated or corrupt
block is a one-line :class:`~scalerl.errors.ScalerlError` naming the file.

Packing is resumable and atomic: each block is written to a hidden temporary directory and renamed when complete,
each source file's record is written (atomically) after its blocks, and ``store.json`` is written last, so an
interrupted pack leaves a directory without ``store.json`` that no reader accepts; running the same command again
finishes it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import multiprocessing
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from scalerl.atomic import TEMP_PREFIX, atomic_write_json
from scalerl.envs import oracle_reps, parse_env_name
from scalerl.errors import ScalerlError
from scalerl.manifest import list_shards, npz_headers, read_manifest

STORE_FORMAT = "scalerl-store/1"
STORE_FILE = "store.json"
PACK_FILE = "pack.json"
SPLITS = ("train", "val")
INFO_FIELDS = ("qpos", "qvel", "button_states")
DEFAULT_BLOCK_TRANSITIONS = 128_000
"""Default rows per block: a 1M-transition OGBench file (1000 episodes of 1001 rows) becomes 8 blocks of 125
episodes; a ``scalerl generate`` shard (100 episodes) one block."""


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a packed store (a directory with ``store.json``) or an unfinished one (``pack.json``)."""
    return os.path.isdir(path) and (
        os.path.isfile(os.path.join(path, STORE_FILE)) or os.path.isfile(os.path.join(path, PACK_FILE))
    )


# ----------------------------------------------------------------------------------------------------------- format


def npy_header(dtype: str, shape: Sequence[int]) -> bytes:
    """The exact ``.npy`` (version 1.0) header numpy writes for a C-ordered array of ``dtype`` and ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _write_npy(path: str, array: np.ndarray) -> int:
    """Write ``array`` as a ``.npy`` file (header + raw C-ordered bytes), fsynced; returns the crc32 of its data."""
    array = np.ascontiguousarray(array)
    with open(path, "wb") as file:
        file.write(npy_header(array.dtype.str, array.shape))
        data = memoryview(array).cast("B")
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return zlib.crc32(data)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One per-row field of a store: its dtype and the shape of one row."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        """Bytes per row."""
        return int(np.dtype(self.dtype).itemsize * np.prod(self.shape, dtype=np.int64))


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of whole episodes.

    Attributes:
        split: ``train`` or ``val``.
        index: position among the split's blocks (store order).
        source: index of the source file it comes from (a ``-val`` companion shares its training file's index).
        part: position among the source file's blocks.
        rows: rows (states) in the block.
        transitions: rows with a valid next state (``rows - episodes``).
        episodes: whole episodes in the block.
        row_start: the block's first row in the split's global row order (may exceed 2^31).
        directory: the block's directory.
    """

    split: str
    index: int
    source: int
    part: int
    rows: int
    transitions: int
    episodes: int
    row_start: int
    directory: str

    def path(self, field: str) -> str:
        """The block's file of ``field``."""
        return os.path.join(self.directory, f"{field}.npy")


def block_name(source: int, part: int) -> str:
    """Directory name of a block: ``SSSSSS-PPP`` (source file, part)."""
    return f"{source:06d}-{part:03d}"


class Store:
    """A packed store opened for reading: ``store.json`` parsed and every block file's size checked (no data read).

    Args:
        path: the store directory.

    Raises:
        ScalerlError: one line naming the file: no ``store.json`` (an unfinished pack says so), another format, or a
            block file missing or of the wrong size (truncated).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        meta_path = os.path.join(self.path, STORE_FILE)
        if not os.path.isfile(meta_path):
            if os.path.isfile(os.path.join(self.path, PACK_FILE)):
                raise ScalerlError(
                    f"{self.path}: unfinished store (no {STORE_FILE}); run the same `scalerl pack` again to finish it"
                )
            raise ScalerlError(f"{self.path}: not a packed store (no {STORE_FILE})")
        try:
            meta = json.loads(Path(meta_path).read_text())
        except (OSError, ValueError) as error:
            raise ScalerlError(f"{meta_path}: not readable JSON ({error})") from None
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise ScalerlError(f"{meta_path}: 'format' is not '{STORE_FORMAT}'")
        self.meta = meta
        self.fields = {name: FieldSpec(spec["dtype"], tuple(spec["shape"])) for name, spec in meta["fields"].items()}
        self.blocks: dict[str, list[Block]] = {}
        for split in SPLITS:
            blocks, start = [], 0
            for index, (source, part, rows, episodes) in enumerate(meta["splits"][split]["blocks"]):
                directory = os.path.join(self.path, split, block_name(source, part))
                blocks.append(Block(split, index, source, part, rows, rows - episodes, episodes, start, directory))
                start += rows
            self.blocks[split] = blocks
        for split in SPLITS:
            self._check_sizes(split)

    @property
    def task(self) -> str | None:
        """The scalerl task the data come from (e.g. ``puzzle-4x5``), if known."""
        return self.meta.get("task")

    @property
    def env(self) -> str | None:
        """The dataset name the oracle representations were computed for (e.g. ``puzzle-4x5-play``), if any."""
        return self.meta.get("env")

    def rows(self, split: str = "train") -> int:
        """Rows of a split."""
        return sum(block.rows for block in self.blocks[split])

    def transitions(self, split: str = "train") -> int:
        """Valid transitions of a split."""
        return sum(block.transitions for block in self.blocks[split])

    def row_bytes(self, fields: Sequence[str] | None = None) -> int:
        """Bytes per row of ``fields`` (all by default) on disk."""
        return sum(self.fields[name].row_bytes for name in (fields or self.fields))

    def sources(self) -> list[str]:
        """The source file names, by source index."""
        return [source["file"] for source in self.meta["sources"]]

    def _check_sizes(self, split: str) -> None:
        for block in self.blocks[split]:
            for name, spec in self.fields.items():
                path = block.path(name)
                expected = len(npy_header(spec.dtype, (block.rows, *spec.shape))) + block.rows * spec.row_bytes
                try:
                    size = os.stat(path).st_size
                except OSError:
                    raise ScalerlError(f"{path}: block file missing from the store") from None
                if size != expected:
                    raise ScalerlError(
                        f"{path}: truncated or corrupt block file ({size} bytes, expected {expected}); pack it again"
                    )

    def read_field(self, block: Block, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """Read one field of a block (plain reads, no mapping, so only the OS page cache holds the file).

        Args:
            block: the block.
            name: the field.
            out: an array of at least ``block.rows`` rows of the field's dtype and shape to read into (its first
                ``rows`` rows are written); a new array when None.

        Raises:
            ScalerlError: the file's header is not the one ``store.json`` implies, or the file ends early.
        """
        spec = self.fields[name]
        path = block.path(name)
        header = npy_header(spec.dtype, (block.rows, *spec.shape))
        if out is None:
            out = np.empty((block.rows, *spec.shape), dtype=spec.dtype)
        target = out[: block.rows]
        if target.dtype != np.dtype(spec.dtype) or not target.flags.c_contiguous:
            raise ValueError(f"{name}: out must be a C-contiguous {spec.dtype} array")
        try:
            with open(path, "rb", buffering=0) as file:
                if file.read(len(header)) != header:
                    raise ScalerlError(f"{path}: corrupt block file (its .npy header is not {header[10:].strip()!r})")
                view = memoryview(target).cast("B")
                done = 0
                while done < len(view):
                    count = file.readinto(view[done:])
                    if not count:
                        raise ScalerlError(f"{path}: truncated block file (ends after {done} of {len(view)} bytes)")
                    done += count
        except OSError as error:
            raise ScalerlError(f"{path}: unreadable block file ({error})") from None
        return out

    def memmap(self, block: Block, name: str) -> np.ndarray:
        """A read-only memory map of one field of a block (random access without reading the whole file)."""
        path = block.path(name)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ScalerlError(f"{path}: truncated or corrupt block file ({error})") from None
        spec = self.fields[name]
        if array.shape != (block.rows, *spec.shape) or array.dtype != np.dtype(spec.dtype):
            raise ScalerlError(f"{path}: block file holds {array.dtype}{array.shape}, store.json says otherwise")
        return array

    def load(self, split: str, fields: Sequence[str], blocks: Sequence[Block] | None = None) -> dict[str, np.ndarray]:
        """Read whole blocks into one array per field (one allocation each, no concatenation copy).

        ``traj_ends`` becomes global: the index of each row's trajectory end among the returned rows (int64).

        Args:
            split: ``train`` or ``val``.
            fields: the fields to read.
            blocks: the blocks, in order (all of the split by default).
        """
        blocks = self.blocks[split] if blocks is None else list(blocks)
        rows = sum(block.rows for block in blocks)
        arrays = {}
        for name in fields:
            spec = self.fields[name]
            dtype = np.int64 if name == "traj_ends" else spec.dtype
            arrays[name] = np.empty((rows, *spec.shape), dtype=dtype)
        start = 0
        for block in blocks:
            for name in fields:
                part = arrays[name][start : start + block.rows]
                if name == "traj_ends":
                    part[:] = self.read_field(block, name) + start
                else:
                    self.read_field(block, name, part)
            start += block.rows
        return arrays

    def verify(self) -> list[str]:
        """Re-read every block file and compare its crc32 with the source record; returns the files that differ."""
        bad = []
        for split in SPLITS:
            records = {}
            for block in self.blocks[split]:
                if block.source not in records:
                    records[block.source] = _read_json(os.path.join(self.path, split, f"{block.source:06d}.json"))
                crcs = records[block.source]["blocks"][block.part]["crc32"]
                for name in self.fields:
                    data = self.read_field(block, name)
                    if zlib.crc32(memoryview(np.ascontiguousarray(data)).cast("B")) != crcs[name]:
                        bad.append(block.path(name))
        return bad


def _read_json(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ScalerlError(f"{path}: not readable JSON ({error})") from None


# ----------------------------------------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Source:
    """One source file of a pack: a training ``.npz`` and its ``-val.npz`` companion, if any."""

    index: int
    train: str
    val: str | None


def list_sources(src: str | os.PathLike) -> list[Source]:
    """The source files of ``src`` in store order (:func:`scalerl.manifest.list_shards`'s order), each with the
    ``-val.npz`` companion beside it when there is one."""
    files = list_shards(src, "train")
    sources = []
    for index, train in enumerate(files):
        val = train[: -len(".npz")] + "-val.npz" if train.endswith(".npz") else train + "-val.npz"
        sources.append(Source(index, train, val if os.path.isfile(val) else None))
    return sources


def infer_env(src: str | os.PathLike, sources: Sequence[Source]) -> str | None:
    """The dataset name (``TASK-TYPE``) of a source: from a scalerl manifest, else from an OGBench file name such as
    ``puzzle-4x5-play-v0-042.npz``; None if neither says."""
    if os.path.isdir(src):
        manifest = read_manifest(src)
        if manifest is not None and manifest.get("task"):
            return f"{manifest['task']}-{manifest.get('dataset_type') or 'play'}"
    stem = os.path.basename(sources[0].train)
    if "-v0" in stem:
        try:
            parsed = parse_env_name(stem.split("-v0")[0])
        except ScalerlError:
            return None
        return f"{parsed.task.name}-{parsed.dataset_type or parsed.task.types[0]}"
    return None


# ------------------------------------------------------------------------------------------------------------ packing


@dataclasses.dataclass(frozen=True)
class PackConfig:
    """How a source becomes a store (``scalerl pack``); a resumed pack must use the same settings."""

    src: str
    """The source: a ``scalerl generate`` directory, one OGBench ``.npz`` or a directory of them."""
    dst: str
    """The store directory to write."""
    env: str | None = None
    """Dataset name for the oracle goal representations (e.g. ``puzzle-4x5-play``); default: from the source's
    manifest or file names. Without one the store has no oracle representations."""
    block_transitions: int = DEFAULT_BLOCK_TRANSITIONS
    """Target rows per block (whole episodes, never more unless one episode is longer; a file's episodes are split
    evenly over its blocks)."""
    keep_info: bool = False
    """Also store ``qpos``, ``qvel`` and ``button_states`` (only needed to recompute oracle representations)."""
    workers: int = 1
    """Processes packing source files in parallel."""


def _split_episodes(ends: np.ndarray, target_rows: int) -> list[tuple[int, int]]:
    """Episode ranges ``[(first, last + 1)]`` of the blocks of one file: ``ceil(rows / target_rows)`` blocks (more if
    an episode does not fit), episodes split as evenly as possible."""
    episodes = ends.size
    rows = int(ends[-1]) + 1
    count = min(episodes, max(1, -(-rows // target_rows)))
    starts = np.concatenate([[0], ends[:-1] + 1])
    while True:
        bounds = [(episodes * j) // count for j in range(count + 1)]
        sizes = [int(ends[bounds[j + 1] - 1] - starts[bounds[j]] + 1) for j in range(count)]
        if max(sizes) <= target_rows or count == episodes:
            return [(bounds[j], bounds[j + 1]) for j in range(count)]
        count += 1


def _pack_file(path: str, split: str, source: int, config: PackConfig, fields: dict) -> dict:
    """Read, validate and write one source file's blocks; returns (and writes) its record."""
    from scalerl.data import read_shard  # imports JAX: only where a file is packed

    arrays = read_shard(path)
    for name, spec in fields.items():
        if name in ("traj_ends", "oracle_reps"):
            continue
        if name not in arrays:
            raise ScalerlError(f"{path}: missing key '{name}' (the first source file has it)")
        if arrays[name].shape[1:] != tuple(spec["shape"]):
            raise ScalerlError(f"{path}: '{name}' rows have shape {arrays[name].shape[1:]}, expected {spec['shape']}")
    terminals = arrays["terminals"] > 0
    ends = np.flatnonzero(terminals)
    rows = terminals.size
    local_ends = ends[np.searchsorted(ends, np.arange(rows))]
    if "oracle_reps" in fields:
        reps = oracle_reps(parse_env_name(config.env).task.name, arrays["qpos"], arrays.get("button_states"))
        arrays["oracle_reps"] = np.asarray(reps, dtype=np.float32)
    directory = os.path.join(config.dst, split)
    blocks = []
    for part, (first, stop) in enumerate(_split_episodes(ends, config.block_transitions)):
        row0 = 0 if first == 0 else int(ends[first - 1]) + 1
        row1 = int(ends[stop - 1]) + 1
        final = os.path.join(directory, block_name(source, part))
        temporary = os.path.join(directory, f"{TEMP_PREFIX}{block_name(source, part)}")
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)  # a block of a source whose record was never written
        os.makedirs(temporary)
        crcs = {}
        for name, spec in fields.items():
            if name == "traj_ends":
                data = (local_ends[row0:row1] - row0).astype(np.int32)
            else:
                data = arrays[name][row0:row1].astype(spec["dtype"], copy=False)
            crcs[name] = _write_npy(os.path.join(temporary, f"{name}.npy"), data)
        os.replace(temporary, final)
        blocks.append(dict(part=part, rows=row1 - row0, episodes=stop - first, crc32=crcs))
    record = dict(source=source, file=os.path.basename(path), bytes=os.path.getsize(path), blocks=blocks)
    atomic_write_json(os.path.join(directory, f"{source:06d}.json"), record)
    return record


def _pack_source(source: Source, config: PackConfig, fields: dict) -> dict[str, dict | None]:
    """Pack a source file and its companion (skipping what an earlier run finished); returns their records."""
    records: dict[str, dict | None] = {}
    for split, path in (("train", source.train), ("val", source.val)):
        record_path = os.path.join(config.dst, split, f"{source.index:06d}.json")
        if path is None:
            records[split] = None
        elif os.path.isfile(record_path):
            records[split] = _read_json(record_path)
        else:
            records[split] = _pack_file(path, split, source.index, config, fields)
    return records


def _field_specs(sources: Sequence[Source], headers: dict, config: PackConfig) -> dict[str, dict]:
    """The store's fields, from the sources' ``.npz`` headers, checked for agreement across every file first."""
    first = headers[sources[0].train]
    for key in ("observations", "actions", "terminals"):
        if key not in first:
            raise ScalerlError(f"{sources[0].train}: missing key '{key}' (found {sorted(first)})")
    for source in sources:
        for path in (source.train, source.val):
            if path is None:
                continue
            for key in ("observations", "actions", "terminals", "qpos", "button_states"):
                found = headers[path][key][0][1:] if key in headers[path] else "missing"
                if key in first and found != first[key][0][1:]:
                    raise ScalerlError(
                        f"{path}: '{key}' rows are {found} but {os.path.basename(sources[0].train)} has "
                        f"{first[key][0][1:]}; source files must agree"
                    )
    fields = {
        "observations": dict(dtype="float32", shape=list(first["observations"][0][1:])),
        "actions": dict(dtype="float32", shape=list(first["actions"][0][1:])),
        "traj_ends": dict(dtype="int32", shape=[]),
    }
    if config.env is not None and "qpos" in first:
        family = parse_env_name(config.env).task.family
        if family in ("puzzle", "scene") and "button_states" not in first:
            raise ScalerlError(f"{sources[0].train}: oracle representations of {config.env} need 'button_states'")
        # The representation's width, from two rows of zeros (the function is OGBench's own, row by row).
        qpos = np.zeros((2, *first["qpos"][0][1:]), np.float32)
        buttons = np.zeros((2, *first["button_states"][0][1:]), np.float32) if "button_states" in first else None
        goal_dim = np.asarray(oracle_reps(parse_env_name(config.env).task.name, qpos, buttons)).shape[1]
        fields["oracle_reps"] = dict(dtype="float32", shape=[int(goal_dim)])
    if config.keep_info:
        for key in INFO_FIELDS:
            if key in first:
                fields[key] = dict(dtype="float32", shape=list(first[key][0][1:]))
    return fields


def _check_obs_dim(env: str, fields: dict, where: str) -> None:
    from scalerl.data import expected_obs_dim

    expected = expected_obs_dim(env)
    found = fields["observations"]["shape"][0]
    if found != expected:
        raise ScalerlError(f"{where}: observations have dimension {found} but {env} expects {expected}")


def _settings(config: PackConfig, sources: Sequence[Source], fields: dict) -> dict:
    """What a resumed pack must share with the unfinished one (and a rerun with the finished store)."""
    return dict(
        format=STORE_FORMAT,
        source=os.path.abspath(config.src),
        files=[os.path.basename(source.train) for source in sources],
        env=config.env,
        block_transitions=config.block_transitions,
        keep_info=config.keep_info,
        fields=fields,
    )


def pack(config: PackConfig, progress: bool = True) -> Store:
    """Pack ``config.src`` into the store ``config.dst`` (resuming an unfinished pack of the same settings).

    Everything checkable is checked before any block is written: the source files and their headers (keys, per-row
    shapes agreeing across files), the environment name and observation dimension, and the destination (a store or an
    unfinished pack with other settings, or any other non-empty directory, is refused and left untouched). A rerun of
    a finished pack opens the store and writes nothing.

    Returns:
        The finished store, opened.
    """
    from scalerl.progress import progress_bar

    if config.block_transitions < 2:
        raise ScalerlError(f"--block-transitions: expected at least 2, got {config.block_transitions}")
    if config.workers < 1:
        raise ScalerlError(f"--workers: expected a positive integer, got {config.workers}")
    sources = list_sources(config.src)
    explicit_env = config.env is not None
    env = config.env or infer_env(config.src, sources)
    if env is not None:
        parsed = parse_env_name(env)
        env = f"{parsed.task.name}-{parsed.dataset_type or parsed.task.types[0]}"
    config = dataclasses.replace(config, dst=os.path.abspath(config.dst), env=env)
    headers = {path: npz_headers(path) for source in sources for path in (source.train, source.val) if path}
    if explicit_env and "qpos" not in headers[sources[0].train]:
        raise ScalerlError(f"{sources[0].train}: --env {env}: oracle representations need 'qpos', which it lacks")
    fields = _field_specs(sources, headers, config)
    if env is not None:
        _check_obs_dim(env, fields, sources[0].train)
    settings = _settings(config, sources, fields)
    store_path = os.path.join(config.dst, STORE_FILE)
    pack_path = os.path.join(config.dst, PACK_FILE)
    if os.path.isfile(store_path):
        if _read_json(store_path).get("pack") != settings:
            raise ScalerlError(f"{config.dst}: already holds a store packed with other settings; choose another DST")
        return Store(config.dst)
    if os.path.isfile(pack_path):
        if _read_json(pack_path) != settings:
            raise ScalerlError(
                f"{config.dst}: holds an unfinished pack with other settings (source, --env, --block-transitions, "
                f"--keep-info); rerun that pack or choose another DST"
            )
    elif os.path.isdir(config.dst) and os.listdir(config.dst):
        raise ScalerlError(f"{config.dst}: exists and is not a store; choose an empty or new directory")
    for split in SPLITS:
        os.makedirs(os.path.join(config.dst, split), exist_ok=True)
    atomic_write_json(pack_path, settings)

    rows = {s.index: sum(headers[p]["terminals"][0][0] for p in (s.train, s.val) if p) for s in sources}
    bar = progress_bar(sum(rows.values()), desc=f"pack {os.path.basename(config.dst)}", unit="rows", enabled=progress)
    records: dict[int, dict] = {}
    if config.workers == 1 or len(sources) == 1:
        for source in sources:
            records[source.index] = _pack_source(source, config, fields)
            bar.update(rows[source.index])
    else:
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold JAX's threads
        with concurrent.futures.ProcessPoolExecutor(config.workers, mp_context=context) as pool:
            futures = {pool.submit(_pack_source, source, config, fields): source for source in sources}
            for future in concurrent.futures.as_completed(futures):
                source = futures[future]
                records[source.index] = future.result()
                bar.update(rows[source.index])
    bar.close()

    splits = {}
    for split in SPLITS:
        blocks = []
        for source in sources:
            record = records[source.index][split]
            if record is not None:
                blocks += [[source.index, b["part"], b["rows"], b["episodes"]] for b in record["blocks"]]
        total = sum(block[2] for block in blocks)
        episodes = sum(block[3] for block in blocks)
        splits[split] = dict(rows=total, transitions=total - episodes, episodes=episodes, blocks=blocks)
    meta = dict(
        format=STORE_FORMAT,
        task=parse_env_name(env).task.name if env is not None else None,
        env=env,
        fields=fields,
        splits=splits,
        sources=[dict(file=os.path.basename(s.train), val=s.val and os.path.basename(s.val)) for s in sources],
        pack=settings,
    )
    atomic_write_json(store_path, meta)
    os.remove(pack_path)
    return Store(config.dst)


def pack_command(
    src: Annotated[
        Path, typer.Argument(help="A `scalerl generate` directory, an OGBench .npz or a directory of them.")
    ],
    dst: Annotated[Path, typer.Argument(help="The store directory to write (new or empty; or an unfinished pack).")],
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Dataset name for the oracle goal representations, e.g. puzzle-4x5-play. Default: from the "
            "source's manifest or file names; without one the store has none.",
        ),
    ] = None,
    block_transitions: Annotated[
        str,
        typer.Option(
            "--block-transitions",
            help="Target rows per block, e.g. 128K (whole episodes of one source file, split evenly). The window of "
            "`scalerl train --window` is made of blocks.",
        ),
    ] = "128K",
    keep_info: Annotated[
        bool, typer.Option("--keep-info", help="Also store qpos, qvel and button_states (dropped by default).")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="Processes packing source files in parallel.")] = 1,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-read every block file and check its crc32 after packing.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Pack a dataset into a store of uncompressed, memory-mappable blocks (for `scalerl train --window`).

    Validates every file once (NaN, dimensions, dtypes, truncation), precomputes the oracle goal representations and
    drops qpos/qvel. Interrupted? Run the same command again: it finishes what is missing.
    """
    from scalerl.generate.shards import parse_size

    config = PackConfig(
        src=str(src),
        dst=str(dst),
        env=env,
        block_transitions=parse_size(block_transitions, "--block-transitions"),
        keep_info=keep_info,
        workers=workers,
    )
    store = pack(config, progress=progress)
    if verify:
        bad = store.verify()
        if bad:
            raise ScalerlError(f"{bad[0]}: crc32 differs from its record ({len(bad)} files differ); pack it again")
    size = sum(os.path.getsize(b.path(f)) for split in SPLITS for b in store.blocks[split] for f in store.fields)
    typer.echo(
        f"store {store.path}: {store.transitions('train')} transitions in {len(store.blocks['train'])} blocks "
        f"(+{store.transitions('val')} val in {len(store.blocks['val'])}), fields {', '.join(store.fields)}, "
        f"{size / 1e9:.2f} GB" + (", crc32 verified" if verify else "")
    )
