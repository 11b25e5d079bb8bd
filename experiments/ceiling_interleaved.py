"""The ppo iteration's speed against the raw env ceiling, timed in alternation.

`vecpg bench` times the ceiling program, then ppo, then trpo, each over its repeats in
turn, so a change in the machine's speed between them lands in their ratio (on a shared
2-core box it moved by up to 1.5x within minutes). This compiles the bench's ceiling and
ppo programs (the same functions, lanes and sizes), then times them in alternating pairs
and reports each pair's ratio and their median.

    VECPG_COMPILE_CACHE=off python experiments/ceiling_interleaved.py --env brax/hopper \\
        --backend positional --pairs 7 --out F
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import time

import jax

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.throughput import ceiling_lane, cold_env_traces, lane_inputs
from vecpg.bench.timing import machine
from vecpg.config import TrainConfig
from vecpg.envs import make_env_for
from vecpg.training.execute import compiled_train, runs_sharding
from vecpg.training.xla_options import program_options


def seconds(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="brax/hopper")
    ap.add_argument("--backend", default="positional")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--num-steps", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = TrainConfig(env=a.env, backend=a.backend, num_envs=a.num_envs, num_steps=a.num_steps)
    cfg = dataclasses.replace(cfg, total_steps=a.iterations * cfg.batch_size)
    lanes = jax.device_count()
    keys, _, _ = lane_inputs(cfg, lanes)
    one = functools.partial(
        ceiling_lane, make_env_for(cfg), cfg.num_envs, cfg.num_steps, a.iterations
    )
    options = program_options(cfg)  # the trainer's, as the bench's ceiling
    jitted = jax.jit(jax.vmap(one), in_shardings=runs_sharding(), compiler_options=options)
    ceiling = jitted.lower(keys).compile()
    args = lane_inputs(cfg, lanes)
    cold_env_traces(cfg)
    ppo = compiled_train(cfg.static(), lanes)
    steps = lanes * a.iterations * cfg.batch_size
    seconds(lambda: ceiling(keys))  # warm-up
    seconds(lambda: ppo(*args)[1])
    pairs = []
    for _ in range(a.pairs):
        c, p = seconds(lambda: ceiling(keys)), seconds(lambda: ppo(*args)[1])
        pairs.append({"ceiling_steps_per_s": round(steps / c), "ppo_steps_per_s": round(steps / p),
                      "ppo_over_ceiling": round(c / p, 3)})  # fmt: skip
        print(json.dumps(pairs[-1]), flush=True)
    median = statistics.median(r["ppo_over_ceiling"] for r in pairs)
    print(json.dumps({"median_ppo_over_ceiling": median}))
    with open(a.out, "w") as f:
        json.dump({"machine": machine(), "jax": jax.__version__, "env": a.env,
                   "backend": a.backend, "num_envs": a.num_envs, "num_steps": a.num_steps,
                   "iterations": a.iterations, "lanes": lanes, "pairs": pairs,
                   "median_ppo_over_ceiling": median}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
