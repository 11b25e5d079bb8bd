"""What `vecpg bench` times: the raw env ceiling, training iterations and their phases,
the trust-region pieces, seeds scaling, vmapped vs one-by-one runs and the cost of the
in-jit host callback. All timings are of the programs `make_train` builds (compiled as
`vecpg.training.execute` compiles them), compile time kept apart, medians over repeats."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from vecpg.algos import objectives
from vecpg.algos.base import Batch
from vecpg.algos.natural import conjugate_gradient, flat_fvp
from vecpg.algos.trust_region import fvp_subsample
from vecpg.bench.timing import median_time
from vecpg.config import TrainConfig
from vecpg.envs import Env, EnvSpec, make_env_for, step_episode
from vecpg.envs.registry import make_env
from vecpg.envs.wrappers import begin_pending, fresh_starts, unstarted_episodes
from vecpg.models.networks import init_agent_params, make_agent
from vecpg.training.execute import (
    compiled_train,
    plan_lanes,
    runs_sharding,
)
from vecpg.training.trainer import init_train_state, make_batch, make_pieces
from vecpg.training.xla_options import program_options


def lane_inputs(cfg: TrainConfig, num_runs: int) -> tuple:
    """Sharded (key data, hparams, lane ids) for `num_runs` lanes of cfg."""
    plan = plan_lanes(list(range(num_runs)), [cfg.hparams()] * num_runs, None)
    sharding = runs_sharding()
    put = lambda x: jax.device_put(x, sharding)  # noqa: E731
    return put(plan.key_data), jax.tree.map(put, plan.hparams), put(plan.lane_ids)


def random_actions(spec: EnvSpec, key: jax.Array, n: int) -> jax.Array:
    """[n] uniform actions of the env's action space."""
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
    state = unstarted_episodes(env, k_reset, num_envs)  # as the trainer: one reset program
    step = jax.vmap(functools.partial(step_episode, defer_reset=True), in_axes=(None, 0, 0))

    def rollout(state, k):
        k_fresh, k_act = jax.random.split(k)
        fresh = fresh_starts(env, k_fresh, num_envs)

        def body(state, k):
            state = jax.vmap(begin_pending)(state, fresh)
            out = step(env, state, random_actions(env.spec, k, num_envs))
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
    env = make_env_for(cfg)
    one = functools.partial(ceiling_lane, env, cfg.num_envs, cfg.num_steps, iterations)
    sharding = runs_sharding()
    t0 = time.perf_counter()
    options = program_options(cfg)  # the trainer's options: a fair ratio
    jitted = jax.jit(jax.vmap(one), in_shardings=sharding, compiler_options=options)
    fn = jitted.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: fn(keys), repeats)
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


def seeds_scaling(
    cfg: TrainConfig,
    seed_counts: tuple[int, ...],
    repeats: int,
    row_done: Callable[[list[dict]], None] = lambda rows: None,
) -> list[dict]:
    """Total env steps/s, compile time and memory of one vmapped call per seed count;
    `row_done(rows)` after each count (rows grows in place)."""
    rows: list[dict[str, Any]] = []
    for n in seed_counts:
        args = lane_inputs(cfg, n)
        lanes = args[0].shape[0]  # padded to the device count
        t0 = time.perf_counter()
        fn = compiled_train(cfg.static(), lanes)
        compile_s = time.perf_counter() - t0
        run_s = median_time(lambda: fn(*args), repeats)
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
        rows[-1]["over_one_seed"] = rows[-1]["env_steps_per_s"] / rows[0]["env_steps_per_s"]
        row_done(rows)
    return rows


def many_seeds(cfg: TrainConfig, num_seeds: int, solved_at: float = 475.0) -> dict[str, Any]:
    """`num_seeds` seeds of cfg in one `vecpg.train` call: wall time (compile included),
    env steps/s while running, and how many seeds end at or above `solved_at` (a diverged
    seed never counts as solved: the run's own scoring, `Results.final_returns`)."""
    from vecpg.run.api import train

    t0 = time.perf_counter()
    res = train(cfg, seeds=num_seeds)
    wall_s = time.perf_counter() - t0
    final = res.final_returns()
    diverged = res.diverged()
    return {
        "env": cfg.env,
        "seeds": num_seeds,
        "steps_per_seed": int(res.metrics["env_steps"][0, -1]),
        "wall_s": wall_s,
        "compile_s": res.compile_s,
        "env_steps_per_s": float(res.summary()["env_steps_per_s"]),
        "solved_at": solved_at,
        "solved": int(
            sum(r >= solved_at for s, r in zip(res.seeds, final, strict=True) if s not in diverged)
        ),
        "diverged": len(diverged),
    }


def logging_overhead(cfg: TrainConfig, num_runs: int, repeats: int) -> dict[str, Any]:
    """Wall time of the same training call compiled without the host callback, with it
    but no sink, and with W&B offline logging every lane (`log_every` of cfg). The W&B
    worker's drain-and-close after the call is timed apart (`wandb_finish_s`)."""
    from vecpg.run.progress import sinks_active
    from vecpg.run.tracking import WandbLogger, WandbOptions, WandbRunSpec

    args = lane_inputs(cfg, num_runs)
    bare = compiled_train(cfg.static(), args[0].shape[0])  # the program vecpg runs
    with_cb = compiled_train(cfg.static(), args[0].shape[0], callback=True)
    out: dict[str, Any] = {
        "env": cfg.env,
        "iterations": cfg.num_iterations,
        "runs": num_runs,
        "log_every": cfg.log_every,
        "no_callback_s": median_time(lambda: bare(*args), repeats),
        "callback_no_sink_s": median_time(lambda: with_cb(*args), repeats),
    }
    train_times, finish_times = [], []
    specs = [WandbRunSpec(f"seed{i}", {"seed": i}) for i in range(num_runs)]
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            logger = WandbLogger(WandbOptions("offline", project="vecpg-bench"), specs, d, "b")
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


