"""Where does vecpg's compile time go? Each program piece lowered and compiled alone.

For one env and rollout size, times (trace + lower) and XLA compile of:
  reset      jit(vmap(env.reset)) over num_envs
  step       jit(vmap(env.step)) over num_envs, one step
  ceiling    the bench's raw env program: reset + one rollout scan of the time-limit /
             auto-reset wrapper with random actions (no agent), vmapped over the lanes
  init       vecpg's lane-init program (params, algorithm state, env reset)
  run/ALGO   vecpg's chunk program (rollout, GAE, update, metrics, progress callback)
and with `--phases`, the chunk's phases as programs of their own, vmapped over the lanes:
  rollout         the actor's scan: policy + env step + auto-reset (+ fresh starts)
  rollout+gae     + values, GAE and the flattened batch (`make_batch`)
  update/ALGO     the algorithm's update alone, on a batch of that shape
  iteration/ALGO  one whole `train_iteration` (rollout, GAE, update, normaliser, metrics)
and counts the instructions of each optimised HLO module (XLA's own view of its size).
Run with the persistent cache off, on an idle machine:

    VECPG_COMPILE_CACHE=off python experiments/compile_breakdown.py \
        --env playground/CheetahRun --num-envs 32 --num-steps 480 --lanes 8 \
        --algos ppo,trpo --out experiments/results/compile_breakdown_cheetah_cpu.json

`--xla NAME=VALUE` (repeatable) adds XLA compiler options to every piece.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.throughput import ceiling_lane, lane_inputs, random_actions
from vecpg.bench.timing import machine
from vecpg.config import TrainConfig
from vecpg.envs import make_env_for
from vecpg.training import execute
from vecpg.training.xla_options import program_options


def hlo_ops(compiled: Any) -> int:
    """Instructions in the optimised HLO module(s) of a compiled program."""
    text = compiled.as_text() or ""
    return sum(1 for line in text.splitlines() if " = " in line and "ENTRY" not in line)


def timed(name: str, jitted: Any, *args: Any, keep: list | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    row = {"piece": name, "lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
           "hlo_ops": hlo_ops(compiled)}  # fmt: skip
    print(json.dumps(row), flush=True)
    if keep is not None:
        keep.append(compiled)
    return row


def env_pieces(cfg: TrainConfig, lanes: int, options: dict | None) -> list[dict]:
    env = make_env_for(cfg)
    n = cfg.num_envs
    keys = jax.random.split(jax.random.key(0), n)
    act = random_actions(env.spec, jax.random.key(1), n)
    states = jax.eval_shape(jax.vmap(env.reset), keys).state
    jit = functools.partial(jax.jit, compiler_options=options)
    rows = [timed("reset", jit(jax.vmap(env.reset)), keys)]
    rows.append(timed("step", jit(jax.vmap(env.step)), states, act))
    key_data, _, _ = lane_inputs(cfg, lanes)
    one = functools.partial(ceiling_lane, env, n, cfg.num_steps, 1)
    kept: list = []
    rows.append(timed("ceiling", jit(jax.vmap(one)), key_data, keep=kept))
    fn = kept[0]
    jax.block_until_ready(fn(key_data))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(key_data))
    rows[-1]["env_steps_per_s"] = round(lanes * n * cfg.num_steps / (time.perf_counter() - t0))
    return rows


class Lanes(NamedTuple):
    """One algorithm's static config, compiler options and abstract lane inputs/state."""

    static: Any
    options: dict | None
    keys: Any
    hp: Any
    lane_ids: Any
    fns: Any
    state: Any


def abstract_lanes(cfg: TrainConfig, algo: str, lanes: int, xla: dict) -> Lanes:
    static = dataclasses.replace(cfg, algo=algo).static()
    options = {**(program_options(static) or {}), **xla} or None
    keys, hp, lane_ids = execute.abstract_inputs(lanes, execute.runs_sharding())
    fns = execute.train_fns(static)
    state = jax.eval_shape(functools.partial(execute.init_from_key_data, fns), keys, hp)
    return Lanes(static, options, keys, hp, lane_ids, fns, state)


