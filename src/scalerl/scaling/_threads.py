"""Run the many tiny fits with single-threaded OpenBLAS.

The fitters solve thousands of problems with a handful of parameters each (one per bootstrap replicate). OpenBLAS
threads only add synchronisation to such small problems, and on a loaded machine they dominate the run time
(L-BFGS-B is ~10x slower). numpy and scipy wheels bundle their own OpenBLAS; this finds its thread setter with ctypes
and does nothing when there is none (another BLAS, an unusual install).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

_PREFIXES = ("scipy_openblas", "openblas")


def _openblas_libraries() -> list[ctypes.CDLL]:
    import numpy
    import scipy

    libraries = []
    for package in (scipy, numpy):
        root = os.path.dirname(os.path.dirname(package.__file__))
        for path in glob.glob(os.path.join(root, f"{package.__name__}.libs", "*openblas*")):
            try:
                libraries.append(ctypes.CDLL(path))
            except OSError:
                continue
    return libraries


@functools.cache
def _setter_pairs():
    pairs = []
    for library in _openblas_libraries():
        for prefix, suffix in ((p, s) for p in _PREFIXES for s in ("", "64_")):
            setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                getter.restype = ctypes.c_int
                pairs.append((setter, getter))
                break
    return pairs


@contextlib.contextmanager
def single_threaded_blas():
    """Limit bundled OpenBLAS libraries to one thread inside the block (restored afterwards)."""
    try:
        pairs = _setter_pairs()
        previous = [getter() for _, getter in pairs]
        if all(count == 1 for count in previous):
            pairs = []
        for setter, _ in pairs:
            setter(1)
    except (OSError, AttributeError, ValueError):
        pairs, previous = [], []
    try:
        yield
    finally:
        for (setter, _), count in zip(pairs, previous):
            setter(count)
