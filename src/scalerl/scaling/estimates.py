"""A fitted number with its bootstrap confidence interval, and helpers shared by the fitters."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate and a percentile bootstrap confidence interval.

    Attributes:
        value: the point estimate (fit on the full data, or on bootstrap averages where the method says so).
        low: lower end of the interval (NaN when there were no valid bootstrap fits).
        high: upper end of the interval.
    """

    value: float
    low: float
    high: float

    def to_json(self) -> dict:
        """``{"value", "ci": [low, high]}`` with NaN written as None."""
        return {"value": _finite_or_none(self.value), "ci": [_finite_or_none(self.low), _finite_or_none(self.high)]}


def estimate(value: float, samples: np.ndarray, level: float = 0.95) -> Estimate:
    """An :class:`Estimate` from a point value and bootstrap samples (non-finite samples are ignored)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Estimate(float(value), float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high))


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
