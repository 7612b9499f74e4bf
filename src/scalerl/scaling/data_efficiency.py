"""Data efficiency D_J(sigma), its cross-environment aggregation, compute C_J, the Pareto frontier and sigma*.

"Data efficiency" and "Compute, Pareto frontier, budget" in ``docs/scaling.md`` (Rybkin et al. 2025, arXiv
2502.04327):

    D_J(sigma) = D_min + (beta / sigma) ** alpha                 (per threshold J)
    C_J(sigma) = k * sigma * B*(sigma) * N * D_J(sigma)
    F = C + delta * D,    sigma*_J = argmin_sigma F,    log10 sigma* = q + p * log10 F*

D_J is fitted on data aggregated over environments: each environment's crossings are divided by its median
crossing, averaged over environments and rescaled by the median of the medians. The fit is a coarse grid over
(alpha, log beta) with D_min solved in closed form (zoomed in twice), then L-BFGS-B from the best grid point, on
squared error.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.optimize import minimize

from scalerl.scaling._threads import single_threaded_blas


@dataclasses.dataclass(frozen=True)
class DataEfficiencyParams:
    """``D(sigma) = d_min + (beta / sigma) ** alpha``."""

    d_min: float
    beta: float
    alpha: float

    def __call__(self, utd: np.ndarray) -> np.ndarray:
        return data_efficiency(utd, self)


def data_efficiency(utd: np.ndarray, params: DataEfficiencyParams) -> np.ndarray:
    """Evaluate ``D_min + (beta / sigma) ** alpha``."""
    return params.d_min + (params.beta / np.asarray(utd, dtype=float)) ** params.alpha


def normalise_across_envs(crossings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate D_J over environments (median normalisation).

    Args:
        crossings: ``[E, U]`` D_J of each environment at each sigma (NaN: not reached).

    Returns:
        ``(aggregate [U], medians [E])``: per sigma, the mean over environments of ``D / median_env(D)`` rescaled by
        the median of the medians (NaN where no environment reached J).
    """
    crossings = np.asarray(crossings, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(crossings, axis=1)  # [E]
        normalised = crossings / medians[:, None]
        aggregate = np.nanmean(normalised, axis=0) * np.nanmedian(medians)
    return aggregate, medians


def _profile_grid(log_utds, target, alphas, log_betas):
    """Loss of every (alpha, log beta) grid point with D_min solved in closed form; returns ``(loss, d_min)``."""
    curve = np.exp(alphas[:, None, None] * (log_betas[None, :, None] - log_utds[None, None, :]))  # [A, B, U]
    d_min = np.clip((target - curve).mean(axis=-1), 0.0, None)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = ((d_min[..., None] + curve - target) ** 2).mean(axis=-1)
    return np.where(np.isfinite(loss), loss, np.inf), d_min


def fit_data_efficiency(
    utds: np.ndarray, data: np.ndarray, grid_size: int = 40, refinements: int = 2, starts: int = 1
) -> DataEfficiencyParams | None:
    """Least-squares fit of ``D(sigma) = D_min + (beta / sigma) ** alpha`` (all parameters >= 0).

    A coarse (alpha, log beta) grid with D_min in closed form, zoomed in ``refinements`` times around the best point,
    then L-BFGS-B on all three parameters from the ``starts`` best points.

    Args:
        utds: ``[U]`` sigma values.
        data: ``[U]`` D_J values (non-finite entries are dropped).
        grid_size: points per axis of the coarse grid.
        refinements: zoom-in rounds of the grid.
        starts: how many of the best grid points start an L-BFGS-B refinement.

    Returns:
        The parameters, or None with fewer than 3 finite points.
    """
    utds, data = np.asarray(utds, dtype=float), np.asarray(data, dtype=float)
    keep = np.isfinite(data) & (utds > 0)
    utds, data = utds[keep], data[keep]
    if len(data) < 3:
        return None
    scale = float(np.median(data))  # fit in units of the median, so the grid is scale-free
    target, log_utds = data / scale, np.log(utds)
    alphas = np.linspace(0.05, 4.0, grid_size)
    log_betas = np.linspace(log_utds.min() - 3.0, log_utds.max() + 6.0, grid_size)
    loss, d_min = _profile_grid(log_utds, target, alphas, log_betas)
    for _ in range(refinements):
        a, b = np.unravel_index(np.argmin(loss), loss.shape)
        alpha_step, beta_step = alphas[1] - alphas[0], log_betas[1] - log_betas[0]
        alphas = np.linspace(max(alphas[a] - 2 * alpha_step, 1e-3), alphas[a] + 2 * alpha_step, 21)
        log_betas = np.linspace(log_betas[b] - 2 * beta_step, log_betas[b] + 2 * beta_step, 21)
        loss, d_min = _profile_grid(log_utds, target, alphas, log_betas)

    def objective(theta):
        d, log_beta, alpha = theta
        prediction = d + np.exp(alpha * (log_beta - log_utds))
        return float(np.mean((prediction - target) ** 2))

    candidates = []
    for flat in np.argsort(loss, axis=None)[:starts]:
        a, b = np.unravel_index(flat, loss.shape)
        start = np.array([d_min[a, b], log_betas[b], alphas[a]])
        candidates.append((float(loss[a, b]), start))
        bounds = [(0.0, None), (None, None), (1e-3, 10.0)]
        with single_threaded_blas():
            result = minimize(objective, start, method="L-BFGS-B", bounds=bounds)
        if np.isfinite(result.fun):
            candidates.append((float(result.fun), result.x))
    _, (d, log_beta, alpha) = min(candidates, key=lambda item: item[0])
    beta = float(np.exp(log_beta) * scale ** (1 / alpha))
    return DataEfficiencyParams(d_min=float(d * scale), beta=beta, alpha=float(alpha))


def compute_to_threshold(
    utd: np.ndarray, batch_size: np.ndarray, n_params: float, data: np.ndarray, k: float = 10.0
) -> np.ndarray:
    """``C_J = k * sigma * B * N * D_J``: FLOPs-like compute to reach J (the reference uses ``k = 10``)."""
    return k * np.asarray(utd) * np.asarray(batch_size) * n_params * np.asarray(data)


def pareto_mask(compute: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Points not dominated in (compute, data): no other point has both less compute and less data."""
    compute, data = np.asarray(compute, dtype=float), np.asarray(data, dtype=float)
    order = np.argsort(compute, kind="stable")
    mask = np.zeros(len(compute), dtype=bool)
    best_data = np.inf
    for index in order:
        if data[index] < best_data:
            mask[index] = True
            best_data = data[index]
    return mask


@dataclasses.dataclass(frozen=True)
class BudgetOptimum:
    """The cheapest point of one threshold's frontier under ``F = C + delta * D``."""

    utd: float
    budget: float
    compute: float
    data: float


def budget_optimum(utds: np.ndarray, compute: np.ndarray, data: np.ndarray, delta: float) -> BudgetOptimum:
    """``sigma* = argmin_sigma C(sigma) + delta * D(sigma)`` over a dense sigma grid."""
    budget = np.asarray(compute) + delta * np.asarray(data)
    budget = np.where(np.isfinite(budget), budget, np.inf)
    best = int(np.argmin(budget))
    return BudgetOptimum(float(utds[best]), float(budget[best]), float(compute[best]), float(data[best]))


@dataclasses.dataclass(frozen=True)
class BudgetLaw:
    """``log10 sigma* = intercept + slope * log10 F*`` fitted on the lower thresholds, checked on held-out ones.

    Attributes:
        slope: p.
        intercept: q.
        heldout_log10_error: per held-out threshold, ``log10 predicted sigma* - log10 observed sigma*``.
    """

    slope: float
    intercept: float
    heldout_log10_error: np.ndarray

    def __call__(self, budget: np.ndarray) -> np.ndarray:
        return 10 ** (self.intercept + self.slope * np.log10(np.asarray(budget, dtype=float)))


def fit_budget_law(budgets: np.ndarray, utds: np.ndarray, heldout: int = 1) -> BudgetLaw | None:
    """Fit ``log10 sigma* = q + p log10 F*`` on all but the last ``heldout`` points (thresholds in increasing order).

    Returns None with fewer than two fitting points or no spread in F.
    """
    budgets, utds = np.asarray(budgets, dtype=float), np.asarray(utds, dtype=float)
    valid = np.isfinite(budgets) & np.isfinite(utds) & (budgets > 0) & (utds > 0)
    budgets, utds = budgets[valid], utds[valid]
    heldout = min(heldout, max(len(budgets) - 2, 0))
    train = slice(0, len(budgets) - heldout)
    x, y = np.log10(budgets[train]), np.log10(utds[train])
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    test_x, test_y = np.log10(budgets[len(budgets) - heldout :]), np.log10(utds[len(budgets) - heldout :])
    return BudgetLaw(float(slope), float(intercept), intercept + slope * test_x - test_y)
