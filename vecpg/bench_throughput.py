"""Throughput pieces of `vecpg bench`: the raw env ceiling, seeds scaling and the cost
of the in-jit host callback (live progress / W&B logging). All timings are of the real
compiled programs, compile time kept apart, medians over repeats."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.config import TrainConfig
from vecpg.envs import Env, make_env, reset_episode, step_episode
from vecpg.envs.wrappers import fresh_starts
from vecpg.execute import _train_from_key_data, compiled_train, plan_lanes, runs_sharding


def lane_inputs(cfg: TrainConfig, num_runs: int) -> tuple:
    """Sharded (key data, hparams, lane ids) for `num_runs` lanes of cfg."""
    plan = plan_lanes(list(range(num_runs)), [cfg.hparams()] * num_runs, None)
    sharding = runs_sharding()
    put = lambda x: jax.device_put(x, sharding)  # noqa: E731
    return put(plan.key_data), jax.tree.map(put, plan.hparams), put(plan.lane_ids)


def median_call(fn, args: tuple, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def random_actions(spec, key: jax.Array, n: int) -> jax.Array:
    if spec.discrete:
        return jax.random.randint(key, (n,), 0, spec.num_actions)
    shape = (n, spec.num_actions)
    return jax.random.uniform(key, shape, minval=spec.action_low, maxval=spec.action_high)


def ceiling_lane(
    env: Env, num_envs: int, num_steps: int, iterations: int, key_data: jax.Array
) -> jax.Array:
    """One lane of the ceiling: the trainer's env work without the agent. num_envs envs
    stepped num_steps x iterations times with random actions, through the same
    time-limit/auto-reset wrapper and per-rollout fresh starts. Returns the reward sum
    (so nothing is dead code)."""
    k_reset, key = jax.random.split(jax.random.wrap_key_data(key_data))
    state = jax.vmap(reset_episode, in_axes=(None, 0))(env, jax.random.split(k_reset, num_envs))
    step = jax.vmap(step_episode, in_axes=(None, 0, 0, 0))

    def rollout(state, k):
        k_fresh, k_act = jax.random.split(k)
        fresh = fresh_starts(env, k_fresh, num_envs)

        def body(state, k):
            out = step(env, state, random_actions(env.spec, k, num_envs), fresh)
            return out.state, jnp.sum(out.reward)

        state, rewards = jax.lax.scan(body, state, jax.random.split(k_act, num_steps))
        return state, jnp.sum(rewards)

    _, rewards = jax.lax.scan(rollout, state, jax.random.split(key, iterations))
    return jnp.sum(rewards)


def env_ceiling(cfg: TrainConfig, iterations: int, repeats: int) -> dict[str, float]:
    """Raw env steps/s: a `lax.scan` of the vmapped env.step, random actions, the same
    lanes (one per device), num_envs and total steps as a timed training call."""
    lanes = jax.device_count()
    keys, _, _ = lane_inputs(cfg, lanes)
    # Built outside the trace: brax creates arrays when an env is built, and a cached env
    # built under jit would hold that trace's values.
    env = make_env(cfg.env, cfg.backend)
    one = functools.partial(ceiling_lane, env, cfg.num_envs, cfg.num_steps, iterations)
    sharding = runs_sharding()
    t0 = time.perf_counter()
    fn = jax.jit(jax.vmap(one), in_shardings=sharding).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(fn(keys))
    run_s = median_call(fn, (keys,), repeats)
    return {
        "compile_s": compile_s,
        "env_steps_per_s": lanes * iterations * cfg.batch_size / run_s,
    }


def memory_bytes(compiled) -> int:
    """XLA's own account of the program's memory: arguments + outputs + temporaries."""
    m = compiled.memory_analysis()
    if m is None:
        return 0
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def device_peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def seeds_scaling(cfg: TrainConfig, seed_counts: tuple[int, ...], repeats: int) -> list[dict]:
    """Total env steps/s, compile time and memory of one vmapped call per seed count."""
    rows = []
    for n in seed_counts:
        args = lane_inputs(cfg, n)
        lanes = args[0].shape[0]  # padded to the device count
        t0 = time.perf_counter()
        fn = compiled_train(cfg.static(), lanes)
        compile_s = time.perf_counter() - t0
        jax.block_until_ready(fn(*args))
        run_s = median_call(fn, args, repeats)
        rows.append(
            {
                "seeds": n,
                "compile_s": compile_s,
                "run_s": run_s,
                "env_steps_per_s": n * cfg.num_iterations * cfg.batch_size / run_s,
                "xla_memory_bytes": memory_bytes(fn),
                "device_peak_bytes": device_peak_bytes(),
            }
        )
        compiled_train.cache_clear()  # each seed count is its own program anyway
    base = rows[0]["env_steps_per_s"]
    for r in rows:
        r["over_one_seed"] = r["env_steps_per_s"] / base
    return rows


def logging_overhead(cfg: TrainConfig, num_runs: int, repeats: int) -> dict[str, Any]:
    """Wall time of the same training call compiled without the host callback, with it
    but no sink, and with W&B offline logging every lane (`log_every` of cfg). The W&B
    worker's drain-and-close after the call is timed apart (`wandb_finish_s`)."""
    from vecpg.progress import sinks_active
    from vecpg.tracking import Lane, WandbLogger, WandbOptions
    from vecpg.trainer import make_train_fns

    args = lane_inputs(cfg, num_runs)
    sharding = runs_sharding()
    bare_fns = make_train_fns(cfg.static(), None)
    bare = jax.jit(
        functools.partial(_train_from_key_data, bare_fns, cfg.num_iterations),
        in_shardings=sharding,
    )
    with_cb = compiled_train(cfg.static(), args[0].shape[0])
    jax.block_until_ready(bare(*args))
    jax.block_until_ready(with_cb(*args))
    out = {
        "env": cfg.env,
        "iterations": cfg.num_iterations,
        "runs": num_runs,
        "log_every": cfg.log_every,
        "no_callback_s": median_call(bare, args, repeats),
        "callback_no_sink_s": median_call(with_cb, args, repeats),
    }
    train_times, finish_times = [], []
    lanes = [Lane(f"seed{i}", {"seed": i}) for i in range(num_runs)]
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            logger = WandbLogger(WandbOptions("offline", project="vecpg-bench"), lanes, d, "b")
            while not logger.run_ids and not logger.failed:  # W&B init is not timed
                time.sleep(0.05)
            t0 = time.perf_counter()
            with sinks_active([logger]):
                jax.block_until_ready(with_cb(*args))
            t1 = time.perf_counter()
            logger.finish(None, [])  # drain the queue and close the runs, after training
            train_times.append(t1 - t0)
            finish_times.append(time.perf_counter() - t1)
    out["wandb_offline_s"] = float(np.median(train_times))
    out["wandb_finish_s"] = float(np.median(finish_times))
    out["wandb_over_no_callback"] = out["wandb_offline_s"] / out["no_callback_s"]
    out["callback_over_no_callback"] = out["callback_no_sink_s"] / out["no_callback_s"]
    return out


