"""`vecpg bench`'s report: bench.json, bench.md and the markdown tables printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vecpg.bench.plan import VMAP_CONFIG
from vecpg.config import TrainConfig


def physics(env: str, settings: dict[str, Any]) -> str:
    """' (positional)' for a brax env's backend; nothing for other sources."""
    return f" ({settings['backend']})" if env.startswith("brax/") else ""


def to_markdown(r: dict[str, Any]) -> str:
    """The tables of whatever sections `r` holds (a run cut short keeps its first ones)."""
    s = r["settings"]
    lines = [
        f"Machine: {r['machine']}; jax {r['jax']}; {r.get('num_devices', 1)} device(s). "
        f"Env {s['env']}{physics(s['env'], s)}, "
        f"{s['num_envs']} envs x {s['num_steps']} steps = batch {s['batch']}, "
        f"{s['update_epochs']} epochs x {s['num_minibatches']} minibatches "
        f"(update-to-data ratio {update_to_data(s):g} gradient steps per batch), hidden "
        f"{tuple(s['hidden'])}, {s['cg_iters']} CG iterations; medians of {s['repeats']} runs; "
        f"{s['iterations']} iterations per timed call, one lane per device; vecpg "
        f"{compile_settings(r)} (peers: XLA's defaults).",
    ]
    if "iteration" in r:
        lines += iteration_markdown(r)
    if "trust_region_cost" in r:
        lines += trust_region_markdown(r)
    if "phases" in r:
        lines += phases_markdown(r)
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
    if "many_seeds" in r:
        lines += many_seeds_markdown(r["many_seeds"])
    if "vmap_vs_loop" in r:
        lines += ["", vmap_markdown(r["vmap_vs_loop"], VMAP_CONFIG)]
    return "\n".join(lines) + "\n"


def compile_settings(r: dict[str, Any]) -> str:
    """The config's XLA options that apply on this run's machine."""
    s = r["settings"]
    if r.get("machine", "").startswith("CPU"):
        level = s.get("cpu_opt_level", 2)
        emitters = s.get("cpu_fusion_emitters", True)
        return (f"cpu_fast_math={s.get('cpu_fast_math', False)}, cpu_opt_level={level}, "
                f"cpu_fusion_emitters={emitters}")  # fmt: skip
    return f"gpu_autotune={s.get('gpu_autotune', True)}"


def update_to_data(s: dict[str, Any]) -> int:
    """Gradient steps per collected batch: epochs x minibatches (ppo)."""
    return int(s["update_epochs"]) * int(s["num_minibatches"])


def iteration_markdown(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| program | compile (s) | env steps/s | vs ceiling |",
        "|---|---|---|---|",
        f"| raw env ceiling (scan of vmapped step, random actions) | "
        f"{r['ceiling']['compile_s']:.1f} | {r['ceiling']['env_steps_per_s']:,.0f} | 1.00x |",
    ]
    for algo, v in r["iteration"].items():
        lines.append(
            f"| vecpg {algo} (rollout + GAE + update) | {v['compile_s']:.1f} "
            f"| {v['env_steps_per_s']:,.0f} | {r['over_ceiling'][algo]:.2f}x |"
        )
    for algo, v in r.get("iteration_feedforward", {}).items():
        ratio = r["memory_over_feedforward_iteration"][algo]
        lines.append(
            f"| vecpg {algo} without the recurrent core | {v['compile_s']:.1f} "
            f"| {v['env_steps_per_s']:,.0f} | with the core: {ratio:.2f}x its iteration time |"
        )
    if "trpo_over_ppo_compile" in r:
        lines += ["", f"trpo / ppo compile: {r['trpo_over_ppo_compile']:.2f}x (each cold)"]
    return lines


def trust_region_markdown(r: dict[str, Any]) -> list[str]:
    tr, it = r["trust_region_cost"], r["iteration"]
    return [
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


def phases_markdown(r: dict[str, Any]) -> list[str]:
    lines = [
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
            f"| {r['iteration'][algo]['iteration_s'] * 1e3:.1f} |"
        )
    return lines


def many_seeds_markdown(m: dict[str, Any]) -> list[str]:
    return [
        "",
        f"{m['seeds']} seeds of ppo on {m['env']} x {m['steps_per_seed']:,} steps each, one "
        f"`vecpg.train` call: wall {m['wall_s']:.1f} s (compile {m['compile_s']:.1f} s), "
        f"{m['env_steps_per_s']:,.0f} env steps/s while running, {m['solved']} of "
        f"{m['seeds']} seeds with a final return >= {m['solved_at']:g} "
        f"({m.get('diverged', 0)} diverged, never counted as solved).",
    ]


def seeds_markdown(r: dict[str, Any]) -> list[str]:
    s = r["settings"]
    lines = [
        "",
        f"Seeds scaling ({s['scaling_env']}{physics(s['scaling_env'], s)}, ppo, "
        f"{s['scaling_envs']} envs x "
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
        if p.get("compile_ratio") is not None:
            lines.append(f"vecpg / {label} compile: {p['compile_ratio']:.2f}x")
        if "reset_compile_s" in peer:
            lines.append(
                f"({label}'s compile: training epoch {peer['epoch_compile_s']:.1f} s + env "
                f"reset program {peer['reset_compile_s']:.1f} s; its evaluation programs are "
                "not counted, as vecpg's training compiles none.)"
            )
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
