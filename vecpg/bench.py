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
    from vecpg.bench_throughput import lane_inputs
    from vecpg.execute import compiled_train

    cfg = dataclasses.replace(cfg, total_steps=iterations * cfg.batch_size)
    lanes = jax.device_count()  # the smallest call the real (sharded) program takes
    args = lane_inputs(cfg, lanes)
    t0 = time.perf_counter()
    compiled = compiled_train(cfg.static(), lanes)
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: compiled(*args)[1], repeats)
    return {
        "compile_s": compile_s,
        "iteration_s": run_s / iterations,
        "env_steps_per_s": lanes * iterations * cfg.batch_size / run_s,
    }


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """What one `vecpg bench` run measures (the CLI's flags; `quick()` for CI)."""

    env: str = "brax/hopper"
    backend: str = "positional"
    num_envs: int = 64
    num_steps: int = 64
    iterations: int = 10
    repeats: int = 3
    peer_steps: int = 0  # Brax PPO vs vecpg ppo at this many env steps (0: skip)
    scaling_env: str = "gymnax/CartPole-v1"
    scaling_seeds: tuple[int, ...] = (1, 8, 32, 128)
    scaling_envs: int = 8
    scaling_steps: int = 128
    logging_runs: int = 8  # W&B-offline overhead on this many CartPole seeds (0: skip)

    def base(self) -> TrainConfig:
        return TrainConfig(
            env=self.env,
            backend=self.backend,
            num_envs=self.num_envs,
            num_steps=self.num_steps,
            hidden=(64, 64),
        )


def quick_plan() -> BenchPlan:
    return BenchPlan(
        env="gymnax/CartPole-v1",
        backend="generalized",
        num_envs=8,
        num_steps=32,
        iterations=4,
        repeats=2,
        scaling_seeds=(1, 4),
        scaling_envs=4,
        scaling_steps=32,
        logging_runs=2,
    )


def run_bench(plan: BenchPlan, log=print) -> dict[str, Any]:
    """Every section, side by side in this process."""
    from vecpg import bench_throughput

    base = plan.base()
    result: dict[str, Any] = {
        "machine": machine(),
        "jax": jax.__version__,
        "settings": {
            **dataclasses.asdict(plan),
            "batch": base.batch_size,
            "update_epochs": base.update_epochs,
            "num_minibatches": base.num_minibatches,
            "hidden": list(base.hidden),
            "cg_iters": base.cg_iters,
        },
    }
    log("bench: env ceiling")
    result["ceiling"] = bench_throughput.env_ceiling(base, plan.iterations, plan.repeats)
    result["iteration"] = {}
    for algo in ("ppo", "trpo"):
        log(f"bench: {algo} iterations")
        cfg = dataclasses.replace(base, algo=algo)
        result["iteration"][algo] = iteration_cost(cfg, plan.iterations, plan.repeats)
    it = result["iteration"]
    ceiling = result["ceiling"]["env_steps_per_s"]
    result["over_ceiling"] = {a: it[a]["env_steps_per_s"] / ceiling for a in it}
    result["trpo_over_ppo_iteration"] = it["trpo"]["iteration_s"] / it["ppo"]["iteration_s"]
    log("bench: phases of one iteration")
    result["phases"] = {
        a: bench_throughput.phase_timings(dataclasses.replace(base, algo=a), plan.repeats * 3)
        for a in ("ppo", "trpo")
    }
    log("bench: trust-region pieces")
    result["trust_region_cost"] = trust_region_cost(base, repeats=max(5, 5 * plan.repeats))
    if plan.peer_steps and base.env.startswith("brax/"):
        log(f"bench: Brax PPO vs vecpg ppo, {plan.peer_steps:,} steps each")
        result["brax_ppo"] = peer_comparison(base, plan.peer_steps)
    if plan.peer_steps:
        log("bench: rejax PPO vs vecpg ppo on CartPole")
        result["rejax_ppo"] = rejax_comparison(plan.peer_steps)
    if plan.scaling_seeds:
        log("bench: seeds scaling")
    scale_cfg = TrainConfig(
        env=plan.scaling_env,
        num_envs=plan.scaling_envs,
        num_steps=plan.scaling_steps,
        total_steps=plan.iterations * plan.scaling_envs * plan.scaling_steps,
    )
    if plan.scaling_seeds:
        result["seeds_scaling"] = bench_throughput.seeds_scaling(
            scale_cfg, plan.scaling_seeds, plan.repeats
        )
    if plan.logging_runs:
        log("bench: host-callback / W&B logging overhead")
        log_cfg = dataclasses.replace(scale_cfg, total_steps=48 * scale_cfg.batch_size)
        result["logging_overhead"] = [
            bench_throughput.logging_overhead(
                dataclasses.replace(log_cfg, log_every=k), plan.logging_runs, plan.repeats
            )
            for k in (10, 1)
        ]
        if base.env != log_cfg.env:  # the bench env: heavier iterations, a realistic share
            env_cfg = dataclasses.replace(base, total_steps=20 * base.batch_size)
            runs = min(plan.logging_runs, 2)
            result["logging_overhead"].append(
                bench_throughput.logging_overhead(env_cfg, runs, plan.repeats)
            )
    return result


