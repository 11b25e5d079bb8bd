"""Raw MuJoCo Playground step throughput, --playground-impl jax vs warp, on this machine.

    python experiments/playground_impls.py     # about 3 min on 2 CPU cores

Random actions, 256 envs, `jit(scan(vmap(env.step)))` of 100 steps on Playground's own
env (no vecpg wrappers: warp cannot run inside vecpg's program, see README), median of 3
timed calls after a warm-up. Writes experiments/results/playground_impls.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax

from vecpg.bench.timing import machine, median_time

TASKS = ("CartpoleBalance", "CheetahRun", "WalkerWalk")
NUM_ENVS, STEPS = 256, 100


def steps_per_s(task: str, impl: str) -> dict[str, float]:
    from mujoco_playground import registry

    env = registry.load(task, config_overrides={"impl": impl})

    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, NUM_ENVS))

        def body(s, k):
            a = jax.random.uniform(k, (NUM_ENVS, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return s, s.reward.sum()

        return jax.lax.scan(body, state, jax.random.split(k_act, STEPS))[1].sum()

    t0 = time.perf_counter()
    fn = jax.jit(run).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: fn(jax.random.key(1)), 3)
    return {"compile_s": compile_s, "env_steps_per_s": NUM_ENVS * STEPS / run_s}


if __name__ == "__main__":
    rows = {}
    for task in TASKS:
        for impl in ("jax", "warp"):
            rows[f"{task}/{impl}"] = steps_per_s(task, impl)
            print(task, impl, rows[f"{task}/{impl}"], flush=True)
    out = {"machine": machine(), "num_envs": NUM_ENVS, "steps": STEPS, "rows": rows}
    path = Path(__file__).parent / "results" / "playground_impls.json"
    path.write_text(json.dumps(out, indent=2))
    print("wrote", path)
