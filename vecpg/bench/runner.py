"""`vecpg bench`: side-by-side timings in one process (compile time kept apart, medians
over repeats), section by section; `report` turns the result into tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from vecpg.bench import peers, throughput
from vecpg.bench.plan import MANY_SEEDS_CONFIG, VMAP_CONFIG, BenchPlan
from vecpg.bench.timing import machine


def run_bench(
    plan: BenchPlan,
    log: Callable[[str], None] = print,
    saved: Callable[[dict[str, Any]], None] = lambda r: None,
) -> dict[str, Any]:
    """Every section of a resolved plan, side by side in this process. `saved(result)`
    is called after each section, so a run cut short keeps what it measured."""
    base = plan.base()
    result: dict[str, Any] = {
        "machine": machine(),
        "jax": jax.__version__,
        "num_devices": jax.device_count(),
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
    ceiling = throughput.env_ceiling(base, plan.iterations, plan.repeats)
    it = {}
    for algo in ("ppo", "trpo"):
        log(f"bench: {algo} iterations")
        cfg = dataclasses.replace(base, algo=algo)
        it[algo] = throughput.iteration_cost(cfg, plan.iterations, plan.repeats)
    result["ceiling"], result["iteration"] = ceiling, it
    result["over_ceiling"] = {a: it[a]["env_steps_per_s"] / ceiling["env_steps_per_s"] for a in it}
    result["trpo_over_ppo_iteration"] = it["trpo"]["iteration_s"] / it["ppo"]["iteration_s"]
    result["trpo_over_ppo_compile"] = it["trpo"]["compile_s"] / it["ppo"]["compile_s"]
    if base.memory != "none":
        log(f"bench: ppo and trpo iterations without the {base.memory} core")
        plain = {
            a: throughput.iteration_cost(
                dataclasses.replace(base, algo=a, memory="none"), plan.iterations, plan.repeats
            )
            for a in ("ppo", "trpo")
        }
        result["iteration_feedforward"] = plain
        result["memory_over_feedforward_iteration"] = {
            a: it[a]["iteration_s"] / plain[a]["iteration_s"] for a in it
        }
    saved(result)
    recurrent = base.memory != "none"  # the pieces below time feed-forward policies
    if plan.detail and not recurrent:
        log("bench: phases of one iteration")
        result["phases"] = {
            a: throughput.phase_timings(dataclasses.replace(base, algo=a), plan.repeats * 3)
            for a in ("ppo", "trpo")
        }
        log("bench: trust-region pieces")
        repeats = max(5, 5 * plan.repeats)
        result["trust_region_cost"] = throughput.trust_region_cost(base, repeats=repeats)
        saved(result)
    if plan.peer_steps and base.env.startswith("brax/") and not recurrent:
        log(f"bench: Brax PPO vs vecpg ppo, {plan.peer_steps:,} steps each")
        result["brax_ppo"] = peers.peer_comparison(base, plan.peer_steps)
        saved(result)
    if plan.peer_steps and not recurrent:
        log("bench: rejax PPO vs vecpg ppo on CartPole")
        result["rejax_ppo"] = peers.rejax_comparison(plan.peer_steps, plan.xla_options())
    if plan.many_seeds:
        log(f"bench: {plan.many_seeds} CartPole seeds in one call")
        result["many_seeds"] = throughput.many_seeds(
            dataclasses.replace(MANY_SEEDS_CONFIG, **plan.xla_options()), plan.many_seeds
        )
        saved(result)
    scale_cfg = plan.scaling_config()
    if plan.scaling_seeds:
        log("bench: seeds scaling")
        result["seeds_scaling"] = throughput.seeds_scaling(
            scale_cfg, plan.scaling_seeds, plan.repeats, lambda rows: saved(result)
        )
        saved(result)
    if plan.vmap_runs:
        log("bench: vmapped runs vs one by one")
        result["vmap_vs_loop"] = throughput.vmap_vs_loop(
            dataclasses.replace(VMAP_CONFIG, **plan.xla_options()), plan.vmap_runs
        )
    if plan.logging_runs:
        log("bench: host-callback / W&B logging overhead")
        log_cfg = dataclasses.replace(scale_cfg, total_steps=48 * scale_cfg.batch_size)
        result["logging_overhead"] = [
            throughput.logging_overhead(
                dataclasses.replace(log_cfg, log_every=k), plan.logging_runs, plan.repeats
            )
            for k in (10, 1)
        ]
        if base.env != log_cfg.env:  # the bench env: heavier iterations, a realistic share
            env_cfg = dataclasses.replace(base, total_steps=20 * base.batch_size)
            runs = min(plan.logging_runs, 2)
            result["logging_overhead"].append(
                throughput.logging_overhead(env_cfg, runs, plan.repeats)
            )
    return result
