"""Offline scaling: final success versus dataset size, network size or subgoal steps, per agent.

The saturating power law

    y(x) = y_inf - a * x ** (-b),     a >= 0, 0 <= b <= 5

says success approaches ``y_inf`` as the resource x grows, with diminishing returns of exponent b. For a fixed b the
model is linear in (y_inf, a), so the fit profiles b: closed-form least squares on a grid of b, then a bounded
scalar refinement.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize_scalar


@dataclasses.dataclass(frozen=True)
class SaturatingPowerLaw:
    """``y(x) = y_inf - a * x ** (-b)``."""

    y_inf: float
    a: float
    b: float

    def __call__(self, x):
        return self.y_inf - self.a * np.asarray(x, dtype=float) ** (-self.b)


def _linear_given_exponent(log_x: np.ndarray, y: np.ndarray, b: float) -> tuple[float, float, float]:
    """Least squares of ``y = y_inf - a * exp(-b log x)`` with a >= 0; returns ``(loss, y_inf, a)``."""
    z = np.exp(-b * log_x)
    z_centered = z - z.mean()
    denominator = float(z_centered @ z_centered)
    a = -float(z_centered @ (y - y.mean())) / denominator if denominator > 0 else 0.0
    a = max(a, 0.0)
    y_inf = float(np.mean(y + a * z))
    loss = float(np.mean((y_inf - a * z - y) ** 2))
    return loss, y_inf, a


def fit_saturating_power_law(x: np.ndarray, y: np.ndarray, max_exponent: float = 5.0) -> SaturatingPowerLaw | None:
    """Least-squares fit of :class:`SaturatingPowerLaw`.

    Args:
        x: ``[P]`` positive resource values (dataset size, parameters, subgoal steps).
        y: ``[P]`` success (or any metric that saturates).
        max_exponent: upper bound of b.

    Returns:
        The law, or None with fewer than 3 distinct x values.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 3:
        return None
    scale = float(np.exp(np.mean(np.log(x))))  # fit in units of the geometric mean of x
    log_x = np.log(x / scale)
    grid = np.linspace(0.0, max_exponent, 101)[1:]
    losses = [_linear_given_exponent(log_x, y, b)[0] for b in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    result = minimize_scalar(lambda b: _linear_given_exponent(log_x, y, b)[0], bounds=(low, high), method="bounded")
    b = float(result.x) if result.fun <= losses[best] else float(grid[best])
    _, y_inf, a = _linear_given_exponent(log_x, y, b)
    return SaturatingPowerLaw(y_inf=y_inf, a=a * scale**b, b=b)


def final_values(values: np.ndarray) -> np.ndarray:
    """Each seed's last logged value: ``[T, S] -> [S]`` (NaN for a seed that never logged)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    last = np.where(finite.any(axis=0), values.shape[0] - 1 - np.argmax(finite[::-1], axis=0), 0)
    out = values[last, np.arange(values.shape[1])]
    return np.where(finite.any(axis=0), out, np.nan)
