"""Progress reporting that suits where it goes: a live bar on a terminal, a few plain lines in a log file.

tqdm redraws its bar several times a second. On a terminal that is one line rewritten in place; written to a file
(a sweep's attempt log, ``nohup``, a batch job) every redraw stays, and a long dataset generation leaves hundreds of
lines. :func:`progress_bar` returns a tqdm bar when the stream is a terminal and otherwise a :class:`LineProgress`,
which prints one line every ``interval_s`` seconds and one at the end::

    generate puzzle-3x3-play: 41.2k/110k transitions (37%), 1.37k transitions/s, ETA 00:50

Both have the same small interface (``update``, ``set_postfix``, ``set_postfix_str``, ``close``, use as a context
manager), so every caller (the offline and online loops, generation, sweeps, evaluation) creates its bar here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

LINE_INTERVAL_S = 30.0
"""Seconds between two progress lines when the stream is not a terminal."""


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str,
    initial: int = 0,
    enabled: bool = True,
    stream: TextIO | None = None,
    interval_s: float = LINE_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    unit_scale: bool = False,
    **tqdm_options,
):
    """A progress display over ``total`` items: a tqdm bar on a terminal, else a :class:`LineProgress`.

    Args:
        total: the number of items at the end.
        desc: what is counted, shown first.
        unit: the item's name (``upd``, ``step``, ``" transitions"``: tqdm's spelling, leading space included).
        initial: items already done (a resumed run).
        enabled: False shows nothing.
        stream: where it is written (``sys.stderr`` when None).
        interval_s: seconds between two lines when ``stream`` is not a terminal.
        clock: seconds as a float (:func:`time.monotonic`; tests pass a fake clock).
        unit_scale: counts and rates with SI prefixes (``110k``).
        tqdm_options: further options for the terminal's tqdm bar (``leave``, ``smoothing``, ``dynamic_ncols``).
    """
    stream = sys.stderr if stream is None else stream
    if enabled and not _is_terminal(stream):
        return LineProgress(
            total,
            desc=desc,
            unit=unit,
            initial=initial,
            stream=stream,
            interval_s=interval_s,
            clock=clock,
            unit_scale=unit_scale,
        )
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        file=stream,
        disable=not enabled,
        **tqdm_options,
    )


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """A progress display for streams that are not terminals: one line every ``interval_s`` seconds and one at the
    end, each with the count, the rate since the display started and the time left (see :func:`progress_bar`)."""

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str,
        initial: int = 0,
        stream: TextIO,
        interval_s: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        unit_scale: bool = False,
    ):
        self.total, self.n, self.initial = total, initial, initial
        self.desc, self.unit, self.unit_scale = desc, unit.strip(), unit_scale
        self.stream, self.interval_s, self.clock = stream, interval_s, clock
        self.postfix = ""
        self.started = self.last_line = clock()
        self.closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; print a line if ``interval_s`` has passed since the last one."""
        self.n += n
        self._maybe_print()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values) -> None:
        """Show ``key=value`` pairs after the count (tqdm's signature)."""
        values = {**(ordered_dict or {}), **values}
        self.set_postfix_str(", ".join(f"{key}={value}" for key, value in values.items()), refresh)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Show ``text`` after the count (tqdm's signature)."""
        self.postfix = str(text)
        self._maybe_print()

    def close(self) -> None:
        """Print the final line (once)."""
        if not self.closed:
            self.closed = True
            self._print(final=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _maybe_print(self) -> None:
        if not self.closed and self.clock() - self.last_line >= self.interval_s:
            self._print(final=False)

    def _print(self, final: bool) -> None:
        from tqdm import tqdm

        now = self.clock()
        self.last_line = now
        elapsed = now - self.started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else None
        parts = [f"{self._count(self.n)}/{self._count(self.total)} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if final:
            parts.append(f"in {tqdm.format_interval(elapsed)}")
        if rate is not None:
            parts.append(f"{self._count(rate, rate=True)} {self.unit}/s")
            if not final and rate > 0 and self.total:
                parts.append(f"ETA {tqdm.format_interval(max(0.0, (self.total - self.n) / rate))}")
        if self.postfix:
            parts.append(self.postfix)
        self.stream.write(f"{self.desc}: {', '.join(parts)}\n")
        self.stream.flush()

    def _count(self, value: float, rate: bool = False) -> str:
        from tqdm import tqdm

        if self.unit_scale:
            return tqdm.format_sizeof(value, divisor=1000)
        if rate:
            return f"{value:.3g}" if value < 100 else f"{value:.0f}"
        return str(int(value))
