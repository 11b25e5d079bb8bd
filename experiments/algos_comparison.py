"""Experiment (a): every algorithm on three envs, 16 seeds each, one compiled call per
(env, algo). Writes experiments/results/algos_comparison.md and one curves PNG per env.

Command (vecpg gives each CPU core its own XLA device by default):
    python experiments/algos_comparison.py
The runtime and machine are measured and written into the results file.

Each algorithm runs with its own defaults (`TrainConfig.for_algo`: a2c's 16 envs x 5
steps at learning rate 7e-4); an env's shared settings fill only the fields the
algorithm's defaults leave alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import vecpg
from vecpg import stats
from vecpg.algos import DEFAULTS
from vecpg.analysis.plots import plot_algorithm_curves
from vecpg.bench.runner import machine

ALGOS = ("a2c", "ppo", "ppo_kl", "dual", "npg", "trpo")
SEEDS = 16
# Per-env settings shared by every algorithm (defaults otherwise), with the score range
# used to normalise (random-policy score, maximum or reference score).
ENVS = {
    "gymnax/CartPole-v1": (dict(total_steps=500_000), (22.0, 500.0)),
    "brax/inverted_pendulum": (
        dict(num_envs=16, num_steps=64, total_steps=150_000, learning_rate=3e-4),
        (5.0, 1000.0),
    ),
    "brax/hopper": (
        dict(
            backend="positional",
            num_envs=32,
            num_steps=32,
            total_steps=300_000,
            learning_rate=3e-4,
        ),
        None,  # unbounded return: reported per task, not aggregated
    ),
}
OUT = Path(__file__).parent / "results"


def main(quick: bool = False) -> None:
    t_start = time.perf_counter()
    rows, finals, curves_by_env = [], {}, {}
    for env, (settings, _) in ENVS.items():
        curves_by_env[env] = {}
        for algo in ALGOS:
            kw = dict(settings)
            if quick:
                kw["total_steps"] = 20_000
            own = DEFAULTS.get(algo, {})
            cfg = vecpg.TrainConfig.for_algo(
                algo, env=env, **{k: v for k, v in kw.items() if k not in own}
            )
            res = vecpg.train(cfg, seeds=2 if quick else SEEDS)
            final = res.final_returns()
            finals[(env, algo)] = final
            curves_by_env[env][algo] = res.metrics
            lo, hi = stats.stratified_bootstrap_ci(final[:, None], stats.iqm)
            rows.append((env, algo, stats.iqm(final[:, None]), lo, hi, final.mean(), res.run_s))
            print(env, algo, f"IQM {rows[-1][2]:.1f}", f"run {res.run_s:.0f}s", flush=True)
    minutes = (time.perf_counter() - t_start) / 60
    write_results(rows, finals, curves_by_env, minutes, quick)


def write_results(rows, finals, curves_by_env, minutes, quick) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if quick else ""
    lines = [
        "# Experiment (a): every algorithm on three envs",
        "",
        f"Machine: {machine()}. Total runtime: {minutes:.1f} min. Seeds: "
        f"{len(next(iter(finals.values())))} per (env, algo), one compiled call each.",
        "Command: `python experiments/algos_comparison.py` (each CPU core its own XLA "
        "device, vecpg's default). Each algorithm uses its own defaults (a2c: 16 envs x 5 "
        "steps, learning rate 7e-4); the env's shared settings fill the rest.",
        "",
        "Final return = mean episode return over the last 10% of iterations. IQM and 95% "
        "stratified-bootstrap CI over seeds; P(>ppo) = probability of improvement over PPO.",
        "",
        "| env | algo | IQM final return | 95% CI | mean | P(> ppo) | run (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for env, algo, iqm, lo, hi, mean, run_s in rows:
        poi = stats.probability_of_improvement(
            finals[(env, algo)][:, None], finals[(env, "ppo")][:, None]
        )
        lines.append(
            f"| {env} | {algo} | {iqm:.1f} | {lo:.1f} .. {hi:.1f} | {mean:.1f} "
            f"| {poi:.2f} | {run_s:.0f} |"
        )
    bounded = [env for env, (_, ref) in ENVS.items() if ref is not None]
    lines += [
        "",
        f"Aggregate over {', '.join(bounded)} (scores normalised to (score - random) / "
        "(max - random)):",
        "",
        "| algo | IQM | 95% CI | optimality gap |",
        "|---|---|---|---|",
    ]
    for algo in ALGOS:
        lows = np.array([ENVS[e][1][0] for e in bounded])
        highs = np.array([ENVS[e][1][1] for e in bounded])
        scores = np.stack([finals[(e, algo)] for e in bounded], axis=1)
        norm = stats.normalize_scores(scores, lows, highs)
        lo, hi = stats.stratified_bootstrap_ci(norm, stats.iqm)
        gap = stats.optimality_gap(norm)
        lines.append(f"| {algo} | {stats.iqm(norm):.3f} | {lo:.3f} .. {hi:.3f} | {gap:.3f} |")
    (OUT / f"algos_comparison{suffix}.md").write_text("\n".join(lines) + "\n")
    for env, curves in curves_by_env.items():
        name = env.replace("/", "_")
        plot_algorithm_curves(curves, OUT / f"curves_{name}{suffix}.png", env)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
