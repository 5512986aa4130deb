"""Aggregate statistics for reports (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the interquartile mean, stratified bootstrap confidence intervals and the probability
of improvement.

rliable implements these, but pulls in arch, seaborn, pandas and scipy for what is a few lines of
numpy; these functions follow its definitions (IQM = scipy.stats.trim_mean(x, 0.25) of all runs of
all tasks; stratified bootstrap = runs resampled with replacement within each task; percentile
intervals; probability of improvement = the Mann-Whitney U statistic per task, averaged over tasks,
with X's and Y's runs resampled independently within each task for its interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half, trimming floor(n / 4) values at each end."""
    values = np.sort(np.asarray(scores, dtype=float).ravel())
    n = values.size
    if n == 0:
        return float("nan")
    cut = int(0.25 * n)
    return float(values[cut:n - cut].mean())


def stratified_bootstrap_ci(tasks: Sequence[np.ndarray], statistic: Callable[[np.ndarray], float] = iqm,
                            reps: int = 5000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic` over the pooled runs of all tasks, resampling the runs of
    each task with replacement (the number of runs per task is kept)."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(t, dtype=float).ravel() for t in tasks if len(t)]
    if not tasks:
        return float("nan"), float("nan")
    estimates = np.empty(reps)
    for r in range(reps):
        pooled = np.concatenate([t[rng.integers(0, t.size, t.size)] for t in tasks])
        estimates[r] = statistic(pooled)
    return _percentiles(estimates, confidence)


def bootstrap_mean_band(curves: np.ndarray, reps: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `curves` (runs x points): the mean and a percentile bootstrap interval of it."""
    curves = np.asarray(curves, dtype=float)
    rng = np.random.default_rng(seed)
    runs = curves.shape[0]
    means = curves[rng.integers(0, runs, (reps, runs))].mean(axis=1)
    low, high = _percentiles(means, confidence)
    return curves.mean(axis=0), low, high


def _percentiles(estimates: np.ndarray, confidence: float):
    """The central `confidence` percentile interval of bootstrap estimates (along the first axis)."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha], axis=0)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def mean_ci(values: np.ndarray, reps: int = 5000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (e.g. one score per seed)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        return float("nan"), float("nan")
    _, low, high = bootstrap_mean_band(values[:, None], reps, confidence, seed)
    return float(low[0]), float(high[0])


def _pairwise_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """S[i, j] = 1 where x_i > y_j, 1/2 where they tie, 0 otherwise."""
    x, y = x[:, None], y[None, :]
    return (x > y) + 0.5 * (x == y)


def probability_of_improvement(x_tasks: Sequence[np.ndarray], y_tasks: Sequence[np.ndarray]) -> float:
    """P(X > Y): per task, the chance that a run of X scores above a run of Y (ties count half),
    i.e. the Mann-Whitney U statistic over N x M pairs; then the mean over tasks. Tasks pair up by
    position."""
    pairs = _paired(x_tasks, y_tasks)
    if not pairs:
        return float("nan")
    return float(np.mean([_pairwise_wins(x, y).mean() for x, y in pairs]))


def probability_of_improvement_ci(x_tasks: Sequence[np.ndarray], y_tasks: Sequence[np.ndarray], reps: int = 5000,
                                  confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `probability_of_improvement`, resampling X's runs and Y's runs
    independently (with replacement) within each task."""
    pairs = _paired(x_tasks, y_tasks)
    if not pairs:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    estimates = np.zeros(reps)
    for x, y in pairs:
        wins = _pairwise_wins(x, y)
        ix = rng.integers(0, x.size, (reps, x.size))
        iy = rng.integers(0, y.size, (reps, y.size))
        estimates += wins[ix[:, :, None], iy[:, None, :]].mean(axis=(1, 2))
    return _percentiles(estimates / len(pairs), confidence)


def _paired(x_tasks: Sequence[np.ndarray], y_tasks: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(x_tasks) != len(y_tasks):
        raise ValueError(f"probability of improvement: {len(x_tasks)} tasks for X but {len(y_tasks)} for Y")
    pairs = [(np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()) for x, y in zip(x_tasks, y_tasks)]
    return [(x, y) for x, y in pairs if x.size and y.size]
