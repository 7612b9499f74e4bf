"""``scalerl info DIR``: what a dataset directory holds and whether it matches its manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import typer

from scalerl.errors import ScalerlError
from scalerl.manifest import list_shards, read_manifest, sha256_file


def _shard_summary(path: str) -> dict:
    """Rows, episodes, transitions and per-key shape/dtype of one shard, read lazily from the ``.npz`` headers."""
    from scalerl.data import read_shard

    arrays = read_shard(path)
    with np.load(path, allow_pickle=False) as file:
        keys = {key: (list(file[key].shape[1:]), file[key].dtype.name) for key in file.files}
    episodes = int(arrays["terminals"].sum())
    rows = int(arrays["terminals"].shape[0])
    return dict(rows=rows, episodes=episodes, transitions=rows - episodes, keys=keys)


def summarize(path: str, verify: bool = True) -> dict:
    """Summarise a dataset directory (or one ``.npz`` file).

    Args:
        path: dataset directory or file.
        verify: recompute each shard's sha256 and compare with the manifest.

    Returns:
        dict with ``shards``, ``val_shards``, ``rows``, ``transitions``, ``episodes``, ``keys``, ``bytes``,
        ``manifest`` (``complete`` / ``incomplete: N missing shards`` / ``checksum mismatch: FILES`` /
        ``absent``) and the manifest's task and type when present.
    """
    if not os.path.exists(path):
        raise ScalerlError(f"{path}: no such dataset directory or .npz file")
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    manifest = read_manifest(directory) if os.path.isdir(path) else None
    summary: dict = dict(path=os.path.abspath(path), task=None, dataset_type=None)
    if manifest is not None:
        status, missing, mismatched, files, val_files = _check_manifest(directory, manifest, verify)
        summary.update(task=manifest.get("task"), dataset_type=manifest.get("dataset_type"))
        summary["planned_shards"] = manifest.get("num_shards", len(manifest.get("shards", [])))
        summary["manifest"] = status
        summary["missing"] = missing
        summary["mismatched"] = mismatched
    else:
        files = list_shards(path, "train")
        val_files = [f for f in (list_shards(path, "val") if os.path.isdir(path) else []) if os.path.isfile(f)]
        summary["manifest"] = "absent"
    stats = [_shard_summary(f) for f in files]
    val_stats = [_shard_summary(f) for f in val_files]
    summary.update(
        shards=len(files),
        val_shards=len(val_files),
        rows=sum(s["rows"] for s in stats),
        transitions=sum(s["transitions"] for s in stats),
        episodes=sum(s["episodes"] for s in stats),
        val_transitions=sum(s["transitions"] for s in val_stats),
        val_episodes=sum(s["episodes"] for s in val_stats),
        keys=stats[0]["keys"] if stats else {},
        bytes=sum(os.path.getsize(f) for f in files + val_files),
    )
    if manifest is not None and stats:
        recorded = sum(entry.get("transitions", 0) for entry in manifest.get("shards", []))
        present = {os.path.basename(f) for f in files}
        recorded_present = sum(
            entry.get("transitions", 0) for entry in manifest.get("shards", []) if entry.get("file") in present
        )
        summary["manifest_transitions"] = recorded
        if recorded_present != summary["transitions"]:
            summary["manifest"] = (
                f"transitions mismatch: files hold {summary['transitions']}, manifest {recorded_present}"
            )
    return summary


def _check_manifest(directory: str, manifest: dict, verify: bool):
    """Which shards of the manifest are present, missing or differ from their recorded checksum."""
    entries = manifest.get("shards", [])
    planned = manifest.get("num_shards", len(entries))
    files, val_files, missing, mismatched = [], [], [], []
    for entry in entries:
        for record, bucket in ((entry, files), (entry.get("val") or {}, val_files)):
            name = record.get("file")
            if name is None:
                continue
            full = os.path.join(directory, name)
            if not os.path.isfile(full):
                missing.append(name)
                continue
            if verify and record.get("sha256") and sha256_file(full) != record["sha256"]:
                mismatched.append(name)
            bucket.append(full)
    missing_count = len(missing) + max(0, planned - len(entries))
    if mismatched:
        status = f"checksum mismatch: {', '.join(mismatched)}"
    elif missing_count or not manifest.get("complete", True):
        status = f"incomplete: {missing_count} missing shard files"
    else:
        status = "complete"
    return status, missing, mismatched, files, val_files


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def info(
    path: Path = typer.Argument(..., help="Dataset directory (scalerl shards or OGBench .npz files) or one .npz file."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Recompute sha256 checksums against manifest.json."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
) -> None:
    """Show a dataset's shards, transitions, episodes, shapes, dtypes, disk size and manifest status."""
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
