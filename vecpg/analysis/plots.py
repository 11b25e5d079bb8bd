"""Learning-curve plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vecpg.analysis.stats import mean_bootstrap_curve

BAND = "95% bootstrap CI of the mean"


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported lazily: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def healthy_returns(metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """(episode_return [kept seeds, iterations] of the seeds that never diverged, the
    number of diverged seeds left out): curves, like scores, never show a diverged
    seed's returns as if they were the policy's."""
    from vecpg.run.rundir import diverged_at

    ret = metrics["episode_return"]
    diverged = diverged_at(metrics) >= 0
    return ret[~diverged], int(diverged.sum())


def curve_label(kept: int, diverged: int, name: str = "") -> str:
    """'ppo: mean of 3 seeds (1 diverged, left out)'."""
    text = f"mean of {kept} seeds" if kept else "no seed left"
    text += f" ({diverged} diverged, left out)" if diverged else ""
    return f"{name}: {text}" if name else text


def plot_curves(metrics: dict[str, np.ndarray], path: Path, title: str = "") -> None:
    """episode_return: mean across the seeds that did not diverge, with a 95%
    percentile-bootstrap band of the mean (within the observed returns), against env
    steps. Iterations before a seed's first finished episode (NaN) are left out."""
    plt = pyplot()

    steps = metrics["env_steps"][0]
    ret, diverged = healthy_returns(metrics)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if len(ret):
        mean, lo, hi = mean_bootstrap_curve(ret)
        ax.plot(steps, mean, lw=2, label=curve_label(len(ret), diverged))
        ax.fill_between(steps, lo, hi, alpha=0.3, label=BAND)
    else:
        ax.set_title(f"{title}\nevery seed diverged: no curve", fontsize=9)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    if len(ret):
        ax.set_title(title)
        ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_ranking(ranking: list[dict], path: Path, title: str = "") -> None:
    """IQM of final return per grid point with its 95% CI, best first."""
    from vecpg.run.rundir import grid_fields

    names = grid_fields(ranking[0])
    intervals = {
        ", ".join(f"{n}={r[n]:g}" for n in names): (r["iqm"], *r["iqm_ci95"]) for r in ranking
    }
    plot_intervals(intervals, path, title or "IQM of final return (95% CI)")


def plot_algorithm_curves(curves: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """One mean learning curve per algorithm with its 95% bootstrap band over the seeds
    that did not diverge (see `plot_curves`); curves[algo] holds env_steps,
    episode_return and diverged, each [seeds, iterations]."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for algo, m in curves.items():
        ret, diverged = healthy_returns(m)
        if not len(ret):
            ax.plot([], [], label=f"{algo}: every seed diverged")
            continue
        mean, lo, hi = mean_bootstrap_curve(ret)
        ax.plot(m["env_steps"][0], mean, lw=1.5, label=curve_label(len(ret), diverged, algo))
        ax.fill_between(m["env_steps"][0], lo, hi, alpha=0.2)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(f"{title}\nbands: {BAND}" if title else f"bands: {BAND}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_intervals(intervals: dict[str, tuple[float, float, float]], path: Path, title: str):
    """Point estimates with CIs: intervals[label] = (estimate, lo, hi)."""
    plt = pyplot()

    labels = [k for k in intervals if np.isfinite(intervals[k][0])]  # no score: not drawn
    est = np.array([intervals[k][0] for k in labels])
    lo = np.array([intervals[k][1] for k in labels])
    hi = np.array([intervals[k][2] for k in labels])
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(labels) + 1.5), dpi=100)
    y = np.arange(len(labels))[::-1]
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", capsize=4)
    ax.set_yticks(y, labels)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
