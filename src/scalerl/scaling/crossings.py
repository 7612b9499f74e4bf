"""Data to threshold: isotonic seed-mean curves, first threshold crossings, and their bootstrap over seeds.

"Data to threshold" in ``docs/scaling.md`` (Rybkin et al. 2025, "Value-Based Deep RL Scales Predictably",
arXiv 2502.04327): average the return curve over seeds, fit an increasing isotonic regression of the mean against
the step, and take the first logged step at which it reaches the threshold J (NaN when it never does). Resampling
the seeds with replacement and redoing this gives the bootstrap distribution of D_J that drives hyper-parameter
selection and every confidence interval downstream. All functions here are pure numpy/scipy on arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import isotonic_regression


def isotonic_increasing(values: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit of a curve (pool-adjacent-violators).

    Args:
        values: ``[T]`` curve; NaN entries (steps no seed logged) are skipped and filled from the fit's left
            neighbour (or right neighbour at the start).

    Returns:
        ``[T]`` non-decreasing curve (all NaN if ``values`` is).
    """
    values = np.asarray(values, dtype=float)
    valid = np.isfinite(values)
    if valid.all():
        return isotonic_regression(values, increasing=True).x
    out = np.full(values.shape, np.nan)
    if not valid.any():
        return out
    out[valid] = isotonic_regression(values[valid], increasing=True).x
    # Carry the fit over the gaps so the result stays monotone.
    index = np.where(valid, np.arange(len(values)), -1)
    index = np.maximum.accumulate(index)
    first = np.argmax(valid)
    index[:first] = first
    return out[index]


def first_crossings(
    steps: np.ndarray, curves: np.ndarray, thresholds: np.ndarray, interpolate: bool = False
) -> np.ndarray:
    """First step at which each non-decreasing curve reaches each threshold.

    Args:
        steps: ``[T]`` increasing logged steps.
        curves: ``[..., T]`` non-decreasing curves (e.g. isotonic seed means).
        thresholds: ``[J]`` thresholds.
        interpolate: if True, interpolate linearly between the last log point below the threshold and the first one
            at or above it (the reference takes the logged step itself, so its resolution is the log interval).

    Returns:
        ``[..., J]`` crossing steps; NaN where a curve never reaches the threshold.
    """
    steps = np.asarray(steps, dtype=float)
    curves = np.asarray(curves, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float)
    reached = curves[..., None, :] >= thresholds[:, None]  # [..., J, T]
    ever = reached.any(axis=-1)
    index = np.argmax(reached, axis=-1)  # [..., J] first True
    crossing = steps[index]
    if interpolate:
        previous = np.maximum(index - 1, 0)
        upper = np.take_along_axis(curves[..., None, :], index[..., None], axis=-1)[..., 0]
        lower = np.take_along_axis(curves[..., None, :], previous[..., None], axis=-1)[..., 0]
        rise = upper - lower
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(rise > 0, (thresholds - lower) / rise, 1.0)
        between = (index > 0) & (lower < thresholds)
        crossing = np.where(between, steps[previous] + fraction * (steps[index] - steps[previous]), crossing)
    return np.where(ever, crossing, np.nan)


def seed_mean_crossings(
    steps: np.ndarray, returns: np.ndarray, thresholds: np.ndarray, interpolate: bool = False
) -> np.ndarray:
    """D_J of one configuration: crossings of the isotonic fit of the seed-mean curve.

    Args:
        steps: ``[T]`` logged steps.
        returns: ``[T, S]`` returns, one column per seed (NaN where a seed did not log).
        thresholds: ``[J]``.
        interpolate: see :func:`first_crossings`.

    Returns:
        ``[J]`` crossing steps (NaN: never reached).
    """
    with np.errstate(invalid="ignore"):
        mean = _nanmean(np.asarray(returns, dtype=float), axis=1)
    return first_crossings(steps, isotonic_increasing(mean), thresholds, interpolate)


def bootstrap_crossings(
    steps: np.ndarray,
    returns: np.ndarray,
    thresholds: np.ndarray,
    num_bootstrap: int,
    rng: np.random.Generator,
    interpolate: bool = False,
) -> np.ndarray:
    """Bootstrap distribution of D_J: resample seeds with replacement, redo the seed mean, isotonic fit and crossing.

    Args:
        steps: ``[T]``.
        returns: ``[T, S]``.
        thresholds: ``[J]``.
        num_bootstrap: number of resamples (the reference uses 100).
        rng: the generator that draws the resampled seed indices.
        interpolate: see :func:`first_crossings`.

    Returns:
        ``[num_bootstrap, J]`` crossing steps.
    """
    returns = np.asarray(returns, dtype=float)
    num_seeds = returns.shape[1]
    picks = rng.integers(0, num_seeds, size=(num_bootstrap, num_seeds))
    # How often each seed is drawn in each resample: a seed mean is then a weighted sum (two small matmuls).
    weights = np.zeros((num_bootstrap, num_seeds))
    np.add.at(weights, (np.arange(num_bootstrap)[:, None], picks), 1.0)
    finite = np.isfinite(returns)
    totals = weights @ np.where(finite, returns, 0.0).T  # [num_bootstrap, T]
    counts = weights @ finite.T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, totals / np.maximum(counts, 1e-12), np.nan)
    fitted = np.stack([isotonic_increasing(mean) for mean in means])
    return first_crossings(steps, fitted, thresholds, interpolate)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    count = np.sum(np.isfinite(values), axis=axis)
    total = np.nansum(values, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
