"""Best batch size and learning rate as functions of the UTD ratio sigma, and the proposals they give.

"B* and eta*" in ``docs/scaling.md`` (Rybkin et al. 2025, arXiv 2502.04327). For every bootstrap replicate and every
group that fixes all but one hyper-parameter (e.g. env, B, sigma), the value of the free one (eta) with the smallest
D_J at the selection threshold wins (NaN counts as infinity; when no configuration of the group reaches J, the
``unreached`` rule decides: ``skip`` the draw, or ``first``, the reference's smallest value); the winners are averaged
over the other hyper-parameter and over replicates, and fitted in log space:

    log10 eta*(sigma) = s_eta * log10 sigma + a_env,     log10 B*(sigma) = s_B * log10 sigma + b_env

with one slope shared across environments (OLS with environment dummies), or per environment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalerl.errors import ScalerlError
from scalerl.scaling.estimates import Estimate, estimate

UNREACHED_RULES = ("skip", "first")
"""What a group's winner is in a replicate where none of its configurations reaches J: ``skip`` leaves it out of
the averages (scalerl's default); ``first`` takes the smallest value of the free hyper-parameter, the reference's
rule (qscaled ``core/grid_search/bootstrapping.py``: ``np.argmin`` over all-infinite times returns index 0 of the
ascending grid)."""


@dataclasses.dataclass(frozen=True)
class BestValues:
    """The averaged best value of one hyper-parameter per cell (environment, sigma[, N]).

    Attributes:
        cells: ``[G, K]`` the cell keys; column 0 is the environment index and column 1 sigma.
        value: ``[G]`` best value averaged over the other hyper-parameter and over bootstrap replicates.
        replicates: ``[G, R]`` best value of each replicate, averaged over the other hyper-parameter only.
        unreached: ``[H, R]`` per group (cell and value of the other hyper-parameter) and replicate, whether no
            configuration of the group reached the threshold (the draws the ``unreached`` rule decides).
    """

    cells: np.ndarray
    value: np.ndarray
    replicates: np.ndarray
    unreached: np.ndarray | None = None

    def unreached_counts(self) -> dict[str, int]:
        """Groups with at least one unreached draw, unreached draws, and the totals they are out of."""
        unreached = np.zeros((0, 0), dtype=bool) if self.unreached is None else self.unreached
        return {
            "groups": int(unreached.any(axis=1).sum()),
            "groups_never": int(unreached.all(axis=1).sum()),
            "groups_total": int(unreached.shape[0]),
            "draws": int(unreached.sum()),
            "draws_total": int(unreached.size),
        }

    @property
    def envs(self) -> np.ndarray:
        """``[G]`` environment index of each cell."""
        return self.cells[:, 0].astype(int)

    @property
    def utds(self) -> np.ndarray:
        """``[G]`` sigma of each cell."""
        return self.cells[:, 1]


@dataclasses.dataclass(frozen=True)
class LogLinearFit:
    """``log10 y = slope * log10 sigma + intercept[env]`` with bootstrap intervals.

    Attributes:
        slopes: ``{env index: slope}``; the same Estimate for every environment when the slope is shared.
        intercepts: ``{env index: log10 intercept}``.
        shared: whether the slope is shared across environments.
    """

    slopes: dict[int, Estimate]
    intercepts: dict[int, Estimate]
    shared: bool
    replicate_slopes: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    replicate_intercepts: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    def predict(self, env: int, utd: np.ndarray) -> np.ndarray:
        """``y(sigma)`` of environment ``env`` at the point estimates."""
        return 10 ** (self.slopes[env].value * np.log10(np.asarray(utd, dtype=float)) + self.intercepts[env].value)

    def predict_estimate(self, env: int, utd: float, level: float = 0.95) -> Estimate:
        """``y(sigma)`` with the interval of the same prediction from each replicate's fit."""
        samples = 10 ** (self.replicate_slopes[env] * np.log10(utd) + self.replicate_intercepts[env])
        return estimate(float(self.predict(env, utd)), samples, level)


def check_unreached_rule(unreached: str) -> None:
    """Raise a one-line :class:`ScalerlError` naming ``--unreached`` unless ``unreached`` is a rule of
    :data:`UNREACHED_RULES`."""
    if unreached not in UNREACHED_RULES:
        raise ScalerlError(f"--unreached: expected one of {', '.join(UNREACHED_RULES)}, got '{unreached}'")


def best_per_replicate(
    group: np.ndarray, values: np.ndarray, times: np.ndarray, unreached: str = "skip"
) -> tuple[np.ndarray, np.ndarray]:
    """In each group, the value whose configuration reaches the threshold first, per bootstrap replicate.

    Ties go to the smaller value, as in the reference (``np.argmin`` over the ascending grid).

    Args:
        group: ``[C]`` group id of each configuration (configurations sharing all other hyper-parameters).
        values: ``[C]`` the free hyper-parameter of each configuration.
        times: ``[C, R]`` D_J of each configuration in each replicate (NaN: never reached, i.e. infinity).
        unreached: when no configuration of a group reaches J in a replicate: ``skip`` gives NaN (left out of
            the averages); ``first`` takes the group's smallest value, as the reference does (see
            :data:`UNREACHED_RULES`).

    Returns:
        ``(groups [G], best [G, R])``.
    """
    check_unreached_rule(unreached)
    group = np.asarray(group)
    values = np.asarray(values, dtype=float)
    times = np.where(np.isnan(times), np.inf, np.asarray(times, dtype=float))
    groups = np.unique(group)
    best = np.full((len(groups), times.shape[1]), np.nan)
    for row, g in enumerate(groups):
        members = np.flatnonzero(group == g)
        members = members[np.argsort(values[members], kind="stable")]
        winner = np.argmin(times[members], axis=0)  # [R]; index 0 (the smallest value) when all are infinite
        best[row] = values[members][winner]
        if unreached == "skip":
            best[row, ~np.isfinite(times[members].min(axis=0))] = np.nan
    return groups, best


def unreached_draws(group: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``[G, R]`` whether no configuration of each group (in ``np.unique(group)`` order) reaches J in a replicate.

    Args:
        group: ``[C]`` group id of each configuration.
        times: ``[C, R]`` D_J per configuration and replicate (NaN: never reached).
    """
    group = np.asarray(group)
    reached = np.isfinite(np.asarray(times, dtype=float))
    return np.stack([~reached[group == g].any(axis=0) for g in np.unique(group)]).reshape(-1, reached.shape[1])


def best_values(
    cells: np.ndarray, free: np.ndarray, other: np.ndarray, times: np.ndarray, unreached: str = "skip"
) -> BestValues:
    """The bootstrap-averaged best value of the ``free`` hyper-parameter per cell.

    The average is the plain mean over the other hyper-parameter's values and the replicates, as in the reference
    (qscaled ``compute_bootstrap_averages``); under ``skip`` the unreached draws are left out of it.

    Args:
        cells: ``[C, K]`` cell key of each configuration: environment index, sigma (and N for model-size sweeps).
        free: ``[C]`` the hyper-parameter being chosen (eta for eta*, B for B*).
        other: ``[C]`` the hyper-parameter averaged over (B for eta*, eta for B*); constant if there is none.
        times: ``[C, R]`` bootstrap D_J at the selection threshold.
        unreached: see :func:`best_per_replicate`.
    """
    cells = np.asarray(cells, dtype=float)
    keys = np.column_stack([cells, np.asarray(other, dtype=float)])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    groups, best = best_per_replicate(group, free, times, unreached)
    first = np.array([np.flatnonzero(group == g)[0] for g in groups])
    unique_cells, cell_of_group = np.unique(cells[first], axis=0, return_inverse=True)
    cell_of_group = cell_of_group.reshape(-1)
    replicates = np.full((len(unique_cells), times.shape[1]), np.nan)
    value = np.full(len(unique_cells), np.nan)
    with _quiet():
        for cell in range(len(unique_cells)):
            rows = best[cell_of_group == cell]  # [groups in cell, R]
            replicates[cell] = np.nanmean(rows, axis=0)
            value[cell] = np.nanmean(rows)
    return BestValues(unique_cells, value, replicates, unreached_draws(group, times))


def fit_log_linear(
    envs: np.ndarray, utds: np.ndarray, values: np.ndarray, shared: bool = True, drop_highest_utd: bool = False
) -> tuple:
    """OLS of ``log10 values`` on ``log10 utds``: one slope shared across environments or one per environment.

    Args:
        envs: ``[G]`` environment index.
        utds: ``[G]`` sigma.
        values: ``[G]`` positive values (non-finite rows are dropped).
        shared: a single slope with one intercept per environment (environment dummies), else separate lines.
        drop_highest_utd: leave each environment's highest sigma out of the fit, as the reference does for its
            per-environment slopes (qscaled ``make_linear_fit_separate_slope`` fits ``values[:-1]`` of rows sorted
            by sigma; its shared fit keeps every sigma).

    Returns:
        ``(slopes {env: float}, intercepts {env: float})`` in log10 units; NaN for an environment with too few points.
    """
    envs, utds, values = np.asarray(envs), np.asarray(utds, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0) & (utds > 0)
    if drop_highest_utd:
        for env in np.unique(envs):
            keep &= ~((envs == env) & (utds == utds[envs == env].max()))
    unique_envs = np.unique(envs)
    x, y, e = np.log10(utds[keep]), np.log10(values[keep]), envs[keep]
    slopes, intercepts = {}, {}
    if shared:
        present = [env for env in unique_envs if np.any(e == env)]
        design = np.column_stack([x] + [(e == env).astype(float) for env in present])
        if len(present) == 0 or len(y) < len(present) + 1 or np.ptp(x) == 0:
            return {int(env): np.nan for env in unique_envs}, {int(env): np.nan for env in unique_envs}
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        for env in unique_envs:
            slopes[int(env)] = float(coef[0])
            intercepts[int(env)] = float(coef[1 + present.index(env)]) if env in present else np.nan
        return slopes, intercepts
    for env in unique_envs:
        mask = e == env
        if mask.sum() < 2 or np.ptp(x[mask]) == 0:
            slopes[int(env)], intercepts[int(env)] = np.nan, np.nan
            continue
        slope, intercept = np.polyfit(x[mask], y[mask], 1)
        slopes[int(env)], intercepts[int(env)] = float(slope), float(intercept)
    return slopes, intercepts


def fit_best_values(
    best: BestValues, shared: bool = True, level: float = 0.95, drop_highest_utd: bool = False
) -> LogLinearFit:
    """Fit :func:`fit_log_linear` to the bootstrap-averaged best values; intervals from a fit per replicate."""
    slopes, intercepts = fit_log_linear(best.envs, best.utds, best.value, shared, drop_highest_utd)
    replicate_fits = [
        fit_log_linear(best.envs, best.utds, best.replicates[:, r], shared, drop_highest_utd)
        for r in range(best.replicates.shape[1])
    ]
    slope_estimates, intercept_estimates, slope_samples, intercept_samples = {}, {}, {}, {}
    for env in slopes:
        slope_samples[env] = np.array([fit[0][env] for fit in replicate_fits])
        intercept_samples[env] = np.array([fit[1][env] for fit in replicate_fits])
        slope_estimates[env] = estimate(slopes[env], slope_samples[env], level)
        intercept_estimates[env] = estimate(intercepts[env], intercept_samples[env], level)
    return LogLinearFit(slope_estimates, intercept_estimates, shared, slope_samples, intercept_samples)


def round_batch_size(batch_size: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Round proposed batch sizes to a multiple of ``multiple`` (at least ``multiple``)."""
    rounded = np.round(np.asarray(batch_size, dtype=float) / multiple) * multiple
    return np.maximum(rounded, multiple).astype(int)


def baseline_best(
    envs: np.ndarray, utds: np.ndarray, batch_sizes: np.ndarray, lrs: np.ndarray, times: np.ndarray, utd: float
) -> dict[int, tuple[float, float]]:
    """The baseline: per environment, the (B, eta) with the smallest D_J at ``utd`` (reused at every sigma).

    Args:
        times: ``[C]`` point-estimate D_J at the selection threshold (NaN: infinity).

    Returns:
        ``{env: (batch_size, lr)}`` for environments that have configurations at ``utd``.
    """
    out = {}
    times = np.where(np.isnan(times), np.inf, times)
    for env in np.unique(envs):
        rows = np.flatnonzero((envs == env) & np.isclose(utds, utd))
        if rows.size:
            best = rows[np.argmin(times[rows])]
            out[int(env)] = (float(batch_sizes[best]), float(lrs[best]))
    return out


class _quiet:
    """Silence numpy's 'Mean of empty slice' warnings inside a block."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)
