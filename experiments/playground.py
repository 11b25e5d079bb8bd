"""MuJoCo Playground on the CPU: PPO on CheetahRun, and the env ceiling per task.

    python experiments/playground.py            # about 8 min on 2 CPU cores

Writes experiments/results/playground_ceiling.json, playground_cheetah.json and
playground_cheetah.png. (a) Random-action env steps/s of the trainer's env work
(`vecpg.bench.throughput.env_ceiling`: vmapped step, auto-reset, fresh starts) with 256
envs x 32 steps. (b) vecpg ppo on CheetahRun, 4 seeds x 1M steps, 32 envs x 64 steps,
learning rate 1e-3 (the CartpoleBalance sweep's best). jax vs warp:
experiments/playground_impls.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import vecpg
from vecpg.analysis.plots import plot_curves
from vecpg.bench.throughput import env_ceiling
from vecpg.bench.timing import machine

OUT = Path(__file__).parent / "results"
TASKS = ("CartpoleBalance", "CheetahRun", "WalkerWalk")
IMPLS = ("jax",)  # warp cannot run inside vecpg's program (README)


def ceilings() -> dict:
    rows = {}
    for task in TASKS:
        for impl in IMPLS:
            cfg = vecpg.TrainConfig(
                env=f"playground/{task}", playground_impl=impl, num_envs=256, num_steps=32,
                total_steps=5 * 256 * 32,
            )  # fmt: skip
            rows[f"{task}/{impl}"] = env_ceiling(cfg, iterations=5, repeats=3)
            print(task, impl, rows[f"{task}/{impl}"], flush=True)
    return {"machine": machine(), "num_envs": 256, "num_steps": 32, "rows": rows}


CHEETAH = vecpg.TrainConfig(
    env="playground/CheetahRun", num_envs=32, num_steps=64, total_steps=1_000_000,
    learning_rate=1e-3, log_every=20,
)  # fmt: skip


def cheetah() -> dict:
    res = vecpg.train(CHEETAH, seeds=4, progress=True)
    plot_curves(res.metrics, OUT / "playground_cheetah.png", title="ppo on playground/CheetahRun")
    final = res.final_returns()
    s = res.summary()
    return {
        "machine": machine(),
        "config": CHEETAH.to_dict(),
        "final_return_per_seed": final.tolist(),
        "final_return_mean": float(final.mean()),
        "final_return_ci95": s["final_return_ci95"],
        "compile_s": res.compile_s,
        "run_s": res.run_s,
        "env_steps_per_s": s["env_steps_per_s"],
        "curve_mean": np.asarray(res.metrics["episode_return"]).mean(0)[::10].tolist(),
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    if "--skip-ceiling" not in sys.argv:
        (OUT / "playground_ceiling.json").write_text(json.dumps(ceilings(), indent=2))
    if "--skip-cheetah" not in sys.argv:
        (OUT / "playground_cheetah.json").write_text(json.dumps(cheetah(), indent=2))
    print("wrote", OUT / "playground_ceiling.json", OUT / "playground_cheetah.json")
