"""`vecpg bench`: side-by-side timings in one process (compile time kept apart, medians
over repeats). Covers the trust-region cost: the FVP and one CG solve as multiples of
one policy-gradient evaluation, and one TRPO iteration as a multiple of one PPO
iteration, measured through the real `train` function on the same env and settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from vecpg.algos.base import Batch
from vecpg.algos.trust_region import fvp_subsample, surrogate
from vecpg.config import TrainConfig
from vecpg.natural import conjugate_gradient, flat_fvp
from vecpg.networks import init_agent_params, make_agent


def machine() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        model = platform.processor() or "cpu"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return f"CPU: {model}, {os.cpu_count()} cores"
    return f"{dev.platform.upper()}: {dev.device_kind}"


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of fn() (blocked until ready) over `repeats`, after one warm-up."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def trust_region_cost(cfg: TrainConfig, repeats: int) -> dict[str, float]:
    """Seconds for grad(surrogate), one FVP and one CG solve on a batch of cfg's size."""
    from vecpg.envs import make_env

    spec = make_env(cfg.env, cfg.backend).spec
    agent = make_agent(spec, cfg.hidden, cfg.activation)
    params = init_agent_params(agent, jax.random.key(0)).actor
    n = cfg.batch_size
    obs = jax.random.normal(jax.random.key(1), (n, *spec.obs_shape))
    dist = agent.actor.apply(params, obs)
    action = agent.dist.sample(jax.random.key(2), dist)
    batch = Batch(
        obs,
        action,
        agent.dist.log_prob(dist, action),
        jax.random.normal(jax.random.key(3), (n,)),
        jnp.zeros(n),
        jnp.zeros(n),
        dist,
    )
    flat, _ = ravel_pytree(params)
    sub = fvp_subsample(batch, cfg.fvp_fraction)

    def matvec(p):
        damping = jnp.float32(cfg.damping)
        return flat_fvp(lambda q: agent.actor.apply(q, sub), agent.dist.fisher_vp, p, damping)

    @jax.jit
    def pg(p):
        return ravel_pytree(jax.grad(lambda q: surrogate(agent, q, batch))(p))[0]

    @jax.jit
    def fvp(p, v):
        return matvec(p)(v)

    @jax.jit
    def cg(p, g):
        return conjugate_gradient(matvec(p), g, cfg.cg_iters).x

    g = pg(params)
    out = {
        "pg_s": median_time(lambda: pg(params), repeats),
        "fvp_s": median_time(lambda: fvp(params, flat), repeats),
        "cg_s": median_time(lambda: cg(params, g), repeats),
    }
    out["fvp_over_pg"] = out["fvp_s"] / out["pg_s"]
    out["cg_over_pg"] = out["cg_s"] / out["pg_s"]
    return out


def iteration_cost(cfg: TrainConfig, iterations: int, repeats: int) -> dict[str, float]:
    """Compile time and steady-state seconds per iteration of the real train function."""
    from vecpg.execute import compiled_train

    cfg = dataclasses.replace(cfg, total_steps=iterations * cfg.batch_size)
    lanes = jax.device_count()  # the smallest call the real (sharded) program takes
    keys = jnp.stack([jax.random.key_data(jax.random.key(i)) for i in range(lanes)])
    hp = jax.tree.map(lambda x: jnp.full((lanes,), x), cfg.hparams())
    t0 = time.perf_counter()
    compiled = compiled_train(cfg.static(), lanes)
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: compiled(keys, hp)[1], repeats)
    return {
        "compile_s": compile_s,
        "iteration_s": run_s / iterations,
        "env_steps_per_s": lanes * iterations * cfg.batch_size / run_s,
    }


def run_bench(
    env: str, backend: str, num_envs: int, num_steps: int, iterations: int, repeats: int
) -> dict[str, Any]:
    base = TrainConfig(
        env=env, backend=backend, num_envs=num_envs, num_steps=num_steps, hidden=(64, 64)
    )
    result: dict[str, Any] = {
        "machine": machine(),
        "jax": jax.__version__,
        "settings": {
            "env": env,
            "backend": backend,
            "num_envs": num_envs,
            "num_steps": num_steps,
            "batch": base.batch_size,
            "update_epochs": base.update_epochs,
            "num_minibatches": base.num_minibatches,
            "hidden": list(base.hidden),
            "cg_iters": base.cg_iters,
            "iterations_timed": iterations,
            "repeats": repeats,
        },
        "trust_region_cost": trust_region_cost(base, repeats=max(5, 5 * repeats)),
        "iteration": {},
    }
    for algo in ("ppo", "trpo"):
        cfg = dataclasses.replace(base, algo=algo)
        result["iteration"][algo] = iteration_cost(cfg, iterations, repeats)
    it = result["iteration"]
    result["trpo_over_ppo_iteration"] = it["trpo"]["iteration_s"] / it["ppo"]["iteration_s"]
    return result