def vecpg_side(cfg: TrainConfig, eval_episodes: int) -> dict[str, float]:
    """vecpg ppo on one seed: steady-state env steps/s, compile time and the final
    policy's deterministic return (`vecpg.evaluate`)."""
    import tempfile

    from vecpg.api import train
    from vecpg.evaluate import evaluate

    with tempfile.TemporaryDirectory() as d:
        res = train(cfg, seeds=[0], run_dir=Path(d) / "run")
        ret = float(evaluate(Path(d) / "run", episodes=eval_episodes).deterministic.mean())
    return {
        "env_steps_per_s": float(res.summary()["env_steps_per_s"]),
        "compile_s": res.compile_s,
        "eval_return": ret,
    }


def peer_comparison(base: TrainConfig, steps: int) -> dict[str, Any]:
    """Brax PPO and vecpg ppo, same env, settings and env steps, one seed each; returns
    are deterministic-policy evaluations (Brax's eval over 16 episodes; vecpg's too)."""
    from vecpg import bench_peers

    brax = bench_peers.brax_ppo(base, steps, eval_envs=16)
    vec = vecpg_side(dataclasses.replace(base, total_steps=steps), 16)
    ratio = vec["env_steps_per_s"] / brax["env_steps_per_s"]
    return {"env_steps": steps, "brax": brax, "vecpg": vec, "throughput_ratio": ratio}


def rejax_comparison(steps: int) -> dict[str, Any]:
    """rejax PPO and vecpg ppo on CartPole (vecpg's defaults), 128 evaluation episodes."""
    from vecpg import bench_peers

    cfg = TrainConfig(total_steps=steps)
    rejax = bench_peers.rejax_ppo(cfg, steps)
    if "skipped" in rejax:
        return rejax
    vec = vecpg_side(cfg, 128)
    ratio = vec["env_steps_per_s"] / rejax["env_steps_per_s"]
    return {"env_steps": steps, "rejax": rejax, "vecpg": vec, "throughput_ratio": ratio}


