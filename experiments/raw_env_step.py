"""Raw brax env stepping (vmapped env.step in a scan, random actions, no wrapper, no
reset) next to vecpg's env ceiling (time limit, auto-reset with per-rollout fresh starts,
non-finite guard): how much vecpg's env wrapper costs. Same envs and batch shapes as the
BENCHMARKS.md runs; one XLA device; medians of 5 timed calls.

    .venv/bin/python experiments/raw_env_step.py
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp

from vecpg.bench.runner import machine
from vecpg.bench.throughput import ceiling_lane, random_actions
from vecpg.envs import make_env

CASES = (("brax/hopper", "positional", 64), ("brax/inverted_pendulum", "generalized", 16))
NUM_STEPS, ITERATIONS = 64, 10


def raw_steps(env, num_envs: int, key: jax.Array) -> jax.Array:
    k_reset, k_act = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs)).state

    def body(state, k):
        out = jax.vmap(env.step)(state, random_actions(env.spec, k, num_envs))
        # obs too: brax inverted_pendulum's reward is constant, and XLA would drop physics
        return out.state, jnp.sum(out.reward) + jnp.sum(out.obs)

    _, sums = jax.lax.scan(body, state, jax.random.split(k_act, NUM_STEPS * ITERATIONS))
    return jnp.sum(sums)


def steps_per_s(fn, arg, n: int) -> float:
    jax.block_until_ready(fn(arg))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(arg))
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> None:
    print(machine())
    print("| env | envs | raw env.step (steps/s) | vecpg ceiling (steps/s) | ceiling / raw |")
    print("|---|---|---|---|---|")
    for name, backend, num_envs in CASES:
        env = make_env(name, backend)
        n = num_envs * NUM_STEPS * ITERATIONS
        raw = steps_per_s(
            jax.jit(functools.partial(raw_steps, env, num_envs)), jax.random.key(0), n
        )
        ceiling_fn = jax.jit(functools.partial(ceiling_lane, env, num_envs, NUM_STEPS, ITERATIONS))
        ceil = steps_per_s(ceiling_fn, jax.random.key_data(jax.random.key(0)), n)
        print(f"| {name} ({backend}) | {num_envs} | {raw:,.0f} | {ceil:,.0f} | {ceil / raw:.2f}x |")


if __name__ == "__main__":
    main()
