"""The study report's figures (matplotlib, headless): per-task sample-efficiency curves
(IQM over seeds with a bootstrap band), performance profiles and probability-of-
improvement matrices. Interval plots use `vecpg.analysis.plots.plot_intervals`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vecpg.analysis import stats
from vecpg.analysis.plots import curve_label, healthy_returns, pyplot

BAND = "95% bootstrap CI of the IQM over seeds"


def nan_iqm_columns(x: np.ndarray) -> np.ndarray:
    """IQM of each column of x [..., n, T] over its non-NaN entries (as scipy's
    trim_mean(0.25): int(0.25 c) values cut from each end of the c sorted ones); NaN
    for a column without any value."""
    s = np.sort(x, axis=-2)  # NaN sort last
    n = x.shape[-2]
    count = (~np.isnan(x)).sum(axis=-2)  # [..., T]
    cut = (count * 0.25).astype(int)
    rank = np.arange(n).reshape((n, 1))
    keep = (rank >= cut[..., None, :]) & (rank < (count - cut)[..., None, :])
    total = np.where(keep, np.nan_to_num(s), 0.0).sum(axis=-2)
    kept = keep.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept > 0, total / np.maximum(kept, 1), np.nan)


def iqm_curve(
    x: np.ndarray, reps: int = 500, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IQM, lo, hi), each [T], of x [seeds, T] (NaN: no value yet) with a percentile
    bootstrap over seeds; the band never leaves the observed values."""
    x = np.asarray(x, np.float64)
    mid = nan_iqm_columns(x)
    if x.shape[0] < 2:
        return mid, mid, mid
    idx = np.random.default_rng(seed).integers(0, x.shape[0], size=(reps, x.shape[0]))
    boot = nan_iqm_columns(x[idx])  # [reps, T]
    alpha = (1 - level) / 2
    all_nan = np.isnan(boot).all(axis=0)
    filled = np.where(all_nan[None, :], 0.0, boot)
    lo, hi = np.nanquantile(filled, [alpha, 1 - alpha], axis=0)
    return mid, np.where(all_nan, np.nan, lo), np.where(all_nan, np.nan, hi)


def plot_iqm_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: Path, title: str):
    """One IQM learning curve per label against env steps (per seed), bands: `BAND`.
    curves[label] holds episode_return, env_steps and diverged [seeds, iterations];
    diverged seeds are left out (the legend says how many)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, m in curves.items():
        ret, diverged = healthy_returns(dict(m))
        if not len(ret):
            ax.plot([], [], label=f"{label}: every seed diverged")
            continue
        steps = np.asarray(m["env_steps"]).reshape(-1, ret.shape[-1])[0]
        mid, lo, hi = iqm_curve(ret)
        text = curve_label(len(ret), diverged, label).replace("mean of", "IQM of")
        ax.plot(steps, mid, lw=1.5, label=text)
        ax.fill_between(steps, lo, hi, alpha=0.2)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(f"{title}\nbands: {BAND}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_profiles(panels: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> None:
    """Performance profiles: panels[title][label] = scores [runs, tasks] (NaN: none);
    the fraction of runs scoring above tau, averaged over tasks."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), dpi=100)
    axes = np.atleast_1d(axes)
    for ax, (title, by_label) in zip(axes, panels.items(), strict=True):
        finite = np.concatenate([s[np.isfinite(s)] for s in by_label.values()] + [np.zeros(0)])
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        taus = np.linspace(lo, hi if hi > lo else lo + 1.0, 101)
        for label, s in by_label.items():
            ax.plot(taus, stats.performance_profile(s, taus), label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("score tau")
        ax.set_ylabel("fraction of runs > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_improvement(panels: Mapping[str, Mapping[str, float]], labels: list[str], path: Path):
    """P(row > column) matrices: panels[title]['a vs b'] = P(a > b)."""
    plt = pyplot()
    k = len(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 * k * len(panels) + 2.5, 1.1 * k + 1.6))
    axes = np.atleast_1d(axes)
    for ax, (title, pairs) in zip(axes, panels.items(), strict=True):
        m = np.full((k, k), np.nan)
        for i, a in enumerate(labels):
            for j, b in enumerate(labels):
                m[i, j] = pairs.get(f"{a} vs {b}", np.nan)
        ax.imshow(m, vmin=0, vmax=1, cmap="coolwarm")
        for i in range(k):
            for j in range(k):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(k), labels, rotation=30, fontsize=7)
        ax.set_yticks(range(k), labels, fontsize=7)
        ax.set_title(f"P(row > column)\n{title}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
