"""Experiment: MLP vs GRU vs LSTM policies for ppo and trpo on partially observed tasks.

Tasks: CartPole with its velocities masked (`--mask-obs 1,3`), and bsuite's MemoryChain
(the context is shown only at the first step; a policy must recall it at the last).
One compiled call per (task, algo, memory) with SEEDS seeds. Writes
experiments/results/recurrent_memory.md, .json and one curves PNG per task.

Command (each CPU core its own XLA device, vecpg's default):
    python experiments/recurrent_memory.py            # the full experiment
    python experiments/recurrent_memory.py --quick    # a smoke test, tiny budgets
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import vecpg
from vecpg import stats
from vecpg.analysis.plots import plot_algorithm_curves
from vecpg.bench.runner import machine

SEEDS = 8
ALGOS = ("ppo", "trpo")
MEMORIES = ("none", "gru", "lstm")
# shared by every cell: the network and the core's width
NETWORK = dict(hidden=(64,), memory_size=64)
TASKS = {
    "CartPole, velocities masked": dict(
        env="gymnax/CartPole-v1", mask_obs="1,3", num_envs=16, num_steps=128,
        num_minibatches=4, total_steps=500_000,
    ),
    "MemoryChain-bsuite": dict(
        env="gymnax/MemoryChain-bsuite", num_envs=16, num_steps=64, num_minibatches=4,
        total_steps=300_000,
    ),
}  # fmt: skip
OUT = Path(__file__).parent / "results"


def main(quick: bool = False) -> None:
    t0 = time.perf_counter()
    rows, curves = [], {}
    for task, settings in TASKS.items():
        curves[task] = {}
        for algo in ALGOS:
            for memory in MEMORIES:
                kw = {**settings, **NETWORK, "memory": memory}
                if quick:
                    kw["total_steps"] = kw["num_envs"] * kw["num_steps"] * 3
                cfg = vecpg.TrainConfig.for_algo(algo, **kw)
                res = vecpg.train(cfg, seeds=2 if quick else SEEDS)
                final = res.final_returns()
                lo, hi = stats.stratified_bootstrap_ci(final[:, None], stats.iqm)
                row = dict(
                    task=task, algo=algo, memory=memory, iqm=stats.iqm(final[:, None]),
                    ci=[lo, hi], mean=float(final.mean()), finals=final.tolist(),
                    run_s=res.run_s, compile_s=res.compile_s,
                )  # fmt: skip
                rows.append(row)
                curves[task][f"{algo} {memory}"] = res.metrics
                print(task, algo, memory, f"IQM {row['iqm']:.2f}", f"run {res.run_s:.0f}s",
                      flush=True)  # fmt: skip
    write(rows, curves, (time.perf_counter() - t0) / 60, quick)


def write(rows: list[dict], curves: dict, minutes: float, quick: bool) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if quick else ""
    lines = [
        "# Recurrent policies on partially observed tasks",
        "",
        f"Machine: {machine()}. Total runtime: {minutes:.1f} min. "
        f"{len(rows[0]['finals'])} seeds per cell, one compiled call each.",
        f"Command: `python experiments/recurrent_memory.py`. Network: hidden {NETWORK['hidden']},"
        f" core of {NETWORK['memory_size']} units (none: the MLP alone); ppo and trpo defaults"
        " otherwise.",
        "",
        "Final return = mean episode return over the last 10% of iterations; IQM and 95% "
        "stratified-bootstrap CI over seeds; P(> none) = probability that the recurrent "
        "policy's final return beats the MLP's.",
        "",
        "| task | algo | memory | IQM final return | 95% CI | mean | P(> none) | run (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(
            b for b in rows if (b["task"], b["algo"], b["memory"]) == (r["task"], r["algo"], "none")
        )
        poi = stats.probability_of_improvement(
            np.array(r["finals"])[:, None], np.array(base["finals"])[:, None]
        )
        lines.append(
            f"| {r['task']} | {r['algo']} | {r['memory']} | {r['iqm']:.2f} | "
            f"{r['ci'][0]:.2f} .. {r['ci'][1]:.2f} | {r['mean']:.2f} | {poi:.2f} | "
            f"{r['run_s']:.0f} |"
        )
    (OUT / f"recurrent_memory{suffix}.md").write_text("\n".join(lines) + "\n")
    (OUT / f"recurrent_memory{suffix}.json").write_text(
        json.dumps(
            {"machine": machine(), "tasks": TASKS, "network": NETWORK, "rows": rows},
            indent=1,
            default=list,
        )  # fmt: skip
    )
    for task, by_cell in curves.items():
        name = task.split(",")[0].replace(" ", "_").replace("-", "_").lower()
        plot_algorithm_curves(by_cell, OUT / f"recurrent_curves_{name}{suffix}.png", task)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
