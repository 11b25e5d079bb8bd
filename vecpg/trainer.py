"""make_train(static) -> train(key, hparams): the whole run as one pure function.

This is the only module that composes env, rollout, GAE and the updater. One call of
`train` is `lax.scan` over iterations; `jax.jit(jax.vmap(train))` runs many seeds (or a
hyperparameter grid) as one compiled program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from vecpg.advantages import batched_gae
from vecpg.algos import Batch, Updater, make_updater
from vecpg.config import HParams, StaticConfig
from vecpg.envs import Env, EpisodeState, make_env, reset_episode
from vecpg.networks import Agent, AgentParams, init_agent_params, make_agent
from vecpg.normalize import normalize, update_stats
from vecpg.rollout import Transition, finished_episode_stats, rollout

# progress(lanes [R], iteration, buffer of [log_every, R] metrics)
ProgressFn = Callable[[jax.Array, jax.Array, dict[str, jax.Array]], None]


@flax.struct.dataclass
class TrainState:
    params: AgentParams
    algo_state: Any
    env_state: EpisodeState  # leaves [num_envs, ...]
    key: jax.Array
    last_return: jax.Array  # latest mean return of finished episodes (carried forward)
    last_length: jax.Array


def init_train_state(
    static: StaticConfig, env: Env, agent: Agent, updater: Updater, key: jax.Array, hp: HParams
) -> TrainState:
    k_params, k_env, key = jax.random.split(key, 3)
    params = init_agent_params(agent, k_params)
    env_state = jax.vmap(reset_episode, in_axes=(None, 0))(
        env, jax.random.split(k_env, static.num_envs)
    )
    zero = jnp.float32(0.0)
    return TrainState(params, updater.init(params, hp), env_state, key, zero, zero)


def make_batch(
    agent: Agent, params: AgentParams, traj: Transition, hp: HParams, use_norm: bool
) -> Batch:
    """Values, GAE and old-policy outputs for a [T, B] trajectory, flattened to [T*B]."""
    norm = (lambda o: normalize(params.obs_stats, o)) if use_norm else (lambda o: o)
    obs, next_obs = norm(traj.obs), norm(traj.next_obs)
    v_t = agent.critic.apply(params.critic, obs)
    v_tp1 = agent.critic.apply(params.critic, next_obs)
    not_term = 1.0 - traj.terminated.astype(jnp.float32)
    not_done = 1.0 - (traj.terminated | traj.truncated).astype(jnp.float32)
    adv = batched_gae(
        traj.reward * hp.reward_scale,
        v_t,
        v_tp1,
        hp.gamma * not_term,
        hp.gae_lambda * not_done,
    )
    old_dist = agent.actor.apply(params.actor, obs)
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return Batch(
        obs=flat(obs),
        action=flat(traj.action),
        log_prob=flat(traj.log_prob),
        advantage=flat(adv),
        target=flat(adv + v_t),
        value=flat(v_t),
        old_dist=jax.tree.map(flat, old_dist),
    )


def policy_change_metrics(agent: Agent, actor_params: Any, batch: Batch) -> dict[str, jax.Array]:
    """Mean KL(pi_new || pi_old) and the largest ratio pi_new/pi_old over the batch."""
    new = agent.actor.apply(actor_params, batch.obs)
    log_ratio = agent.dist.log_prob(new, batch.action) - batch.log_prob
    return {
        "kl": jnp.mean(agent.dist.kl(new, batch.old_dist)),
        "max_ratio": jnp.max(jnp.exp(log_ratio)),
    }


def explained_variance(value: jax.Array, target: jax.Array) -> jax.Array:
    """1 - Var[target - value] / Var[target]; [N] inputs."""
    return 1.0 - jnp.var(target - value) / (jnp.var(target) + 1e-8)


def train_iteration(
    static: StaticConfig,
    env: Env,
    agent: Agent,
    updater: Updater,
    hp: HParams,
    state: TrainState,
    iteration: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Rollout -> GAE -> update -> normaliser update, for one iteration."""
    key, k_roll, k_upd = jax.random.split(state.key, 3)
    env_state, traj = rollout(
        env, agent, state.params, static.normalize_obs, state.env_state, k_roll, static.num_steps
    )
    batch = make_batch(agent, state.params, traj, hp, static.normalize_obs)
    params, algo_state, upd_metrics = updater.update(
        k_upd, state.params, state.algo_state, batch, hp
    )
    if static.normalize_obs:
        flat_obs = traj.obs.reshape(-1, *traj.obs.shape[2:])
        params = params.replace(obs_stats=update_stats(params.obs_stats, flat_obs))

    n_done, mean_return, mean_length = finished_episode_stats(traj)
    last_return = jnp.where(n_done > 0, mean_return, state.last_return)
    last_length = jnp.where(n_done > 0, mean_length, state.last_length)
    env_steps = (iteration + 1) * (static.num_envs * static.num_steps)
    metrics = {
        "env_steps": env_steps.astype(jnp.float32),
        "episode_return": last_return,
        "episode_length": last_length,
        "episodes_finished": n_done,
        "return_change": last_return - state.last_return,
        "nonfinite": jnp.sum(traj.nonfinite.astype(jnp.float32)),
        "explained_variance": explained_variance(batch.value, batch.target),
        **policy_change_metrics(agent, params.actor, batch),
        **upd_metrics,
    }
    new_state = TrainState(params, algo_state, env_state, key, last_return, last_length)
    return new_state, metrics


