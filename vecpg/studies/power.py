"""How many seeds are enough: a bootstrap power estimate for telling two algorithms apart.

For scores x (algorithm A's seeds on one task) and y (B's), and each n in 2, 3, ..., 64:
draw n scores with replacement from x and n from y, `reps` times; power(n) is the
fraction of these synthetic experiments in which a two-sided Welch t-test
(`scipy.stats.ttest_ind(equal_var=False)`) at alpha = 0.05 rejects equal means. The
seeds needed are the smallest n with power(n) >= 0.8, or None ("cannot at this
budget") when no n up to 64 gets there, e.g. when the two score distributions are the
same. The observed spread stands in for the true one, so with few seeds the estimate is
itself rough; for normal scores with standard deviation sigma and mean difference delta
it approaches the normal-theory n = 2 (z_0.975 + z_0.8)^2 sigma^2 / delta^2 (slightly
above it: the t-test pays for estimating sigma).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

ALPHA = 0.05
TARGET_POWER = 0.8
MAX_SEEDS = 64
REPS = 2000


class SeedsNeeded(NamedTuple):
    seeds: int | None  # smallest n with power >= target; None: not up to max_seeds
    power: dict[int, float]  # n -> estimated power, for every n tried
    reason: str  # "" or why there is no estimate / no answer

    def describe(self) -> str:
        if self.seeds is not None:
            return str(self.seeds)
        return self.reason


def seeds_needed(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float = ALPHA,
    target: float = TARGET_POWER,
    max_seeds: int = MAX_SEEDS,
    reps: int = REPS,
    seed: int = 0,
) -> SeedsNeeded:
    """Seeds per algorithm a Welch t-test needs to separate x from y with power `target`
    (see the module docstring). NaN scores (no score) are left out; with fewer than 2
    scores on a side there is no estimate. n runs from 2 upwards and stops at the first
    n that reaches the target."""
    import scipy.stats  # here: importing it costs every vecpg process about a second

    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size < 2:
        return SeedsNeeded(None, {}, "too few scores (need 2 per algorithm)")
    rng = np.random.default_rng(seed)
    power: dict[int, float] = {}
    for n in range(2, max_seeds + 1):
        a = rng.choice(x, size=(reps, n), replace=True)
        b = rng.choice(y, size=(reps, n), replace=True)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-constant resamples
            p = scipy.stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
        power[n] = float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))  # NaN: equal constants
        if power[n] >= target:
            return SeedsNeeded(n, power, "")
    return SeedsNeeded(None, power, f"cannot at this budget (power < {target} at {max_seeds})")


def normal_theory_seeds(
    sigma: float, delta: float, alpha: float = ALPHA, target: float = TARGET_POWER
) -> float:
    """n = 2 (z_{1-alpha/2} + z_target)^2 sigma^2 / delta^2 (two-sided z-test)."""
    import scipy.stats

    z = scipy.stats.norm.ppf(1 - alpha / 2) + scipy.stats.norm.ppf(target)
    return float(2 * z**2 * sigma**2 / delta**2)
