"""Model-size scaling: B*(sigma, N), D_J(sigma, N) and the compute-optimal (sigma*, N*) for a budget.

"Model size" in ``docs/scaling.md`` (Fu, Rybkin et al. 2025, "Compute-Optimal Scaling for Value-Based Deep RL",
arXiv 2508.14881):

    B*(sigma, N)  = a / (sigma ** alpha * (1 + (b / N) ** c))
    D_J(sigma, N) = c0 * (1 + (a / sigma) ** alpha + (b / N) ** beta)

both fitted in log space with positive parameters (scales as exp, exponents as softplus) by L-BFGS-B from several
starts. Compute is ``C = k * B * sigma * N * D`` and the compute-optimal split of a budget minimises
``C + delta * D`` over (sigma, N).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize

from scalerl.scaling._threads import single_threaded_blas


def softplus(x):
    """``log(1 + exp(x))``, numerically stable."""
    return np.logaddexp(0.0, x)


def _inverse_softplus(y: float) -> float:
    return float(np.log(np.expm1(y)))


@dataclasses.dataclass(frozen=True)
class BatchSizeModel:
    """``B*(sigma, N) = a / (sigma ** alpha * (1 + (b / N) ** c))``."""

    a: float
    alpha: float
    b: float
    c: float

    def __call__(self, utd, n_params):
        utd, n_params = np.asarray(utd, dtype=float), np.asarray(n_params, dtype=float)
        return self.a / (utd**self.alpha * (1 + (self.b / n_params) ** self.c))


@dataclasses.dataclass(frozen=True)
class DataModel:
    """``D_J(sigma, N) = c0 * (1 + (a / sigma) ** alpha + (b / N) ** beta)``."""

    c0: float
    a: float
    alpha: float
    b: float
    beta: float

    def __call__(self, utd, n_params):
        utd, n_params = np.asarray(utd, dtype=float), np.asarray(n_params, dtype=float)
        return self.c0 * (1 + (self.a / utd) ** self.alpha + (self.b / n_params) ** self.beta)


def _best_of_starts(objective, starts) -> np.ndarray:
    best = None
    with single_threaded_blas():
        for start in starts:
            result = minimize(objective, np.asarray(start, dtype=float), method="L-BFGS-B")
            if best is None or (np.isfinite(result.fun) and result.fun < best.fun):
                best = result
    return best.x


def fit_batch_size_model(utds: np.ndarray, n_params: np.ndarray, batch_sizes: np.ndarray) -> BatchSizeModel | None:
    """Fit ``B*(sigma, N)`` to best batch sizes; squared error of ``log B``.

    Args:
        utds, n_params, batch_sizes: ``[P]`` points (non-finite or non-positive ones dropped).

    Returns:
        The model, or None with fewer than 4 points.
    """
    utds, n_params, batch_sizes = (np.asarray(v, dtype=float) for v in (utds, n_params, batch_sizes))
    keep = np.isfinite(batch_sizes) & (batch_sizes > 0) & (utds > 0) & (n_params > 0)
    log_u, log_n, log_b = np.log(utds[keep]), np.log(n_params[keep]), np.log(batch_sizes[keep])
    if len(log_b) < 4:
        return None

    def unpack(theta):
        return theta[0], softplus(theta[1]), theta[2], softplus(theta[3])

    def objective(theta):
        log_a, alpha, log_b_scale, c = unpack(theta)
        prediction = log_a - alpha * log_u - np.logaddexp(0.0, c * (log_b_scale - log_n))
        return float(np.mean((prediction - log_b) ** 2))

    starts = [
        [log_b.max() + 1.0, _inverse_softplus(alpha), log_scale, _inverse_softplus(c)]
        for alpha in (0.2, 0.8)
        for log_scale in (log_n.min(), np.median(log_n))
        for c in (0.5, 2.0)
    ]
    log_a, alpha, log_b_scale, c = unpack(_best_of_starts(objective, starts))
    return BatchSizeModel(float(np.exp(log_a)), float(alpha), float(np.exp(log_b_scale)), float(c))


def fit_data_model(utds: np.ndarray, n_params: np.ndarray, data: np.ndarray) -> DataModel | None:
    """Fit ``D_J(sigma, N)`` to crossings; squared error of ``log D``.

    Returns:
        The model, or None with fewer than 5 finite points.
    """
    utds, n_params, data = (np.asarray(v, dtype=float) for v in (utds, n_params, data))
    keep = np.isfinite(data) & (data > 0) & (utds > 0) & (n_params > 0)
    log_u, log_n, log_d = np.log(utds[keep]), np.log(n_params[keep]), np.log(data[keep])
    if len(log_d) < 5:
        return None

    def unpack(theta):
        return theta[0], theta[1], softplus(theta[2]), theta[3], softplus(theta[4])

    def objective(theta):
        log_c0, log_a, alpha, log_b, beta = unpack(theta)
        terms = np.stack([np.zeros_like(log_u), alpha * (log_a - log_u), beta * (log_b - log_n)])
        prediction = log_c0 + np.logaddexp.reduce(terms, axis=0)
        return float(np.mean((prediction - log_d) ** 2))

    starts = [
        [log_d.min() - 0.5, log_a, _inverse_softplus(alpha), log_b, _inverse_softplus(0.5)]
        for log_a in (log_u.min(), log_u.max())
        for alpha in (0.5, 1.5)
        for log_b in (log_n.min(), log_n.max())
    ]
    log_c0, log_a, alpha, log_b, beta = unpack(_best_of_starts(objective, starts))
    return DataModel(float(np.exp(log_c0)), float(np.exp(log_a)), float(alpha), float(np.exp(log_b)), float(beta))


@dataclasses.dataclass(frozen=True)
class ComputeOptimum:
    """The cheapest (sigma, N) for one threshold: ``F = C + delta * D`` at its minimum."""

    utd: float
    n_params: float
    budget: float
    compute: float
    data: float


def compute_optimal(
    batch_model: BatchSizeModel,
    data_model: DataModel,
    delta: float,
    utd_range: tuple[float, float],
    n_params_range: tuple[float, float],
    k: float = 10.0,
    grid_size: int = 121,
) -> ComputeOptimum:
    """Minimise ``k * B*(sigma, N) * sigma * N * D(sigma, N) + delta * D(sigma, N)`` on a log grid.

    Args:
        batch_model: B*(sigma, N).
        data_model: D_J(sigma, N) of one threshold.
        delta: data-to-compute conversion.
        utd_range, n_params_range: the (sigma, N) box searched (extrapolation beyond the sweep is allowed).
        k: FLOPs per parameter per sample.
        grid_size: points per axis.
    """
    utd = np.geomspace(*utd_range, grid_size)[:, None]
    n_params = np.geomspace(*n_params_range, grid_size)[None, :]
    data = data_model(utd, n_params)
    compute = k * batch_model(utd, n_params) * utd * n_params * data
    budget = compute + delta * data
    i, j = np.unravel_index(np.argmin(budget), budget.shape)
    return ComputeOptimum(
        float(utd[i, 0]), float(n_params[0, j]), float(budget[i, j]), float(compute[i, j]), float(data[i, j])
    )


def fit_power_law_in_budget(budgets: np.ndarray, values: np.ndarray, heldout: int = 1) -> tuple | None:
    """``log10 value = intercept + slope * log10 F`` on all but the last ``heldout`` points.

    Returns:
        ``(slope, intercept, heldout log10 errors [heldout])`` or None if there are too few points.
    """
    budgets, values = np.asarray(budgets, dtype=float), np.asarray(values, dtype=float)
    valid = np.isfinite(budgets) & np.isfinite(values) & (budgets > 0) & (values > 0)
    budgets, values = budgets[valid], values[valid]
    heldout = min(heldout, max(len(budgets) - 2, 0))
    split = len(budgets) - heldout
    x, y = np.log10(budgets[:split]), np.log10(values[:split])
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    errors = intercept + slope * np.log10(budgets[split:]) - np.log10(values[split:])
    return float(slope), float(intercept), errors
