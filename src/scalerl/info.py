"""``scalerl info DIR``: what a dataset directory holds and whether it matches its manifest.

It reads no array data: shapes and dtypes come from the ``.npy`` headers inside each ``.npz``
(:func:`scalerl.manifest.npz_headers`), row counts from the ``terminals`` header, episode counts from the manifest's
records, and files are checked against the manifest by size (by sha256 only with ``--verify``). A directory without a
manifest (OGBench downloads) has no episode counts on record, so its ``terminals`` arrays, 4 bytes a row, are read.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import typer

from scalerl.errors import ScalerlError
from scalerl.manifest import list_shards, npz_headers, read_manifest, sha256_file


def _shard_summary(path: str, episodes: int | None) -> dict:
    """Rows, episodes, transitions and per-key shape/dtype of one shard, from its ``.npy`` headers.

    Args:
        path: the ``.npz`` file.
        episodes: its episode count from the manifest, or None to count the ``terminals`` (the one array read).
    """
    headers = npz_headers(path)
    if "terminals" not in headers:
        raise ScalerlError(f"{path}: missing key 'terminals' (found {sorted(headers)})")
    rows = int(headers["terminals"][0][0])
    if episodes is None:
        try:
            with np.load(path, allow_pickle=False) as file:
                episodes = int(np.count_nonzero(file["terminals"]))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as error:
            raise ScalerlError(f"{path}: truncated or corrupt .npz file ({type(error).__name__}: {error})") from None
    keys = {key: (list(shape[1:]), np.dtype(dtype).name) for key, (shape, dtype) in headers.items()}
    return dict(rows=rows, episodes=episodes, transitions=rows - episodes, keys=keys)


def _summaries(files: list[str], episodes: list[int | None]) -> list[dict]:
    """:func:`_shard_summary` of every file (a few threads: each is a handful of small reads)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(_shard_summary, files, episodes))


def summarize(path: str, verify: bool = False) -> dict:
    """Summarise a dataset directory (or one ``.npz`` file) from the manifest and the arrays' headers.

    Args:
        path: dataset directory or file.
        verify: also recompute each shard's sha256 and compare with the manifest (reads every byte); sizes are always
            compared.

    Returns:
        dict with ``shards``, ``val_shards``, ``rows``, ``transitions``, ``episodes``, ``keys``, ``bytes``,
        ``manifest`` (``complete`` / ``incomplete: N missing shard files`` / ``size mismatch: FILES`` / ``checksum
        mismatch: FILES`` / ``rows mismatch: FILES`` / ``transitions mismatch: ...`` / ``absent``) and the manifest's
        task and type when present.
    """
    if not os.path.exists(path):
        raise ScalerlError(f"{path}: no such dataset directory or .npz file")
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    manifest = read_manifest(directory) if os.path.isdir(path) else None
    summary: dict = dict(path=os.path.abspath(path), task=None, dataset_type=None)
    if manifest is not None:
        status, missing, mismatched, checked = _check_manifest(directory, manifest, verify)
        files = [(full, record) for full, record, split in checked if split == "train"]
        val_files = [(full, record) for full, record, split in checked if split == "val"]
        summary.update(task=manifest.get("task"), dataset_type=manifest.get("dataset_type"))
        summary["planned_shards"] = manifest.get("num_shards", len(manifest.get("shards", [])))
        summary["missing"] = missing
        summary["mismatched"] = mismatched
    else:
        train = list_shards(path, "train")
        val = [f for f in (list_shards(path, "val") if os.path.isdir(path) else []) if os.path.isfile(f)]
        files, val_files = [(f, None) for f in train], [(f, None) for f in val]
        status = "absent"
    stats = _summaries([f for f, _ in files], [r.get("episodes") if r else None for _, r in files])
    val_stats = _summaries([f for f, _ in val_files], [r.get("episodes") if r else None for _, r in val_files])
    rows_off = [
        os.path.basename(f)
        for (f, record), stat in zip(files + val_files, stats + val_stats)
        if record is not None and record.get("rows") is not None and record["rows"] != stat["rows"]
    ]
    if rows_off and (status == "complete" or status.startswith("incomplete")):  # a mismatch outranks a gap
        status = f"rows mismatch: {', '.join(rows_off)}"
    summary.update(
        shards=len(files),
        val_shards=len(val_files),
        rows=sum(s["rows"] for s in stats),
        transitions=sum(s["transitions"] for s in stats),
        episodes=sum(s["episodes"] for s in stats),
        val_transitions=sum(s["transitions"] for s in val_stats),
        val_episodes=sum(s["episodes"] for s in val_stats),
        keys=stats[0]["keys"] if stats else {},
        bytes=sum(os.path.getsize(f) for f, _ in files + val_files),
    )
    if manifest is not None and stats:
        summary["manifest_transitions"] = sum(entry.get("transitions", 0) for entry in manifest.get("shards", []))
        recorded_present = sum(record.get("transitions", 0) for _, record in files)
        if recorded_present != summary["transitions"] and (status == "complete" or status.startswith("incomplete")):
            status = f"transitions mismatch: files hold {summary['transitions']}, manifest {recorded_present}"
    summary["manifest"] = status
    return summary


