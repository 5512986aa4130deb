"""Aggregate statistics for reports (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the interquartile mean and stratified bootstrap confidence intervals.

rliable implements these, but pulls in arch, seaborn, pandas and scipy for what is a few lines of
numpy; these functions follow its definitions (IQM = scipy.stats.trim_mean(x, 0.25) of all runs of
all tasks; stratified bootstrap = runs resampled with replacement within each task; percentile
intervals).
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
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_mean_band(curves: np.ndarray, reps: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `curves` (runs x points): the mean and a percentile bootstrap interval of it."""
    curves = np.asarray(curves, dtype=float)
    rng = np.random.default_rng(seed)
    runs = curves.shape[0]
    means = curves[rng.integers(0, runs, (reps, runs))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return curves.mean(axis=0), low, high
