"""Collect a [T, B] batch by a `lax.scan` over steps of the vmapped env."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from vecpg.envs.protocol import Env, EnvStep
from vecpg.envs.wrappers import EpisodeState, begin_pending, fresh_starts, step_episode
from vecpg.models.networks import Agent, AgentParams, env_action, policy_step


class Transition(NamedTuple):
    """Leaves are [T, B, ...] after the scan (time-major)."""

    obs: jax.Array  # raw s_t
    action: jax.Array  # unclipped a_t
    log_prob: jax.Array  # log pi_old(a_t | s_t)
    reward: jax.Array  # raw r_t
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array  # raw true s_{t+1} (before reset)
    finished_return: jax.Array
    finished_length: jax.Array
    nonfinite: jax.Array
    reset: jax.Array | None = None  # s_t starts an episode (recurrent agents only)


def actor_step(
    env: Env,
    agent: Agent,
    params: AgentParams,
    env_state: EpisodeState,
    carry: Any,
    key: jax.Array,
    fresh: EnvStep,
    *,
    normalize_obs: bool,
) -> tuple[tuple[EpisodeState, Any], Transition]:
    """One step of B envs: begin pending envs at `fresh` [B], sample a ~ pi(.|s), step
    (an ended env is left pending). env_state: [B]; carry: the actor core's state [B, H]
    (None: feed-forward), reset to zeros where an episode starts (t == 0) before it
    reads s_t."""
    env_state = jax.vmap(begin_pending)(env_state, fresh)
    reset = env_state.t == 0
    carry, dist = policy_step(
        agent, params, carry, env_state.obs, reset, normalize_obs=normalize_obs
    )
    action = agent.dist.sample(key, dist)
    log_prob = agent.dist.log_prob(dist, action)
    step = functools.partial(step_episode, defer_reset=True)
    out = jax.vmap(step, in_axes=(None, 0, 0))(env, env_state, env_action(agent, action))
    return (out.state, carry), Transition(
        obs=env_state.obs,
        action=action,
        log_prob=log_prob,
        reward=out.reward,
        terminated=out.terminated,
        truncated=out.truncated,
        next_obs=out.next_obs,
        finished_return=out.finished_return,
        finished_length=out.finished_length,
        nonfinite=out.nonfinite,
        reset=reset if agent.recurrent else None,
    )


def rollout(
    env: Env,
    agent: Agent,
    params: AgentParams,
    env_state: EpisodeState,
    key: jax.Array,
    *,
    num_steps: int,
    normalize_obs: bool,
    carry: Any = None,
) -> tuple[EpisodeState, Any, Transition]:
    """num_steps actor steps -> (final env state [B], final actor core state [B, H] (None
    for a feed-forward agent), Transition [T, B]). `carry`: the core's state at the
    start. Envs that end during the rollout restart from initial states sampled once for
    this rollout, at their next step; so do envs still pending from the last rollout or
    never started (`unstarted_episodes`)."""
    k_reset, k_steps = jax.random.split(key)
    fresh = fresh_starts(env, k_reset, env_state.t.shape[0])

    def body(loop, k):
        state, c = loop
        return actor_step(env, agent, params, state, c, k, fresh, normalize_obs=normalize_obs)

    keys = jax.random.split(k_steps, num_steps)
    (env_state, carry), traj = jax.lax.scan(body, (env_state, carry), keys)
    return env_state, carry, traj


def finished_episode_stats(traj: Transition) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(count, mean return, mean length) of episodes that ended in this batch. Episodes
    cut short by the non-finite guard are left out: their return is not the policy's."""
    ended = (traj.terminated | traj.truncated) & ~traj.nonfinite
    count = jnp.sum(ended.astype(jnp.float32))
    denom = jnp.maximum(count, 1.0)
    return (
        count,
        jnp.sum(jnp.where(ended, traj.finished_return, 0.0)) / denom,
        jnp.sum(jnp.where(ended, traj.finished_length, 0).astype(jnp.float32)) / denom,
    )