def to_markdown(r: dict[str, Any]) -> str:
    s, tr, it = r["settings"], r["trust_region_cost"], r["iteration"]
    lines = [
        f"Machine: {r['machine']}; jax {r['jax']}. Env {s['env']} ({s['backend']}), "
        f"{s['num_envs']} envs x {s['num_steps']} steps = batch {s['batch']}, "
        f"{s['update_epochs']} epochs x {s['num_minibatches']} minibatches, hidden "
        f"{tuple(s['hidden'])}, {s['cg_iters']} CG iterations; medians of {s['repeats']} runs; "
        f"{s['iterations']} iterations per timed call, one lane per device.",
        "",
        "| program | compile (s) | env steps/s | vs ceiling |",
        "|---|---|---|---|",
        f"| raw env ceiling (scan of vmapped step, random actions) | "
        f"{r['ceiling']['compile_s']:.1f} | {r['ceiling']['env_steps_per_s']:,.0f} | 1.00x |",
    ]
    for algo, v in it.items():
        lines.append(
            f"| vecpg {algo} (rollout + GAE + update) | {v['compile_s']:.1f} "
            f"| {v['env_steps_per_s']:,.0f} | {r['over_ceiling'][algo]:.2f}x |"
        )
    lines += [
        "",
        "| quantity | time | multiple |",
        "|---|---|---|",
        f"| policy-gradient evaluation | {tr['pg_s'] * 1e3:.2f} ms | 1.00x |",
        f"| one Fisher-vector product | {tr['fvp_s'] * 1e3:.2f} ms | {tr['fvp_over_pg']:.2f}x |",
        f"| one CG solve | {tr['cg_s'] * 1e3:.2f} ms | {tr['cg_over_pg']:.2f}x |",
        f"| one PPO iteration | {it['ppo']['iteration_s'] * 1e3:.1f} ms | 1.00x |",
        f"| one TRPO iteration | {it['trpo']['iteration_s'] * 1e3:.1f} ms "
        f"| {r['trpo_over_ppo_iteration']:.2f}x |",
    ]
    lines += [
        "",
        "Phases of one iteration, each jitted on its own (one lane):",
        "",
        "| algo | rollout (ms) | values + GAE (ms) | update (ms) | sum (ms) "
        "| fused iteration (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for algo, ph in r["phases"].items():
        total = ph["rollout_s"] + ph["batch_gae_s"] + ph["update_s"]
        lines.append(
            f"| {algo} | {ph['rollout_s'] * 1e3:.1f} | {ph['batch_gae_s'] * 1e3:.1f} "
            f"| {ph['update_s'] * 1e3:.1f} | {total * 1e3:.1f} "
            f"| {it[algo]['iteration_s'] * 1e3:.1f} |"
        )
    lines += peers_markdown(r)
    if "seeds_scaling" in r:
        lines += seeds_markdown(r)
    if "logging_overhead" in r:
        lines += [
            "",
            "Host-callback cost (same program with and without the in-jit callback; W&B "
            "offline logging every seed):",
            "",
            "| env | iterations | log_every | seeds | no callback (s) | callback, no sink (s) "
            "| W&B offline (s) | W&B / no callback | W&B close after (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for o in r["logging_overhead"]:
            lines.append(
                f"| {o['env']} | {o['iterations']} | {o['log_every']} | {o['runs']} "
                f"| {o['no_callback_s']:.2f} "
                f"| {o['callback_no_sink_s']:.2f} | {o['wandb_offline_s']:.2f} "
                f"| {o['wandb_over_no_callback']:.3f}x | {o['wandb_finish_s']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def seeds_markdown(r: dict[str, Any]) -> list[str]:
    s = r["settings"]
    lines = [
        "",
        f"Seeds scaling ({s['scaling_env']}, ppo, {s['scaling_envs']} envs x "
        f"{s['scaling_steps']} steps per seed, {s['iterations']} iterations, one vmapped call):",
        "",
        "| seeds | compile (s) | total env steps/s | vs 1 seed | XLA memory (MiB) |",
        "|---|---|---|---|---|",
    ]
    for row in r["seeds_scaling"]:
        lines.append(
            f"| {row['seeds']} | {row['compile_s']:.1f} | {row['env_steps_per_s']:,.0f} "
            f"| {row['over_one_seed']:.2f}x | {row['xla_memory_bytes'] / 2**20:.1f} |"
        )
    return lines


def peers_markdown(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, label in (("brax_ppo", "Brax PPO"), ("rejax_ppo", "rejax PPO")):
        p = r.get(key)
        if p is None:
            continue
        if "skipped" in p:
            lines += ["", f"{label}: skipped ({p['skipped']})."]
            continue
        peer = p["brax"] if key == "brax_ppo" else p["rejax"]
        lines += [
            "",
            f"{label} vs vecpg ppo, matched settings, {p.get('env_steps', '')} env steps, seed 0:",
            "",
            "| trainer | compile (s) | env steps/s | return |",
            "|---|---|---|---|",
            f"| {label} | {peer['compile_s']:.1f} | {peer['env_steps_per_s']:,.0f} "
            f"| {peer.get('eval_return', float('nan')):.1f} |",
            f"| vecpg ppo | {p['vecpg']['compile_s']:.1f} | {p['vecpg']['env_steps_per_s']:,.0f} "
            f"| {p['vecpg']['eval_return']:.1f} |",
            "",
            f"vecpg / {label} throughput: {p['throughput_ratio']:.2f}x",
        ]
    return lines


def check_result(r: dict[str, Any]) -> None:
    """Every number positive and finite (the CI smoke test's assertion)."""
    keys = ("ceiling", "iteration", "over_ceiling", "phases", "trust_region_cost", "seeds_scaling")
    nums = jax.tree.leaves({k: r[k] for k in keys if k in r})
    nums += jax.tree.leaves(r.get("logging_overhead", []))
    for v in nums:
        if v is None or isinstance(v, str):
            continue
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
