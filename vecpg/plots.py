"""Learning-curve plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vecpg.stats import mean_ci95_curve


def plot_curves(metrics: dict[str, np.ndarray], path: Path, title: str = "") -> None:
    """episode_return: mean across seeds with a 95% CI band, against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = metrics["env_steps"][0]
    ret = metrics["episode_return"]
    mean, lo, hi = mean_ci95_curve(ret)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, mean, lw=2, label=f"mean of {ret.shape[0]} seeds")
    ax.fill_between(steps, lo, hi, alpha=0.3, label="95% CI")
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
