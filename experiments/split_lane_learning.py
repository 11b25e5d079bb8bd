"""Learning on a split lane: brax hopper (positional), the bench's matched settings, one
seed per call (so with 2 devices each seed's envs are split over both), final training
return per seed. Run twice, with and without VECPG_CPU_DEVICES=1 (BENCHMARKS.md).

    python experiments/split_lane_learning.py 300000
"""

from __future__ import annotations

import dataclasses
import json
import sys

import jax

import vecpg
from vecpg.bench.plan import BenchPlan


def main(total_steps: int, seeds: int = 4) -> None:
    cfg = BenchPlan(env="brax/hopper", backend="positional").base()
    cfg = dataclasses.replace(cfg, total_steps=total_steps)
    final = {}
    for seed in range(seeds):
        res = vecpg.train(cfg, seeds=[seed])
        final[seed] = round(float(res.metrics["episode_return"][0, -1]), 1)
        per_lane = res.summary()["devices_per_lane"]
        print(f"seed {seed}: final return {final[seed]} ({per_lane} device(s) per lane)")
    print(json.dumps({"devices": jax.device_count(), "final_return": final}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
