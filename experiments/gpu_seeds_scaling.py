"""The `--preset gpu` seeds-scaling table alone (brax hopper, positional, ppo, 128 envs
x 32 steps per seed, 10 iterations per call), each row saved as it is measured:

    python experiments/gpu_seeds_scaling.py OUT.json
"""

from __future__ import annotations

import json
import sys

import jax

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.plan import GPU_PRESET, BenchPlan
from vecpg.bench.throughput import seeds_scaling
from vecpg.bench.timing import machine


def main(path: str) -> None:
    plan = BenchPlan(**GPU_PRESET).resolved()
    cfg = plan.scaling_config()
    out = {"machine": machine(), "jax": jax.__version__, "env": cfg.env, "backend": cfg.backend,
           "gpu_autotune": cfg.gpu_autotune, "rows": []}  # fmt: skip

    def save(rows: list[dict]) -> None:
        out["rows"] = rows
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        print(rows[-1], flush=True)

    seeds_scaling(cfg, plan.scaling_seeds, plan.repeats, save)


if __name__ == "__main__":
    main(sys.argv[1])
