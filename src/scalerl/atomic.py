"""Atomic file writes: every file scalerl writes appears whole or not at all.

A writer gets a temporary name in the target's directory (``.tmp-*``, so run-directory scans, checkpoint listings
and dataset directories never mistake it for output) and the file is renamed over the target only once it is
complete, then the directory is fsynced so the rename survives a crash; on any error the temporary file is removed
and the old target, if any, is left untouched. Files get the permissions a plain ``open`` gives (``0666`` less the
umask).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator

TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same extension); rename it over ``path`` if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = _create_temporary(directory, os.path.splitext(path)[1])
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _create_temporary(directory: str, suffix: str) -> str:
    """An empty new file ``.tmp-<random><suffix>`` in ``directory`` (``tempfile.mkstemp`` would make it ``0600``)."""
    while True:
        temporary = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}{suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def _fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (renames, new files) to disk; a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-JSON values as ``str``)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def save_figure(figure, path: str, dpi: int) -> str:
    """Save a matplotlib figure to ``path`` atomically and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    plt.close(figure)
    return path