def run_iterations(
    static: StaticConfig,
    env: Env,
    agent: Agent,
    updater: Updater,
    progress: ProgressFn | None,
    length: int,
    state: TrainState,
    hp: HParams,
    lanes: jax.Array,
    start: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Iterations start .. start+length-1 of R lanes: state, hp and lanes have a leading
    [R] axis; metrics leaves come out [R, length].

    The scan runs over iterations with the lanes vmapped inside its body (the same
    program as vmapping a per-lane scan), so the host callback sits outside the vmap:
    every `log_every` iterations and at the end of the chunk, ONE call
    `progress(lanes, iteration, buffer)` hands over a [log_every, R] buffer of every
    iteration's metrics. `start` is a scalar, so the skip of iterations past
    `num_iterations` (compiled in only when `length` does not divide them) and the
    callback condition are real conds.
    """
    step = jax.vmap(
        lambda s, h, it: train_iteration(static, env, agent, updater, h, s, it),
        in_axes=(0, 0, None),
    )
    last = static.num_iterations - 1
    shapes = jax.eval_shape(step, state, hp, start)[1]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    buf0 = jax.tree.map(lambda s: jnp.zeros((static.log_every, *s.shape), s.dtype), shapes)
    masked = static.num_iterations % length != 0

    def body(carry, it):
        state, buf = carry
        if masked:
            state, metrics = jax.lax.cond(
                it <= last, lambda s: step(s, hp, it), lambda s: (s, zeros), state
            )
        else:
            state, metrics = step(state, hp, it)
        if progress is not None:
            slot = it % static.log_every
            buf = jax.tree.map(lambda b, m: b.at[slot].set(m), buf, metrics)
            flush = (slot == static.log_every - 1) | (it == last) | (it == start + length - 1)
            jax.lax.cond(
                flush & (it <= last),
                lambda: jax.debug.callback(progress, lanes, it, buf),
                lambda: None,
            )
        return (state, buf), metrics

    (state, _), metrics = jax.lax.scan(body, (state, buf0), start + jnp.arange(length))
    return state, jax.tree.map(lambda m: jnp.moveaxis(m, 0, 1), metrics)


def train(
    static: StaticConfig,
    env: Env,
    agent: Agent,
    updater: Updater,
    progress: ProgressFn | None,
    key: jax.Array,
    hp: HParams,
    lane: jax.Array | int = 0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The full run for one seed: metrics leaves are [num_iterations]. Vmappable."""
    state = init_train_state(static, env, agent, updater, key, hp)
    add = lambda x: jnp.asarray(x)[None]  # noqa: E731
    state, metrics = run_iterations(
        static,
        env,
        agent,
        updater,
        progress,
        static.num_iterations,
        jax.tree.map(add, state),
        jax.tree.map(add, hp),
        add(jnp.int32(lane)),
        jnp.int32(0),
    )
    return jax.tree.map(lambda x: x[0], (state, metrics))


class TrainFns(NamedTuple):
    """The pure pieces of a run, bound to one static config (all vmappable)."""

    init: Callable[[jax.Array, HParams], TrainState]  # one lane (vmap it)
    run: Callable[..., tuple[TrainState, dict[str, jax.Array]]]  # (length, state, hp, lanes,
    # start), all lanes at once
    train: Callable[..., tuple[TrainState, dict[str, jax.Array]]]  # (key, hp, lane), one lane


def make_train_fns(static: StaticConfig, progress: ProgressFn | None = None) -> TrainFns:
    env = make_env(static.env, static.backend)
    agent = make_agent(env.spec, static.hidden, static.activation)
    updater = make_updater(static, agent)
    return TrainFns(
        init=functools.partial(init_train_state, static, env, agent, updater),
        run=functools.partial(run_iterations, static, env, agent, updater, progress),
        train=functools.partial(train, static, env, agent, updater, progress),
    )


def make_train(
    static: StaticConfig, progress: ProgressFn | None = None
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """Bind the static pieces; the result `train(key, hparams, lane=0)` is pure and
    vmappable."""
    return make_train_fns(static, progress).train
