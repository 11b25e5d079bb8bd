"""Where does vecpg's GPU compile time go, and does XLA's GEMM autotuning pay for itself?

Compiles vecpg's real training program (`compiled_train`) for the bench's hopper
settings, once with XLA's GPU autotuning (`gpu_autotune=True`) and once without (the
default since: `xla_gpu_autotune_level=0`, fusion autotuner off), and times
compile and steady-state run of each; the same for one lane-heavy seeds-scaling
program. Also times the env-only program pieces (the raw brax step scan, and reset) to
see how much of the compile is the physics. Run on a GPU:

    VECPG_COMPILE_CACHE=off python experiments/gpu_compile_time.py OUT.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import jax

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.throughput import lane_inputs, random_actions
from vecpg.bench.timing import machine, median_time
from vecpg.config import TrainConfig
from vecpg.envs import make_env_for
from vecpg.training import execute
from vecpg.training.xla_options import program_options

AUTOTUNE = {"default": True, "no_autotune": False}  # the config's gpu_autotune
HOPPER = TrainConfig(env="brax/hopper", backend="positional", num_envs=2048, num_steps=32,
                     total_steps=10 * 2048 * 32, hidden=(64, 64))  # fmt: skip
SCALING = dataclasses.replace(HOPPER, num_envs=128, total_steps=10 * 128 * 32)
if os.environ.get("TINY"):  # a CPU smoke run of this script
    HOPPER = dataclasses.replace(
        HOPPER, num_envs=8, num_steps=4, total_steps=2 * 32, env="gymnax/CartPole-v1"
    )
    SCALING = dataclasses.replace(HOPPER, total_steps=2 * 32)


def timed_program(cfg: TrainConfig, lanes: int, autotune: bool) -> dict:
    cfg = dataclasses.replace(cfg, gpu_autotune=autotune)
    execute.compiled_train.cache_clear()
    args = lane_inputs(cfg, lanes)
    t0 = time.perf_counter()
    fn = execute.compiled_train(cfg.static(), lanes)
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: fn(*args), 3)
    steps_per_s = lanes * cfg.total_steps / run_s
    options = program_options(cfg)
    return {"options": options, "compile_s": compile_s, "env_steps_per_s": steps_per_s}


def env_pieces(cfg: TrainConfig) -> dict:
    env = make_env_for(cfg)
    keys = jax.random.split(jax.random.key(0), cfg.num_envs)
    act = random_actions(env.spec, jax.random.key(1), cfg.num_envs)

    def steps(s):
        return jax.lax.scan(lambda s, _: (jax.vmap(env.step)(s.state, act), None), s, None,
                            length=cfg.num_steps)[0].obs  # fmt: skip

    out = {}
    for name, fn, arg in (("reset", jax.vmap(env.reset), keys),):
        t0 = time.perf_counter()
        jax.jit(fn).lower(arg).compile()
        out[f"{name}_compile_s"] = time.perf_counter() - t0
    s0 = jax.jit(jax.vmap(env.reset))(keys)
    t0 = time.perf_counter()
    jax.jit(steps).lower(s0).compile()
    out["step_scan_compile_s"] = time.perf_counter() - t0
    return out


def main(path: str) -> None:
    res: dict = {"machine": machine(), "jax": jax.__version__}
    res["env_pieces"] = env_pieces(HOPPER)
    print(res, flush=True)
    for name, autotune in AUTOTUNE.items():
        res[f"ppo_2048x32_{name}"] = timed_program(HOPPER, 1, autotune)
        print(name, res[f"ppo_2048x32_{name}"], flush=True)
        json.dump(res, open(path, "w"), indent=1)
    for name, autotune in AUTOTUNE.items():
        res[f"scaling_64_{name}"] = timed_program(SCALING, 64, autotune)
        print(name, res[f"scaling_64_{name}"], flush=True)
        json.dump(res, open(path, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