def phase_timings(cfg: TrainConfig, repeats: int) -> dict[str, float]:
    """Seconds of each phase of one iteration, each jitted on its own (one lane): the
    rollout (policy + env steps + auto-reset), the batch (values + GAE) and the update
    (all epochs and minibatches). Their sum next to the fused iteration shows what
    fusion saves; their shares show where the time goes."""
    from vecpg.training.rollout import rollout

    static, hp = cfg.static(), cfg.hparams()
    p = make_pieces(static)
    key = jax.random.key(0)
    state = init_train_state(p, key, hp)
    norm = static.normalize_obs

    def roll(params, env_state, k):
        traj = rollout(
            p.env, p.agent, params, env_state, k, num_steps=static.num_steps, normalize_obs=norm
        )
        return traj[2]

    jit = functools.partial(jax.jit, compiler_options=program_options(static))
    roll_fn = jit(roll)
    batch_fn = jit(lambda params, traj: make_batch(p.agent, params, traj, hp, normalize=norm))
    update = jit(lambda k, params, a, b: p.updater.update(k, params, a, b, hp)[0])
    traj = roll_fn(state.params, state.env_state, key)
    batch = batch_fn(state.params, traj)
    return {
        "rollout_s": median_time(lambda: roll_fn(state.params, state.env_state, key), repeats),
        "batch_gae_s": median_time(lambda: batch_fn(state.params, traj), repeats),
        "update_s": median_time(
            lambda: update(key, state.params, state.algo_state, batch), repeats
        ),
    }


def cold_env_traces(cfg: TrainConfig) -> None:
    """Rebuild cfg's env (outside any timing), so the next program traces it from
    scratch: a cold compile, as a peer's in the same process is (vecpg's adapters keep
    their traces, `vecpg.envs.registry.TracedOnce`)."""
    make_env.cache_clear()
    make_env_for(cfg)


def iteration_cost(cfg: TrainConfig, iterations: int, repeats: int) -> dict[str, float]:
    """Compile time and steady-state seconds per iteration of the real train program."""
    cfg = dataclasses.replace(cfg, total_steps=iterations * cfg.batch_size)
    lanes = jax.device_count()  # the smallest call the real (sharded) program takes
    args = lane_inputs(cfg, lanes)
    cold_env_traces(cfg)
    t0 = time.perf_counter()
    compiled = compiled_train(cfg.static(), lanes)
    compile_s = time.perf_counter() - t0
    run_s = median_time(lambda: compiled(*args)[1], repeats)
    return {
        "compile_s": compile_s,
        "iteration_s": run_s / iterations,
        "env_steps_per_s": lanes * iterations * cfg.batch_size / run_s,
    }


def trust_region_cost(cfg: TrainConfig, repeats: int) -> dict[str, float]:
    """Seconds for grad(surrogate), one FVP and one CG solve on a batch of cfg's size."""
    spec = make_env_for(cfg).spec
    agent = make_agent(spec, cfg.hidden, cfg.activation, cfg.torso)
    params = init_agent_params(agent, jax.random.key(0)).actor
    n = cfg.batch_size
    obs = jax.random.normal(jax.random.key(1), (n, *spec.obs_shape))
    dist = agent.actor.apply(params, obs)
    action = agent.dist.sample(jax.random.key(2), dist)
    advantage = jax.random.normal(jax.random.key(3), (n,))
    logp = agent.dist.log_prob(dist, action)
    batch = Batch(obs, action, logp, advantage, jnp.zeros(n), jnp.zeros(n), dist)
    flat, _ = ravel_pytree(params)
    sub = fvp_subsample(jax.random.key(4), batch.obs, cfg.fvp_fraction)

    def matvec(p):
        damping = jnp.float32(cfg.damping)
        return flat_fvp(lambda q: agent.actor.apply(q, sub), agent.dist.fisher_vp, p, damping)

    def surrogate_grad(p):
        return ravel_pytree(jax.grad(lambda q: objectives.surrogate(agent, q, batch))(p))[0]

    jit = functools.partial(jax.jit, compiler_options=program_options(cfg))
    pg = jit(surrogate_grad)
    fvp = jit(lambda p, v: matvec(p)(v))
    cg = jit(lambda p, g: conjugate_gradient(matvec(p), g, cfg.cg_iters).x)
    g = pg(params)
    out = {
        "pg_s": median_time(lambda: pg(params), repeats),
        "fvp_s": median_time(lambda: fvp(params, flat), repeats),
        "cg_s": median_time(lambda: cg(params, g), repeats),
    }
    out["fvp_over_pg"] = out["fvp_s"] / out["pg_s"]
    out["cg_over_pg"] = out["cg_s"] / out["pg_s"]
    return out


def vmap_vs_loop(cfg: TrainConfig, num_runs: int) -> dict[str, float]:
    """`num_runs` seeds as one vmapped call against the same runs one by one, each side
    timed from a cold start (compilation included)."""
    from vecpg.run.api import train

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
