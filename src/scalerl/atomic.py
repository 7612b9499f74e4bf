"""Atomic file writes: every file scalerl writes appears whole or not at all.

A writer gets a temporary name in the target's directory (``.tmp-*``, so run-directory scans and checkpoint listings
never mistake it for output) and the file is renamed over the target only once it is complete; on any error the
temporary file is removed and the old target, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same extension); rename it over ``path`` if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-JSON values as ``str``)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def save_figure(figure, path: str, dpi: int) -> str:
    """Save a matplotlib figure to ``path`` atomically and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    plt.close(figure)
    return path