def scaled(cfg: TrainConfig, iterations: int) -> TrainConfig:
    return dataclasses.replace(cfg, total_steps=iterations * cfg.batch_size)


def phase_timings(cfg: TrainConfig, repeats: int) -> dict[str, float]:
    """Seconds of each phase of one iteration, each jitted on its own (one lane): the
    rollout (policy + env steps + auto-reset), the batch (values + GAE) and the update
    (all epochs and minibatches). Their sum next to the fused iteration shows what
    fusion saves; their shares show where the time goes."""
    from vecpg.algos import make_updater
    from vecpg.networks import make_agent
    from vecpg.rollout import rollout
    from vecpg.trainer import init_train_state, make_batch

    static, hp = cfg.static(), cfg.hparams()
    env = make_env(cfg.env, cfg.backend)
    agent = make_agent(env.spec, static.hidden, static.activation)
    updater = make_updater(static, agent)
    key = jax.random.key(0)
    state = init_train_state(static, env, agent, updater, key, hp)
    norm = static.normalize_obs

    roll = jax.jit(lambda p, s, k: rollout(env, agent, p, norm, s, k, static.num_steps)[1])
    batch_fn = jax.jit(lambda p, traj: make_batch(agent, p, traj, hp, norm))
    update = jax.jit(lambda k, p, a, b: updater.update(k, p, a, b, hp)[0])
    traj = jax.block_until_ready(roll(state.params, state.env_state, key))
    batch = jax.block_until_ready(batch_fn(state.params, traj))
    jax.block_until_ready(update(key, state.params, state.algo_state, batch))
    return {
        "rollout_s": median_call(roll, (state.params, state.env_state, key), repeats),
        "batch_gae_s": median_call(batch_fn, (state.params, traj), repeats),
        "update_s": median_call(update, (key, state.params, state.algo_state, batch), repeats),
    }
