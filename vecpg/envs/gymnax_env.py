"""Adapter for gymnax environments (classic control, MinAtar, bsuite, ...)."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from vecpg.envs.protocol import EnvSpec, EnvStep


@flax.struct.dataclass
class GymnaxState:
    env_state: Any
    key: jax.Array


class GymnaxEnv:
    """Wraps `gymnax.make(env_id)`, using `reset_env`/`step_env` so that gymnax's own
    auto-reset and time limit stay out of the way (vecpg's wrappers do both)."""

    def __init__(self, env_id: str):
        import gymnax
        from gymnax.environments import spaces

        self._env, self._params = gymnax.make(env_id)
        act = self._env.action_space(self._params)
        obs_space = self._env.observation_space(self._params)
        discrete = isinstance(act, spaces.Discrete)
        if discrete:
            num_actions, low, high = int(act.n), 0.0, 0.0
        else:
            num_actions = int(jnp.prod(jnp.array(act.shape))) if act.shape else 1
            low, high = float(jnp.min(act.low)), float(jnp.max(act.high))
        self.spec = EnvSpec(
            name=f"gymnax/{env_id}",
            obs_shape=tuple(int(d) for d in obs_space.shape),
            discrete=discrete,
            num_actions=num_actions,
            action_low=low,
            action_high=high,
            max_episode_steps=int(self._params.max_steps_in_episode),
        )
        self._action_shape = tuple(act.shape) if not discrete else ()

    def reset(self, key: jax.Array) -> EnvStep:
        key, sub = jax.random.split(key)
        obs, env_state = self._env.reset_env(sub, self._params)
        return EnvStep(
            state=GymnaxState(env_state, key),
            obs=jnp.asarray(obs, jnp.float32).reshape(self.spec.obs_shape),
            reward=jnp.float32(0.0),
            terminated=jnp.bool_(False),
        )

    def step(self, state: GymnaxState, action: jax.Array) -> EnvStep:
        key, sub = jax.random.split(state.key)
        if not self.spec.discrete:
            action = action.reshape(self._action_shape)
        obs, env_state, reward, terminated, _ = self._env.step_env(
            sub, state.env_state, action, self._params
        )
        return EnvStep(
            state=GymnaxState(env_state, key),
            obs=jnp.asarray(obs, jnp.float32).reshape(self.spec.obs_shape),
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            terminated=jnp.asarray(terminated, jnp.bool_).reshape(()),
        )
