"""`make_train(static) -> TrainFns(init, run)`: the compiled core of every run.

This is the only module that composes env, rollout, GAE and the updater. `init` builds
one lane's state; `run` is one `lax.scan` over iterations with the lanes (seeds x grid
points) vmapped inside its body. `execute` jits them (sharded over devices); the bench
and the tests call the same functions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.algos import Batch, Updater, make_updater
from vecpg.algos.objectives import actor_dist
from vecpg.config import HParams, StaticConfig
from vecpg.envs import Env, EpisodeState, make_env_for
from vecpg.envs.wrappers import unstarted_episodes
from vecpg.models.networks import (
    Agent,
    AgentParams,
    Memory,
    init_agent_params,
    init_memory,
    make_agent_for,
    state_value,
)
from vecpg.models.obs_norm import normalize_obs, update_stats
from vecpg.models.recurrent import replay_actor, replay_critic
from vecpg.training.advantages import batched_gae
from vecpg.training.pbt import (
    PBTState,
    exploit_explore,
    init_pbt_state,
    pbt_metrics,
    record_return,
)
from vecpg.training.rollout import Transition, finished_episode_stats, rollout
from vecpg.training.sharding import RUNS, env_shards, split_envs

Metrics = dict[str, jax.Array]
# progress(lane ids [R], iteration, buffer of [log_every, R] metrics), on the host
ProgressFn = Callable[[jax.Array, jax.Array, Metrics], None]


@flax.struct.dataclass
class TrainState:
    params: AgentParams
    algo_state: Any
    env_state: EpisodeState  # leaves [num_envs, ...]
    key: jax.Array
    last_return: jax.Array  # latest mean return of finished episodes (carried forward;
    last_length: jax.Array  # NaN until the lane's first episode finishes)
    diverged: jax.Array  # bool: params, loss or gradients were non-finite at some iteration
    memory: Memory | None = None  # recurrent agents: the cores' states of the envs [num_envs]
    pbt: PBTState | None = None  # population-based training: the lane's own hyperparameters


class Pieces(NamedTuple):
    """What one static config builds once: the env, the networks, the algorithm."""

    static: StaticConfig
    env: Env
    agent: Agent
    updater: Updater


def make_pieces(static: StaticConfig) -> Pieces:
    env = make_env_for(static)
    agent = make_agent_for(env.spec, static)
    return Pieces(static, env, agent, make_updater(static, agent))


def init_train_state(p: Pieces, key: jax.Array, hp: HParams) -> TrainState:
    """One lane's state: fresh params, algorithm state and num_envs unstarted envs (the
    first rollout starts them from its fresh initial states). Under PBT, `hp` is also
    kept as the lane's carried hyperparameters."""
    k_params, k_env, key = jax.random.split(key, 3)
    params = init_agent_params(p.agent, k_params)
    env_state = unstarted_episodes(p.env, k_env, p.static.num_envs)  # the rollout starts them
    none_yet = jnp.float32(jnp.nan)  # no return is reported before an episode finishes
    no = jnp.bool_(False)
    memory = init_memory(p.agent, (p.static.num_envs,))
    algo_state = p.updater.init(params, hp)
    pbt = None if p.static.pbt is None else init_pbt_state(hp)
    return TrainState(params, algo_state, env_state, key, none_yet, none_yet, no, memory, pbt)


def advantages(traj: Transition, v_t: jax.Array, v_tp1: jax.Array, hp: HParams) -> jax.Array:
    """GAE [T, B] of a [T, B] trajectory from V(s_t) and V(s_{t+1}) [T, B] (time-major).
    Truncation bootstraps from the true next state; termination does not."""
    not_term = 1.0 - traj.terminated.astype(jnp.float32)
    not_done = 1.0 - (traj.terminated | traj.truncated).astype(jnp.float32)
    return batched_gae(
        traj.reward * hp.reward_scale,
        v_t,
        v_tp1,
        hp.gamma * not_term,
        hp.gae_lambda * not_done,
    )


def make_batch(
    agent: Agent, params: AgentParams, traj: Transition, hp: HParams, *, normalize: bool
) -> Batch:
    """Values, GAE and old-policy outputs for a [T, B] trajectory, flattened to [T*B].
    Truncation bootstraps from the true next state; termination does not."""
    norm = (lambda o: normalize_obs(params.obs_stats, o)) if normalize else (lambda o: o)
    obs, next_obs = norm(traj.obs), norm(traj.next_obs)
    v_t = state_value(agent, params.critic, obs)
    v_tp1 = state_value(agent, params.critic, next_obs)
    adv = advantages(traj, v_t, v_tp1, hp)
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