def _check_manifest(directory: str, manifest: dict, verify: bool):
    """Which files of the manifest are missing or differ from their record (size; sha256 with ``verify``).

    Returns:
        ``(status, missing, mismatched, checked)`` where ``checked`` lists ``(path, record, split)`` of the files
        that match their record (the ones whose headers are then read).
    """
    entries = manifest.get("shards", [])
    planned = manifest.get("num_shards", len(entries))
    candidates, missing = [], []
    for entry in entries:
        for record, split in ((entry, "train"), (entry.get("val") or {}, "val")):
            name = record.get("file")
            if name is None:
                continue
            full = os.path.join(directory, name)
            if not os.path.isfile(full):
                missing.append(name)
            else:
                candidates.append((full, record, split))
    wrong_size = [os.path.basename(f) for f, r, _ in candidates if r.get("bytes") not in (None, os.path.getsize(f))]
    candidates = [(f, r, s) for f, r, s in candidates if os.path.basename(f) not in wrong_size]
    wrong_hash = []
    if verify:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            hashes = list(pool.map(lambda candidate: sha256_file(candidate[0]), candidates))
        wrong_hash = [
            os.path.basename(f)
            for (f, record, _), digest in zip(candidates, hashes)
            if record.get("sha256") not in (None, digest)
        ]
        candidates = [(f, r, s) for f, r, s in candidates if os.path.basename(f) not in wrong_hash]
    missing_count = len(missing) + max(0, planned - len(entries))
    if wrong_size:
        status = f"size mismatch: {', '.join(wrong_size)}"
    elif wrong_hash:
        status = f"checksum mismatch: {', '.join(wrong_hash)}"
    elif missing_count or not manifest.get("complete", True):
        status = f"incomplete: {missing_count} missing shard files"
    else:
        status = "complete"
    return status, missing, wrong_size + wrong_hash, candidates


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def info(
    path: Path = typer.Argument(..., help="Dataset directory (scalerl shards or OGBench .npz files) or one .npz file."),
    verify: bool = typer.Option(
        False,
        "--verify/--no-verify",
        help="Also recompute every file's sha256 against the manifest (reads every byte). Sizes are always checked.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
) -> None:
    """Show a dataset's shards, transitions, episodes, shapes, dtypes, disk size and manifest status, read from the
    manifest and the arrays' headers (no array data)."""
    summary = summarize(str(path), verify=verify)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    lines = [
        f"dataset      {summary['path']}",
        f"task         {summary['task'] or '-'} ({summary['dataset_type'] or '-'})",
        f"manifest     {summary['manifest']}",
        f"shards       {summary['shards']} train + {summary['val_shards']} val",
        f"transitions  {summary['transitions']:,} train ({summary['episodes']:,} episodes), "
        f"{summary['val_transitions']:,} val ({summary['val_episodes']:,} episodes)",
        f"disk         {_human_bytes(summary['bytes'])}",
        "keys",
    ]
    lines += [f"  {key:<14} {str(tuple(shape)):<12} {dtype}" for key, (shape, dtype) in summary["keys"].items()]
    typer.echo("\n".join(lines))
    if summary["manifest"] not in ("complete", "absent"):
        raise typer.Exit(code=1)
