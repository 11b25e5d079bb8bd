"""In-graph episode handling for one environment (vmap outside): time limit kept apart
from termination, auto-reset, episode statistics and a guard against non-finite output."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.envs.protocol import Env, EnvStep


@flax.struct.dataclass
class EpisodeState:
    """Running state of one env. obs: [*obs_shape]; the rest are scalars."""

    env_state: Any
    obs: jax.Array
    t: jax.Array  # steps taken in the current episode
    ep_return: jax.Array  # undiscounted, unscaled reward so far
    key: jax.Array  # for resets


@flax.struct.dataclass
class EpisodeStep:
    """What one step produced. next_obs is the true s_{t+1}, before any reset."""

    state: EpisodeState
    next_obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    finished_return: jax.Array  # the episode's return if it ended here, else 0
    finished_length: jax.Array  # its length if it ended here, else 0
    nonfinite: jax.Array  # the env returned a NaN/inf obs or reward here


def keep_mask(obs_shape: tuple[int, ...], indices: tuple[int, ...]) -> np.ndarray:
    """[*obs_shape] float32: 0 at the flattened `indices`, 1 elsewhere."""
    keep = np.ones(int(np.prod(obs_shape)), np.float32)
    keep[list(indices)] = 0.0
    return keep.reshape(obs_shape)


class MaskedObs:
    """An env whose observation entries `indices` (into the flattened observation) always
    read zero: a partially observed version of it (`--mask-obs`). Same spec."""

    def __init__(self, env: Env, indices: tuple[int, ...]):
        self.inner = env
        self.spec = env.spec
        self.indices = indices
        self._keep = keep_mask(env.spec.obs_shape, indices)

    def _masked(self, ts: EnvStep) -> EnvStep:
        return EnvStep(ts.state, ts.obs * jnp.asarray(self._keep, ts.obs.dtype), ts.reward,
                       ts.terminated)  # fmt: skip

    def reset(self, key: jax.Array) -> EnvStep:
        return self._masked(self.inner.reset(key))

    def step(self, state: Any, action: jax.Array) -> EnvStep:
        return self._masked(self.inner.step(state, action))

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy or unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def reset_episode(env: Env, key: jax.Array) -> EpisodeState:
    key, sub = jax.random.split(key)
    ts = env.reset(sub)
    zero = jnp.float32(0.0)
    return EpisodeState(ts.state, ts.obs, jnp.int32(0), zero, key)


def unstarted_episodes(env: Env, key: jax.Array, num_envs: int) -> EpisodeState:
    """[num_envs] placeholders (zeros, t = -1: pending) that the first rollout's first
    step begins at its fresh starts (`begin_pending`): the env's reset, often its biggest
    program piece (a MuJoCo reset runs a full forward pass), is then compiled once, in the
    rollout, and not again in the program that initialises a run."""
    shapes = jax.eval_shape(jax.vmap(env.reset), jax.random.split(key, num_envs))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return EpisodeState(
        env_state=zeros.state,
        obs=zeros.obs,
        t=jnp.full((num_envs,), -1, jnp.int32),
        ep_return=jnp.zeros((num_envs,), jnp.float32),
        key=jax.random.split(key, num_envs),
    )


def begin_pending(state: EpisodeState, fresh: EnvStep) -> EpisodeState:
    """One env (vmap outside): if it is pending (t < 0: never started, or its episode
    ended at its previous step), it begins at `fresh`; else it is as it was.

    A rollout calls this before every step, so one select of the env's state serves both
    the auto-reset and a run's first start: selecting at the end of the step, plus once
    more for the first start, was twice the kernels (one per leaf: 61 on brax hopper)."""
    new = state.t < 0
    pick = lambda a, b: jnp.where(new, a, b)  # noqa: E731
    return EpisodeState(
        env_state=jax.tree.map(pick, fresh.state, state.env_state),
        obs=pick(fresh.obs, state.obs),
        t=jnp.maximum(state.t, 0),
        ep_return=state.ep_return,
        key=state.key,
    )


def fresh_starts(env: Env, key: jax.Array, num_envs: int) -> EnvStep:
    """[num_envs] freshly sampled initial states, for `begin_pending`."""
    return jax.vmap(env.reset)(jax.random.split(key, num_envs))


def step_episode(
    env: Env, state: EpisodeState, action: jax.Array, *, defer_reset: bool = False
) -> EpisodeStep:
    """Step; if the episode ended (terminated, truncated or non-finite), reset.

    A non-finite obs or reward is replaced by zeros and the step is treated as terminal:
    nothing is bootstrapped from it, and it is counted in `nonfinite`.

    With `defer_reset`, an ended env is left pending (t = -1) instead, for the rollout's
    next step to begin at its fresh start (`begin_pending`: the rollout samples one per
    env per rollout, since an env's reset costs as much as a step in brax, and under vmap
    a reset computed only where needed would still run everywhere). Else a reset is
    sampled here.
    """
    ts = env.step(state.env_state, action)
    nonfinite = ~(jnp.all(jnp.isfinite(ts.obs)) & jnp.isfinite(ts.reward))
    next_obs = jnp.where(nonfinite, jnp.zeros_like(ts.obs), ts.obs)
    reward = jnp.where(nonfinite, 0.0, ts.reward)
    terminated = ts.terminated | nonfinite
    t = state.t + 1
    truncated = (t >= env.spec.max_episode_steps) & ~terminated
    done = terminated | truncated
    ep_return = state.ep_return + reward

    pick = lambda new, old: jnp.where(done, new, old)  # noqa: E731
    if defer_reset:
        env_state, obs, key, t_next = ts.state, next_obs, state.key, pick(jnp.int32(-1), t)
    else:
        key, sub = jax.random.split(state.key)
        fresh = env.reset(sub)
        env_state = jax.tree.map(pick, fresh.state, ts.state)
        obs, t_next = pick(fresh.obs, next_obs), pick(jnp.int32(0), t)
    new_state = EpisodeState(
        env_state=env_state,
        obs=obs,
        t=t_next,
        ep_return=pick(jnp.float32(0.0), ep_return),
        key=key,
    )
    return EpisodeStep(
        state=new_state,
        next_obs=next_obs,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        finished_return=jnp.where(done, ep_return, 0.0),
        finished_length=jnp.where(done, t, 0),
        nonfinite=nonfinite,
    )
