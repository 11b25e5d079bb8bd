"""What a kernel costs XLA CPU to compile, and what its two emitters trade.

Three measurements, each printed as one JSON line (and written to --out):

  kernels   N independent elementwise kernels (tanh(x * c) + 1 on N distinct shapes, so
            none fuse) compiled with XLA CPU's MLIR fusion emitters (its default) and
            with its LLVM IR emitters (`xla_cpu_use_fusion_emitters=False`, vecpg's
            `--no-cpu-fusion-emitters`): seconds per kernel.
  speed     ns per element of a 100-step scan of act(x * 0.9 + b) on [2048, 64], for
            tanh, exp and a multiply-add, under both emitters: what the IR emitters'
            code loses at run time (and whether the two agree bit for bit).
  trace     seconds to trace one ppo iteration of brax hopper (positional, 64 x 64) as
            vecpg's run program does for one lane: vmapped over a lanes axis of 1 (what
            every call did before `trainer.lanes_step`), and plain (what one lane does now).

Every program uses vecpg's CPU options (fast math, LLVM level 1). Run on an idle
machine, compile cache off:

    VECPG_COMPILE_CACHE=off python experiments/compile_kernels.py --out F
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.timing import machine
from vecpg.training.xla_options import CPU_FAST_MATH, CPU_IR_EMITTERS, CPU_OPT_LEVEL

MLIR = {**CPU_FAST_MATH, CPU_OPT_LEVEL: 1}
EMITTERS = {"mlir": MLIR, "ir": {**MLIR, **CPU_IR_EMITTERS}}


def kernel_cost(n: int) -> list[dict]:
    def many(xs):
        return [jnp.tanh(x * (i + 1.0)) + 1.0 for i, x in enumerate(xs)]

    xs = [jax.ShapeDtypeStruct((i + 3, 7), jnp.float32) for i in range(n)]
    rows = []
    for name, options in EMITTERS.items():
        lowered = jax.jit(many, compiler_options=options).lower(xs)
        t0 = time.perf_counter()
        lowered.compile()
        s = time.perf_counter() - t0
        rows.append({"what": "kernels", "emitters": name, "kernels": n, "compile_s": round(s, 2),
                     "ms_per_kernel": round(1e3 * s / n, 1)})  # fmt: skip
    return rows


def kernel_speed() -> list[dict]:
    x = jax.random.normal(jax.random.key(0), (2048, 64))
    b = jnp.ones((64,))
    acts = {"tanh": jnp.tanh, "exp": jnp.exp, "mul_add": lambda c: c * 0.5 + 0.1}
    rows = []
    for act_name, act in acts.items():

        def scan(x, act=act):
            return jax.lax.scan(lambda c, _: (act(c * 0.9 + b), None), x, None, length=100)[0]

        outs = {}
        for name, options in EMITTERS.items():
            fn = jax.jit(scan, compiler_options=options).lower(x).compile()
            outs[name] = np.asarray(fn(x))
            t0 = time.perf_counter()
            for _ in range(5):
                fn(x).block_until_ready()
            ns = (time.perf_counter() - t0) / 5 / 100 / x.size * 1e9
            rows.append({"what": "speed", "op": act_name, "emitters": name,
                         "ns_per_element": round(ns, 2)})  # fmt: skip
        rows[-1]["bit_equal_to_mlir"] = bool(np.array_equal(outs["ir"], outs["mlir"]))
    return rows


def trace_once(mode: str) -> float:
    """Seconds to trace one hopper ppo iteration in this (fresh) process, its env's
    reset traced beforehand (as a run's init program does)."""
    from vecpg.config import TrainConfig
    from vecpg.training.trainer import init_train_state, make_pieces, train_iteration

    cfg = TrainConfig(env="brax/hopper", backend="positional", num_envs=64, num_steps=64)
    static, hp = cfg.static(), cfg.hparams()
    p = make_pieces(static)
    state = jax.eval_shape(functools.partial(init_train_state, p), jax.random.key(0), hp)
    it = jax.ShapeDtypeStruct((), jnp.int32)
    one = functools.partial(train_iteration, p)
    if mode == "plain":
        fn, args = one, (state, hp, it)
    else:
        lane = lambda t: jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s.shape), s.dtype), t)  # noqa: E731
        fn, args = jax.vmap(one, in_axes=(0, 0, None)), (lane(state), lane(hp), it)
    t0 = time.perf_counter()
    jax.jit(fn).trace(*args)
    return time.perf_counter() - t0


def iteration_trace() -> list[dict]:
    """`trace_once` of each variant in fresh processes, alternating, twice."""
    rows = []
    for _ in range(2):
        for mode, name in (("vmap", "vmap over 1 lane"), ("plain", "plain")):
            cmd = [sys.executable, __file__, "--trace-once", mode, "--out", "-"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append({"what": "trace", "iteration": name, "trace_s": round(float(out), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=200)
    ap.add_argument("--out", required=True)
    ap.add_argument("--trace-once", choices=("vmap", "plain"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.trace_once:
        print(trace_once(a.trace_once))
        return
    rows = []
    for part in (lambda: kernel_cost(a.kernels), kernel_speed, iteration_trace):
        for row in part():
            print(json.dumps(row), flush=True)
            rows.append(row)
    with open(a.out, "w") as f:
        json.dump({"machine": machine(), "jax": jax.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
