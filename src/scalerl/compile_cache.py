"""JAX's persistent compilation cache for scalerl's commands: one per-user directory, on by default.

A second identical ``scalerl train`` (or ``online``, ``eval``, ``demo``) then loads its compiled programs from disk
instead of compiling them again. The cache lives in ``$XDG_CACHE_HOME/scalerl/jax`` (``~/.cache/scalerl/jax``);
``scalerl --no-compile-cache ...`` or ``SCALERL_COMPILE_CACHE=off`` turns it off, ``SCALERL_COMPILE_CACHE=DIR`` moves
it, and a ``JAX_COMPILATION_CACHE_DIR`` set by the user wins. A cached program is the same executable, so results
are unchanged.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "SCALERL_COMPILE_CACHE"
_OFF = {"0", "off", "false", "no"}
_ON = {"", "1", "on", "true", "yes"}
MIN_COMPILE_TIME_S = 0.2
"""Programs that compile faster than this are not cached (reading them back would save little)."""


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/scalerl/jax``, or ``~/.cache/scalerl/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "scalerl", "jax")


def configure_compile_cache(enabled: bool = True) -> str | None:
    """Turn JAX's persistent compilation cache on for this process, before its first compilation.

    Args:
        enabled: ``False`` (``--no-compile-cache``) leaves JAX's own setting alone.

    Returns:
        The cache directory in use, or ``None`` when the cache is off.
    """
    setting = os.environ.get(ENV_VAR, "").strip()
    if not enabled or setting.lower() in _OFF:
        return None
    directory = os.environ.get("JAX_COMPILATION_CACHE_DIR") or (
        default_cache_dir() if setting.lower() in _ON else setting
    )
    os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(MIN_COMPILE_TIME_S))
    if "jax" in sys.modules:  # already imported (a command built on demand imports it): set its config directly
        import jax

        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs",
            float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
        )
    return directory
