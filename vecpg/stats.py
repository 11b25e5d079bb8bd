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


def mean_ci95_curve(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise `mean_ci95` of x [n, T] -> (mean, lo, hi), each [T]."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    if x.shape[0] < 2:
        return mean, mean, mean
    half = scipy.stats.t.ppf(0.975, x.shape[0] - 1) * x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    return mean, mean - half, mean + half
