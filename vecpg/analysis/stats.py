"""Small statistics helpers (aggregate metrics with bootstrap CIs come with sweeps)."""

from __future__ import annotations

import numpy as np
import scipy.stats


def mean_ci95(x: np.ndarray) -> tuple[float, float, float]:
    """Mean of x [n] with a two-sided 95% Student-t interval (lo = hi = mean if n == 1)."""
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, mean, mean
    half = scipy.stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, mean - half, mean + half


def mean_bootstrap_curve(
    x: np.ndarray, reps: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise mean of x [n, T] with a percentile-bootstrap CI of the mean -> (mean,
    lo, hi), each [T]. Resample means lie between the column's smallest and largest
    values, so the band never leaves the observed range (a Student-t band on bounded
    returns can: CartPole's went above 500). One resampling of the n rows serves all T
    columns (multinomial counts [reps, n] @ x)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    mean = x.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=reps)
    means = counts @ x / n  # [reps, T]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return mean, lo, hi


# Aggregate metrics over runs x tasks (Agarwal et al. 2021; rliable is the reference).
# scores: [runs, tasks], already normalised per task where wanted (normalize_scores).


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all run x task scores."""
    return float(scipy.stats.trim_mean(np.asarray(scores).ravel(), proportiontocut=0.25))


def aggregate_mean(scores: np.ndarray) -> float:
    return float(np.mean(np.mean(scores, axis=0)))


def aggregate_median(scores: np.ndarray) -> float:
    return float(np.median(np.mean(scores, axis=0)))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """Mean shortfall below the target `gamma` (scores above it count as 0)."""
    return float(np.mean(np.maximum(gamma - np.asarray(scores), 0.0)))


def normalize_scores(scores: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(score - low) / (high - low) per task; scores [runs, tasks], low/high [tasks]."""
    return (np.asarray(scores) - low) / (np.asarray(high) - np.asarray(low))


def stratified_bootstrap_ci(
    scores: np.ndarray, statistic, reps: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of `statistic(scores)`, resampling runs with replacement within each
    task (column) independently."""
    scores = np.asarray(scores)
    rng = np.random.default_rng(seed)
    runs, tasks = scores.shape
    stats = np.empty(reps)
    for b in range(reps):
        idx = rng.integers(0, runs, size=(runs, tasks))
        stats[b] = statistic(np.take_along_axis(scores, idx, axis=0))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) averaged over tasks, ties counting 1/2: x [runs_x, tasks], y [runs_y, tasks]."""
    x, y = np.asarray(x), np.asarray(y)
    per_task = []
    for t in range(x.shape[1]):
        gt = (x[:, t, None] > y[None, :, t]).mean()
        eq = (x[:, t, None] == y[None, :, t]).mean()
        per_task.append(gt + 0.5 * eq)
    return float(np.mean(per_task))


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs scoring above each tau, averaged over tasks: [len(taus)]."""
    scores = np.asarray(scores)
    return np.array([np.mean(np.mean(scores > tau, axis=0)) for tau in taus])