def to_markdown(r: dict[str, Any]) -> str:
    s, tr, it = r["settings"], r["trust_region_cost"], r["iteration"]
    lines = [
        f"Machine: {r['machine']}; jax {r['jax']}. Env {s['env']} ({s['backend']}), "
        f"{s['num_envs']} envs x {s['num_steps']} steps = batch {s['batch']}, "
        f"{s['update_epochs']} epochs x {s['num_minibatches']} minibatches, hidden "
        f"{tuple(s['hidden'])}, {s['cg_iters']} CG iterations; medians of {s['repeats']} runs.",
        "",
        "| quantity | time | multiple |",
        "|---|---|---|",
        f"| policy-gradient evaluation | {tr['pg_s'] * 1e3:.2f} ms | 1.00x |",
        f"| one Fisher-vector product | {tr['fvp_s'] * 1e3:.2f} ms | {tr['fvp_over_pg']:.2f}x |",
        f"| one CG solve | {tr['cg_s'] * 1e3:.2f} ms | {tr['cg_over_pg']:.2f}x |",
        f"| one PPO iteration | {it['ppo']['iteration_s'] * 1e3:.1f} ms | 1.00x |",
        f"| one TRPO iteration | {it['trpo']['iteration_s'] * 1e3:.1f} ms "
        f"| {r['trpo_over_ppo_iteration']:.2f}x |",
        "",
        "| algo | compile (s) | ms / iteration | env steps/s (incl. update) |",
        "|---|---|---|---|",
    ]
    for algo, v in it.items():
        lines.append(
            f"| {algo} | {v['compile_s']:.1f} | {v['iteration_s'] * 1e3:.1f} "
            f"| {v['env_steps_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def check_result(r: dict[str, Any]) -> None:
    """Every number positive and finite (the CI smoke test's assertion)."""
    for v in jax.tree.leaves({k: r[k] for k in ("trust_region_cost", "iteration")}):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"bench produced a non-positive or non-finite number: {v}")


def save(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(r, indent=2))
    (out / "bench.md").write_text(to_markdown(r))


def vmap_vs_loop(cfg: TrainConfig, num_runs: int) -> dict[str, float]:
    """`num_runs` seeds as one vmapped call against the same runs one by one, each side
    timed from a cold start (compilation included)."""
    from vecpg.api import train
    from vecpg.execute import compiled_train

    compiled_train.cache_clear()
    t0 = time.perf_counter()
    batched = train(cfg, seeds=num_runs)
    vmapped_s = time.perf_counter() - t0
    compiled_train.cache_clear()
    t0 = time.perf_counter()
    for s in range(num_runs):
        train(cfg, seeds=[s])
    loop_s = time.perf_counter() - t0
    steps = float(num_runs * batched.metrics["env_steps"][0, -1])
    return {
        "num_runs": num_runs,
        "vmapped_s": vmapped_s,
        "one_by_one_s": loop_s,
        "speedup": loop_s / vmapped_s,
        "vmapped_env_steps_per_s": steps / vmapped_s,
        "one_by_one_env_steps_per_s": steps / loop_s,
    }


def vmap_markdown(v: dict[str, float], cfg: TrainConfig) -> str:
    return (
        f"{v['num_runs']} runs of ppo on {cfg.env} ({cfg.num_envs} envs x {cfg.num_steps} "
        f"steps, {cfg.num_iterations * cfg.batch_size:,} steps per run), compilation "
        "included:\n\n"
        "| mode | wall time (s) | total env steps/s |\n|---|---|---|\n"
        f"| one vmapped call | {v['vmapped_s']:.1f} | {v['vmapped_env_steps_per_s']:,.0f} |\n"
        f"| one by one | {v['one_by_one_s']:.1f} | {v['one_by_one_env_steps_per_s']:,.0f} |\n"
        f"\nSpeed-up of the vmapped call: {v['speedup']:.1f}x\n"
    )
