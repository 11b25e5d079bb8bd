"""Learning parity with Brax's own PPO, over seeds (issue: numbers you can trust).

Brax PPO (`brax.training.agents.ppo.train`) and vecpg `ppo` with identical settings (the
matching of `vecpg.bench.peers`), the same env steps, N seeds each, and a deterministic
evaluation over 16 episodes per seed on both sides. Reports, per env, the IQM of the
final evaluation return with a 95% stratified-bootstrap CI and the probability that
vecpg improves on Brax (`vecpg.stats`), plus learning curves.

    python experiments/parity_brax.py                  # hopper 2M, inverted_pendulum 300k, 8 seeds
    python experiments/parity_brax.py --seeds 2 --scale 0.05   # a smoke run

Writes experiments/results/parity_brax.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import vecpg
from vecpg import stats
from vecpg.analysis.evaluate import evaluate
from vecpg.analysis.plots import pyplot
from vecpg.bench.peers import brax_ppo

RESULTS = Path(__file__).parent / "results"
EVAL_EPISODES = 16
# One settings block per env: the vecpg TrainConfig; Brax PPO gets the same fields.
ENVS = {
    "brax/hopper": dict(
        backend="positional",
        num_envs=64,
        num_steps=64,
        total_steps=2_000_000,
        update_epochs=4,
        num_minibatches=8,
        hidden=(64, 64),
    ),  # fmt: skip
    "brax/inverted_pendulum": dict(
        backend="generalized", num_envs=16, num_steps=64, total_steps=300_000, hidden=(64, 64)
    ),  # fmt: skip
}


def run_env(env: str, settings: dict, seeds: list[int], scale: float) -> dict:
    total = int(settings["total_steps"] * scale)
    cfg = vecpg.TrainConfig(env=env, **{**settings, "total_steps": total})
    t0 = time.perf_counter()
    res = vecpg.train(cfg, seeds=seeds)
    with tempfile.TemporaryDirectory() as d:
        res.save(Path(d) / "run")
        ev = evaluate(Path(d) / "run", episodes=EVAL_EPISODES, seed=1000)
    vecpg_final = ev.deterministic.mean(axis=1)  # [seeds]
    vecpg_s = time.perf_counter() - t0
    brax_final, brax_s = [], 0.0
    for s in seeds:
        out = brax_ppo(cfg, total, EVAL_EPISODES, seed=s)
        brax_final.append(out["eval_return"])
        brax_s += out["wall_s"]
        # Brax PPO recompiles per call; its executables piled up until LLVM ran out of
        # memory (first full run, 2-core box with 24 GiB, next to CI). Untested fix:
        jax.clear_caches()
    return {
        "env": env,
        "settings": {**cfg.to_dict()},
        "env_steps_per_seed": int(res.metrics["env_steps"][0, -1]),
        "seeds": seeds,
        "vecpg_eval": [float(x) for x in vecpg_final],
        "brax_eval": [float(x) for x in brax_final],
        "vecpg_curve_steps": res.metrics["env_steps"][0].tolist(),
        "vecpg_curve": res.metrics["episode_return"].tolist(),
        "wall_s": {"vecpg_train_and_eval": vecpg_s, "brax_all_seeds": brax_s},
    }


def summarise(r: dict) -> dict:
    v, b = np.asarray(r["vecpg_eval"])[:, None], np.asarray(r["brax_eval"])[:, None]
    return {
        "vecpg_iqm": stats.iqm(v),
        "vecpg_ci": stats.stratified_bootstrap_ci(v, stats.iqm),
        "brax_iqm": stats.iqm(b),
        "brax_ci": stats.stratified_bootstrap_ci(b, stats.iqm),
        "p_vecpg_better": stats.probability_of_improvement(v, b),
    }


def markdown(results: list[dict], machine: str, command: str) -> str:
    lines = [
        "# Learning parity: vecpg ppo vs Brax PPO",
        "",
        f"Machine: {machine}. Command: `{command}`.",
        f"Deterministic evaluation, {EVAL_EPISODES} episodes per seed, after training; IQM",
        "over seeds with 95% stratified-bootstrap CIs; P(vecpg > Brax) is the probability",
        "of improvement (0.5: a tie).",
        "",
        "| env | steps/seed | seeds | vecpg ppo IQM (95% CI) | Brax PPO IQM (95% CI) "
        "| P(vecpg > Brax) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s = summarise(r)
        lines.append(
            f"| {r['env']} | {r['env_steps_per_seed']:,} | {len(r['seeds'])} | "
            f"{s['vecpg_iqm']:.0f} ({s['vecpg_ci'][0]:.0f} .. {s['vecpg_ci'][1]:.0f}) | "
            f"{s['brax_iqm']:.0f} ({s['brax_ci'][0]:.0f} .. {s['brax_ci'][1]:.0f}) | "
            f"{s['p_vecpg_better']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    from vecpg.analysis.stats import mean_bootstrap_curve

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), dpi=100)
    for ax, r in zip(np.atleast_1d(axes), results, strict=True):
        mean, lo, hi = mean_bootstrap_curve(np.asarray(r["vecpg_curve"]))
        steps = r["vecpg_curve_steps"]
        ax.plot(steps, mean, label="vecpg ppo (training episodes)")
        ax.fill_between(steps, lo, hi, alpha=0.3)
        for name, key in (("vecpg ppo", "vecpg_eval"), ("Brax PPO", "brax_eval")):
            ax.scatter([steps[-1]] * len(r[key]), r[key], s=12, label=f"{name}: final eval")
        ax.set_title(f"{r['env']} ({len(r['seeds'])} seeds)", fontsize=9)
        ax.set_xlabel("env steps (per seed)")
        ax.set_ylabel("episode return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    from vecpg.bench.timing import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each env's steps")
    ap.add_argument("--envs", nargs="*", default=list(ENVS))
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    results = [run_env(e, ENVS[e], seeds, args.scale) for e in args.envs]
    command = "python experiments/parity_brax.py" + (
        f" --seeds {args.seeds} --scale {args.scale}"
        if (args.seeds, args.scale) != (8, 1.0)
        else ""
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parity_brax.json").write_text(json.dumps(results, indent=1))
    text = markdown(results, machine(), command)
    (RESULTS / "parity_brax.md").write_text(text)
    plot(results, RESULTS / "parity_brax.png")
    print(text)


if __name__ == "__main__":
    main()