def make_sequence_batch(
    agent: Agent,
    params: AgentParams,
    traj: Transition,
    h0: Memory,
    hp: HParams,
    *,
    normalize: bool,
) -> tuple[Batch, Any]:
    """`make_batch` for a recurrent agent: env-major sequences [B, T], the values and
    pi_old replayed from the cores' states at the rollout's start (`h0`, leaves [B, H]).
    Also returns the critic core's state after the last step [B, H], the next rollout's
    start (the actor's comes out of the rollout)."""
    norm = (lambda o: normalize_obs(params.obs_stats, o)) if normalize else (lambda o: o)
    seq = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  [T, B, ...] -> [B, T, ...]
    obs, next_obs, reset = seq(norm(traj.obs)), seq(norm(traj.next_obs)), seq(traj.reset)
    critic_end, v_t, v_tp1 = replay_critic(agent.critic, params.critic, h0.critic, obs,
                                           next_obs, reset)  # fmt: skip
    adv = seq(advantages(traj, seq(v_t), seq(v_tp1), hp))
    old_dist = replay_actor(agent.actor, params.actor, h0.actor, obs, reset)
    batch = Batch(
        obs=obs,
        action=seq(traj.action),
        log_prob=seq(traj.log_prob),
        advantage=adv,
        target=adv + v_t,
        value=v_t,
        old_dist=old_dist,
        h0=h0,
        reset=reset,
    )
    return batch, critic_end


def policy_change_metrics(agent: Agent, actor_params: Any, batch: Batch) -> Metrics:
    """How far the update moved the policy, over the batch [N]: `kl_old_new`, the mean
    KL(pi_old || pi_new) (what trpo constrains and ppo_kl and dual penalise),
    `kl_new_old`, the mean KL(pi_new || pi_old) (the lecture's direction), and
    `max_ratio`, the largest pi_new(a|s) / pi_old(a|s)."""
    new = actor_dist(agent, actor_params, batch)
    log_ratio = agent.dist.log_prob(new, batch.action) - batch.log_prob
    return {
        "kl_old_new": jnp.mean(agent.dist.kl(batch.old_dist, new)),
        "kl_new_old": jnp.mean(agent.dist.kl(new, batch.old_dist)),
        "max_ratio": jnp.max(jnp.exp(log_ratio)),
    }


