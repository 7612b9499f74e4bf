"""A dataset on disk: its ``manifest.json`` (read, write), file checksums and the shard files of each split.

A scalerl dataset directory holds ``.npz`` shards, each beside its validation companion ``*-val.npz``, and
``manifest.json`` (format ``scalerl-dataset/1``, written by :mod:`scalerl.generate.shards`) with one record per
shard: ``file``, ``sha256``, ``bytes``, ``transitions``, ... and the same fields for the companion under ``val``. A
directory of OGBench downloads has the ``.npz`` files and no manifest.

This module imports neither JAX nor the environments: the generator's worker processes import it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from scalerl.atomic import atomic_write_bytes
from scalerl.errors import ScalerlError

MANIFEST = "manifest.json"
FORMAT = "scalerl-dataset/1"


def read_manifest(directory: str | os.PathLike) -> dict | None:
    """The dataset manifest in ``directory``, or None if it has none.

    Raises:
        ScalerlError: if ``manifest.json`` exists but is not a readable ``scalerl-dataset`` manifest.
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
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    """Write ``manifest.json`` atomically: indented JSON with a final newline, keys in ``manifest``'s order."""
    atomic_write_bytes(Path(directory) / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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
