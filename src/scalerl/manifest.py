"""A dataset on disk: its manifest (a header plus append-only shard journals), checksums, ``.npz`` headers and the
shard files of each split.

A scalerl dataset directory holds ``.npz`` shards, each beside its validation companion ``*-val.npz``, and

- ``manifest.json``: the header (format ``scalerl-dataset/2``, written by :mod:`scalerl.generate.shards`): the plan
  that determines every shard's bytes, its size, the per-row key specs and the software versions; written once per
  ``scalerl generate`` run, never once per shard;
- ``shards-AAAAA-BBBBB.jsonl``: one or more shard journals. The first line names the plan the journal was written
  for (``{"journal": "scalerl-dataset-shards/1", "plan": {...}}``); every further line is the record of one
  finished shard: ``index``, ``file``, ``sha256``, ``bytes``, ``transitions``, ... and the same fields for the
  companion under ``val``. A finished shard costs one appended line (O(1)), not a rewrite of the manifest.

:func:`read_manifest` merges the header and the journals into one dict with the records, sorted by index, under
``shards`` and ``complete`` set when every planned shard is recorded: the shape the single-file format
``scalerl-dataset/1`` had (still read as it is). Journals are named by the shard slice their run generated, so the
directories of slices generated on different machines merge by copying their files together (see
``docs/generate.md``); a journal of another plan, or two journals recording one shard differently, is a one-line
error naming the journals. A directory of OGBench downloads has the ``.npz`` files and no manifest.

This module imports neither JAX nor the environments: the generator's worker processes import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from scalerl.atomic import atomic_write_bytes
from scalerl.errors import ScalerlError
from scalerl.runs import append_jsonl, iter_jsonl

MANIFEST = "manifest.json"
FORMAT = "scalerl-dataset/2"
FORMAT_V1 = "scalerl-dataset/1"
JOURNAL_FORMAT = "scalerl-dataset-shards/1"
JOURNAL_PREFIX = "shards-"
JOURNAL_SUFFIX = ".jsonl"


def read_manifest(directory: str | os.PathLike, journals: bool = True) -> dict | None:
    """The dataset manifest in ``directory``, or None if it has none.

    Args:
        directory: the dataset directory.
        journals: merge the shard journals into the header (``shards``, ``complete``); False returns
            ``manifest.json`` as it is on disk.

    Returns:
        The header's fields plus ``shards`` (the records, sorted by ``index``; records of shards outside the header's
        ``num_shards`` are left out) and ``complete``. A manifest that holds its own ``shards`` list (format
        ``scalerl-dataset/1``) is returned as it is.

    Raises:
        ScalerlError: one line naming the file if ``manifest.json`` is not a readable ``scalerl-dataset`` manifest, a
            journal is unreadable or was written for another plan, or two journals record one shard differently.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ScalerlError(f"{path}: not a readable JSON manifest ({error})") from None
    if not isinstance(manifest, dict) or not str(manifest.get("format", "")).startswith("scalerl-dataset/"):
        raise ScalerlError(f"{path}: 'format' is not 'scalerl-dataset/...'; not a scalerl dataset manifest")
    if not journals or isinstance(manifest.get("shards"), list):
        return manifest
    records = merge_journals(directory, manifest)
    manifest["shards"] = records
    planned = manifest.get("num_shards")
    manifest["complete"] = isinstance(planned, int) and len(records) == planned
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    """Write ``manifest.json`` atomically: indented JSON with a final newline, keys in ``manifest``'s order."""
    atomic_write_bytes(Path(directory) / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")


def journal_name(start: int, stop: int) -> str:
    """File name of the journal of a run that generates shards ``start`` to ``stop - 1``."""
    return f"{JOURNAL_PREFIX}{start:05d}-{stop:05d}{JOURNAL_SUFFIX}"


def list_journals(directory: str | os.PathLike) -> list[Path]:
    """The shard journals in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        directory / name
        for name in os.listdir(directory)
        if name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX)
    )


def read_journal(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """The plan and the shard records of one journal, in the order they were appended.

    A last line cut short by a killed writer is skipped (:func:`scalerl.runs.iter_jsonl`).

    Raises:
        ScalerlError: one line naming the file if its first line is not a journal header or a record has no integer
            ``index``.
    """
    lines = list(iter_jsonl(os.fspath(path)))
    if not lines or lines[0].row.get("journal") != JOURNAL_FORMAT or not isinstance(lines[0].row.get("plan"), dict):
        raise ScalerlError(f"{path}: not a scalerl shard journal (a first line naming '{JOURNAL_FORMAT}' and a plan)")
    records = []
    for line in lines[1:]:
        if not isinstance(line.row.get("index"), int):
            raise ScalerlError(f"{path}: line {line.number} is not a shard record (no integer 'index')")
        records.append(line.row)
    return lines[0].row["plan"], records


def plan_difference(plan: dict, header: dict) -> str | None:
    """The first field of ``plan`` whose value differs in ``header``, as ``field: plan's value vs header's``."""
    for field, value in plan.items():
        if header.get(field) != value:
            return f"{field}: {value!r} vs {header.get(field)!r}"
    return None


def merge_journals(directory: str | os.PathLike, header: dict) -> list[dict]:
    """The shard records of every journal in ``directory``, checked against ``header`` and sorted by index.

    Identical records of one shard in several journals (overlapping slices) count once; records of shards at or past
    the header's ``num_shards`` are left out.

    Raises:
        ScalerlError: one line naming the journal if it was written for a plan other than the header's, or naming
            two journals that record one shard differently.
    """
    planned = header.get("num_shards")
    merged: dict[int, tuple[dict, Path]] = {}
    for journal in list_journals(directory):
        plan, records = read_journal(journal)
        difference = plan_difference(plan, header)
        if difference is not None:
            raise ScalerlError(
                f"{journal}: written for another dataset than {MANIFEST} ({difference}); merge only slices of one "
                "plan into a directory"
            )
        for record in records:
            index = record["index"]
            if index < 0 or (isinstance(planned, int) and index >= planned):
                continue
            if index in merged and merged[index][0] != record:
                other = merged[index][1]
                raise ScalerlError(
                    f"{journal}: shard {index} is recorded differently in {other.name}; run 'scalerl generate' with "
                    "this dataset's plan and --out to check the files and keep the record that matches"
                )
            merged[index] = (record, journal)
    return [merged[index][0] for index in sorted(merged)]


def start_journal(path: str | os.PathLike, plan: dict, records: list[dict]) -> None:
    """Write a journal atomically: its header line for ``plan``, then ``records``, one per line."""
    lines = [{"journal": JOURNAL_FORMAT, "plan": plan}, *records]
    atomic_write_bytes(path, "".join(json.dumps(line) + "\n" for line in lines).encode())


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append one shard record to a journal and fsync (O(1): nothing already written is rewritten)."""
    append_jsonl(os.fspath(path), [record])


def repair_journal(path: str | os.PathLike) -> None:
    """Cut a journal back to its last complete line (a killed writer's partial line), so appends start on a new one."""
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        keep, position = 0, size
        while position > 0 and not keep:
            start = max(0, position - (1 << 16))
            file.seek(start)
            chunk = file.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
            position = start
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` of the arrays in an ``.npz`` file, from the ``.npy`` headers inside its zip.

    Only each member's first compressed block is decompressed (enough for its header), so this costs a few KB per
    array whatever the file's size. ``dtype`` is numpy's ``dtype.str`` (e.g. ``'<f4'``).

    Raises:
        ScalerlError: one line naming the file if it is not a readable ``.npz``.
    """
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"'{name}' has .npy format version {version}, expected 1.0 or 2.0")
                headers[name[: -len(".npy")]] = (tuple(shape), dtype.str)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as error:
        raise ScalerlError(f"{path}: truncated or corrupt .npz file ({type(error).__name__}: {error})") from None
    return headers


def list_shards(path: str | os.PathLike, split: str = "train") -> list[str]:
    """The shard files of a dataset, in order.

    Args:
        path: a directory of shards (scalerl's, with a ``manifest.json``, or any directory of OGBench ``.npz``
            files) or a single ``.npz`` file (an official OGBench download such as ``puzzle-3x3-play-v0.npz``).
        split: ``train`` or ``val`` (the ``-val.npz`` companions).

    Returns:
        Absolute paths of the shard files for the split: the manifest's records in order, else the directory's
        ``.npz`` files sorted by name.

    Raises:
        ScalerlError: one line naming the path if there are no shards of the split, the manifest is unreadable or a
            file it lists is missing.
    """
    if split not in ("train", "val"):
        raise ScalerlError(f"split: expected 'train' or 'val', got '{split}'")
    path = os.fspath(path)
    if os.path.isfile(path):
        if split == "train":
            return [os.path.abspath(path)]
        val_path = path[: -len(".npz")] + "-val.npz" if path.endswith(".npz") else path + "-val.npz"
        if not os.path.isfile(val_path):
            raise ScalerlError(f"{val_path}: validation file not found (expected beside {os.path.basename(path)})")
        return [os.path.abspath(val_path)]
    if not os.path.isdir(path):
        raise ScalerlError(f"{path}: no such dataset directory or .npz file")
    manifest = read_manifest(path)
    if manifest is not None:
        manifest_path = os.path.join(path, MANIFEST)
        try:
            files = [entry["file"] if split == "train" else entry["val"]["file"] for entry in manifest["shards"]]
        except (KeyError, TypeError) as error:
            raise ScalerlError(f"{manifest_path}: unreadable manifest ({type(error).__name__}: {error})") from None
        files = [os.path.join(path, name) for name in files]
        missing = [name for name in files if not os.path.isfile(name)]
        if missing:
            raise ScalerlError(f"{missing[0]}: shard listed in {MANIFEST} is missing ({len(missing)} missing)")
    else:
        names = sorted(name for name in os.listdir(path) if name.endswith(".npz"))
        if split == "train":
            files = [os.path.join(path, n) for n in names if not n.endswith("-val.npz")]
        else:
            files = [os.path.join(path, n) for n in names if n.endswith("-val.npz")]
    if not files:
        raise ScalerlError(f"{path}: no {split} .npz shards found")
    return [os.path.abspath(name) for name in files]