def all_finite(tree: Any) -> jax.Array:
    """Whether every float in `tree` is finite (a scalar bool). The leaves are checked as
    one flat array: a check per leaf is two kernels each for XLA to compile (27 against 4
    for a 64 x 64 actor-critic's parameters)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    # Scalars (an update's metrics) go in stacked per dtype: the barrier materialises what
    # it holds, and a scalar sliced out of a vector of means was a kernel each.
    scalars: dict[Any, list[jax.Array]] = {}
    for x in leaves:
        if x.ndim == 0:
            scalars.setdefault(x.dtype, []).append(x)
    leaves = [x for x in leaves if x.ndim] + [jnp.stack(xs) for xs in scalars.values()]
    # The barrier keeps XLA from fusing the leaves' producers into the check: that changed
    # how they were compiled, and a chunk length then moved their last bits.
    leaves = jax.lax.optimization_barrier(leaves)
    by_dtype: dict[Any, list[jax.Array]] = {}
    for x in leaves:
        by_dtype.setdefault(x.dtype, []).append(jnp.ravel(x))
    checks = [jnp.all(jnp.isfinite(jnp.concatenate(xs))) for xs in by_dtype.values()]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def explained_variance(value: jax.Array, target: jax.Array) -> jax.Array:
    """1 - Var[target - value] / Var[target]; [N] inputs."""
    return 1.0 - jnp.var(target - value) / (jnp.var(target) + 1e-8)


def train_iteration(
    p: Pieces, state: TrainState, hp: HParams, iteration: jax.Array
) -> tuple[TrainState, Metrics]:
    """Rollout -> GAE -> update -> normaliser update, for one lane and one iteration."""
    static, normalize = p.static, p.static.normalize_obs
    key, k_roll, k_upd = jax.random.split(state.key, 3)
    memory = split_envs(state.memory, axis=0)
    env_state, actor_end, traj = rollout(
        p.env,
        p.agent,
        state.params,
        split_envs(state.env_state, axis=0),
        k_roll,
        num_steps=static.num_steps,
        normalize_obs=normalize,
        carry=None if memory is None else memory.actor,
    )
    env_state, traj = split_envs(env_state, axis=0), split_envs(traj, axis=1)
    if memory is None:
        batch = make_batch(p.agent, state.params, traj, hp, normalize=normalize)
    else:
        batch, critic_end = make_sequence_batch(
            p.agent, state.params, traj, memory, hp, normalize=normalize
        )
        memory = split_envs(Memory(actor=actor_end, critic=critic_end), axis=0)
    params, algo_state, upd_metrics = p.updater.update(
        k_upd, state.params, state.algo_state, batch, hp
    )
    if normalize:
        flat_obs = traj.obs.reshape(-1, *traj.obs.shape[2:])
        params = dataclasses.replace(params, obs_stats=update_stats(params.obs_stats, flat_obs))

    diverged = state.diverged | ~all_finite((params, upd_metrics))
    n_done, mean_return, mean_length = finished_episode_stats(traj)
    last_return = jnp.where(n_done > 0, mean_return, state.last_return)
    last_length = jnp.where(n_done > 0, mean_length, state.last_length)
    env_steps = (iteration + 1) * static.batch_size
    metrics = {
        "env_steps": env_steps.astype(jnp.float32),
        "episode_return": last_return,
        "episode_length": last_length,
        "episodes_finished": n_done,
        # 0 until two returns exist: a first return is no change
        "return_change": jnp.where(
            jnp.isnan(state.last_return), 0.0, last_return - state.last_return
        ),
        "nonfinite": jnp.sum(traj.nonfinite.astype(jnp.float32)),
        "diverged": diverged.astype(jnp.float32),
        "explained_variance": explained_variance(batch.value, batch.target),
        **policy_change_metrics(p.agent, params.actor, batch),
        **upd_metrics,
    }
    new_state = TrainState(
        params, algo_state, env_state, key, last_return, last_length, diverged, memory,
        state.pbt,
    )  # fmt: skip
    return new_state, metrics


def run_iterations(
    p: Pieces,
    progress: ProgressFn | None,
    state: TrainState,
    hp: HParams,
    lanes: jax.Array,
    start: jax.Array,
    *,
    length: int,
) -> tuple[TrainState, Metrics]:
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
    static = p.static
    # jitted so that the shapes below and the scan body share one trace of the
    # iteration (a jit's trace is cached by argument shapes); XLA inlines the call
    step = jax.jit(lanes_step(p, lanes.shape[0]))
    last = static.num_iterations - 1
    iterate = functools.partial(lanes_iteration, static, step, last)
    shapes = jax.eval_shape(iterate, state, hp, lanes, start)[1]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    # the host buffer holds the packed metrics, unpacked on the host: a buffer (and a
    # gather for the callback) per metric was two kernels each for XLA to compile
    packed_shapes = jax.eval_shape(pack_metrics, shapes)
    buf0 = jax.tree.map(lambda s: jnp.zeros((static.log_every, *s.shape), s.dtype), packed_shapes)
    masked = static.num_iterations % length != 0
    on_host = None if progress is None else functools.partial(unpacked_progress, progress, shapes)

    def body(carry, it):
        state, buf = carry
        if masked:
            state, metrics = jax.lax.cond(
                it <= last, lambda s: iterate(s, hp, lanes, it), lambda s: (s, zeros), state
            )
        else:
            state, metrics = iterate(state, hp, lanes, it)
        packed = pack_metrics(metrics)
        if on_host is not None:
            slot = it % static.log_every
            buf = jax.tree.map(lambda b, m: b.at[slot].set(m), buf, packed)
            flush = (slot == static.log_every - 1) | (it == last) | (it == start + length - 1)
            jax.lax.cond(
                flush & (it <= last),
                lambda: jax.debug.callback(on_host, *replicated((lanes, it, buf))),
                lambda: None,
            )
        return (state, buf), packed

    (state, _), packed = jax.lax.scan(body, (state, buf0), start + jnp.arange(length))
    return state, unpack_metrics(packed, shapes)


def lanes_step(p: Pieces, num_lanes: int) -> Callable[..., tuple[TrainState, Metrics]]:
    """`train_iteration` of `num_lanes` lanes: (state, hp) with a leading [R] axis and a
    scalar iteration -> (state, metrics [R]). A single lane (one seed, or one seed split
    over every device) skips the vmap, whose batching of every traced op costs a third of
    the tracing (brax hopper: 2.9-3.3 s against 5.4-5.5 s); its numbers are those of the same
    program vmapped over one lane up to float rounding (neither is a lane of a larger call
    bit for bit: XLA compiles each call size on its own)."""
    one = functools.partial(train_iteration, p)
    if num_lanes == 1:

        def single(state: TrainState, hp: HParams, it: jax.Array):
            first = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731
            return jax.tree.map(lambda x: x[None], one(first(state), first(hp), it))

        return single
    spmd = RUNS if env_shards() > 1 else None  # sharding constraints inside get "runs"
    return jax.vmap(one, in_axes=(0, 0, None), spmd_axis_name=spmd)


def lanes_iteration(
    static: StaticConfig,
    step: Callable[..., tuple[TrainState, Metrics]],
    last: int,
    state: TrainState,
    hp: HParams,
    lanes: jax.Array,
    it: jax.Array,
) -> tuple[TrainState, Metrics]:
    """One iteration of R lanes (`step`: `train_iteration` vmapped). Under PBT the lanes
    train with their carried hyperparameters, and every `interval` iterations (never
    after the last) the exploit-and-explore step runs across them (`vecpg.training.pbt`)."""
    spec = static.pbt
    if spec is None:
        return step(state, hp, it)
    pbt = state.pbt
    assert pbt is not None
    state, metrics = step(state, pbt.hparams, it)
    hp = pbt.hparams
    recent = record_return(pbt, metrics["episode_return"], metrics["episodes_finished"])
    state = dataclasses.replace(state, pbt=recent)
    due = ((it + 1) % spec.interval == 0) & (it < last)
    itself = jnp.arange(lanes.shape[0], dtype=jnp.int32)
    state, source = jax.lax.cond(
        due, lambda s: exploit_explore(spec, s, lanes, it), lambda s: (s, itself), state
    )
    return state, metrics | pbt_metrics(spec, hp, source, lanes)


def pack_metrics(metrics: Metrics) -> dict[str, jax.Array]:
    """The metric leaves [R] as one [R, M] array per dtype (other shapes as they are):
    the iterations scan then stacks a few arrays instead of one per metric, and every
    stacked output is a kernel of its own for XLA to compile."""
    groups: dict[str, list[jax.Array]] = {}
    out = {}
    for name in sorted(metrics):
        m = metrics[name]
        if m.ndim == 1:
            groups.setdefault(f"packed:{m.dtype}", []).append(m)
        else:
            out[name] = m
    return out | {key: jnp.stack(leaves, axis=-1) for key, leaves in groups.items()}


def metric_columns(packed: dict[str, Any], shapes: Metrics) -> dict[str, Any]:
    """`pack_metrics` outputs stacked over T iterations ([T, R, M]; jax or numpy arrays)
    -> the metric leaves, as stacked ([T, R, ...])."""
    index: dict[str, int] = {}
    out = {}
    for name in sorted(shapes):
        if shapes[name].ndim != 1:
            out[name] = packed[name]
            continue
        key = f"packed:{shapes[name].dtype}"
        k = index[key] = index.get(key, -1) + 1
        out[name] = packed[key][..., k]
    return out


def unpack_metrics(packed: dict[str, jax.Array], shapes: Metrics) -> Metrics:
    """`pack_metrics` outputs stacked over T iterations ([T, R, M]) -> the metric
    leaves, lanes first ([R, T, ...])."""
    return {k: jnp.moveaxis(v, 0, 1) for k, v in metric_columns(packed, shapes).items()}


def unpacked_progress(
    progress: ProgressFn, shapes: Metrics, lanes: Any, iteration: Any, buffer: dict[str, Any]
) -> None:
    """On the host: `progress` with the [log_every, R] buffer of each metric, taken from
    the packed buffer ([log_every, R, M] per dtype)."""
    columns = metric_columns({k: np.asarray(v) for k, v in buffer.items()}, shapes)
    progress(lanes, iteration, columns)


def replicated(tree: Any) -> Any:
    """`tree` gathered onto every device when a lanes mesh is set (`jax.set_mesh`): the
    host callback reads every lane, and an explicit gather spares XLA a warned-about
    fallback. Without a mesh, `tree` unchanged."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return tree
    return jax.lax.with_sharding_constraint(tree, jax.sharding.PartitionSpec())


class TrainFns(NamedTuple):
    """The pure functions of one static config; `execute` compiles them.

    init(key, hp) -> TrainState                          one lane (vmap it over [R])
    run(state, hp, lanes, start, *, length) -> (state, metrics [R, length])   R lanes
    """

    init: Callable[[jax.Array, HParams], TrainState]
    run: Callable[..., tuple[TrainState, Metrics]]

    def train(self, keys: jax.Array, hp: HParams, lanes: jax.Array, num_iterations: int):
        """The whole run of R lanes: keys [R] (typed PRNG keys), hp leaves [R], lane ids
        [R] -> (final state, metrics leaves [R, num_iterations])."""
        state = jax.vmap(self.init)(keys, hp)
        return self.run(state, hp, lanes, jnp.int32(0), length=num_iterations)


def make_train(static: StaticConfig, progress: ProgressFn | None = None) -> TrainFns:
    """Build the env, networks and algorithm of `static` once; bind them to pure,
    vmappable `init` and `run`. `progress` is the host callback (None: none)."""
    p = make_pieces(static)
    return TrainFns(
        init=functools.partial(init_train_state, p),
        run=functools.partial(run_iterations, p, progress),
    )