def vecpg_pieces(cfg: TrainConfig, lanes: int, algos: list[str], xla: dict) -> list[dict]:
    rows = []
    for i, algo in enumerate(algos):
        ln = abstract_lanes(cfg, algo, lanes, xla)
        jit = functools.partial(jax.jit, compiler_options=ln.options)
        with jax.set_mesh(execute.runs_mesh()):
            if i == 0:
                init = jit(functools.partial(execute.init_from_key_data, ln.fns))
                rows.append(timed("init", init, ln.keys, ln.hp))
            run = jit(functools.partial(ln.fns.run, length=ln.static.log_every))
            start = jax.ShapeDtypeStruct((), jnp.int32)
            rows.append(timed(f"run/{algo}", run, ln.state, ln.hp, ln.lane_ids, start))
    return rows


def phase_pieces(cfg: TrainConfig, lanes: int, algos: list[str], xla: dict) -> list[dict]:
    from vecpg.training.rollout import rollout
    from vecpg.training.trainer import make_batch, make_pieces, train_iteration

    rows = []
    for i, algo in enumerate(algos):
        ln = abstract_lanes(cfg, algo, lanes, xla)
        static, state, hp = ln.static, ln.state, ln.hp
        jit = functools.partial(jax.jit, compiler_options=ln.options)
        p = make_pieces(static)

        def roll(s, hp):
            n, norm = static.num_steps, static.normalize_obs
            return rollout(p.env, p.agent, s.params, s.env_state, s.key, num_steps=n,
                           normalize_obs=norm)  # fmt: skip

        def batch(s, hp):
            traj = roll(s, hp)[2]
            return make_batch(p.agent, s.params, traj, hp, normalize=static.normalize_obs)

        if i == 0:
            rows.append(timed("rollout", jit(jax.vmap(roll)), state, hp))
            rows.append(timed("rollout+gae", jit(jax.vmap(batch)), state, hp))
        b = jax.eval_shape(jax.vmap(batch), state, hp)
        upd = jax.vmap(p.updater.update)
        rows.append(timed(f"update/{algo}", jit(upd), state.key, state.params, state.algo_state,
                          b, hp))  # fmt: skip
        it = jax.vmap(functools.partial(train_iteration, p), in_axes=(0, 0, None))
        rows.append(timed(f"iteration/{algo}", jit(it), state, hp, jnp.int32(0)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="playground/CheetahRun")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--num-steps", type=int, default=480)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--algos", default="ppo,trpo")
    ap.add_argument("--no-env-pieces", action="store_true")
    ap.add_argument("--env-only", action="store_true", help="only reset, step and ceiling")
    ap.add_argument("--phases", action="store_true", help="also each phase of an iteration")
    ap.add_argument("--xla", action="append", default=[], help="NAME=VALUE compiler option")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    xla = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.xla)}
    extra = {"backend": a.backend} if a.backend else {}
    cfg = TrainConfig(env=a.env, num_envs=a.num_envs, num_steps=a.num_steps,
                      total_steps=10 * a.num_envs * a.num_steps, log_every=5, **extra)  # fmt: skip
    options = {**(program_options(cfg) or {}), **xla} or None
    rows = [] if a.no_env_pieces else env_pieces(cfg, a.lanes, options)
    if not a.env_only:
        rows += vecpg_pieces(cfg, a.lanes, a.algos.split(","), xla)
    if a.phases:
        rows += phase_pieces(cfg, a.lanes, a.algos.split(","), xla)
    out = {"machine": machine(), "jax": jax.__version__, "env": a.env, "num_envs": a.num_envs,
           "num_steps": a.num_steps, "lanes": a.lanes, "xla": xla, "pieces": rows}  # fmt: skip
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
