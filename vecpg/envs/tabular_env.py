"""Adapter that exposes a finite MDP (vecpg.tabular) to the trainer, so the sampled
estimators can be checked against exact values. Observations are one-hot states."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from vecpg.envs.protocol import EnvSpec, EnvStep
from vecpg.tabular.exact import MDP


@flax.struct.dataclass
class TabularState:
    s: jax.Array  # [] int32 current state
    key: jax.Array


class TabularEnv:
    """Never terminates; the time limit `horizon` truncates (and bootstraps), so the
    trainer optimises the discounted objective J of the MDP when gamma = mdp.gamma."""

    def __init__(self, mdp: MDP, name: str, horizon: int = 100):
        self.mdp = mdp
        num_states, num_actions = mdp.r.shape
        self.spec = EnvSpec(name, (num_states,), True, num_actions, 0.0, 0.0, horizon)

    def _obs(self, s: jax.Array) -> jax.Array:
        return jax.nn.one_hot(s, self.spec.obs_shape[0], dtype=jnp.float32)

    def reset(self, key: jax.Array) -> EnvStep:
        key, sub = jax.random.split(key)
        s = jax.random.choice(sub, self.spec.obs_shape[0], p=self.mdp.p0).astype(jnp.int32)
        return EnvStep(TabularState(s, key), self._obs(s), jnp.float32(0.0), jnp.bool_(False))

    def step(self, state: TabularState, action: jax.Array) -> EnvStep:
        key, sub = jax.random.split(state.key)
        probs = self.mdp.P[state.s, action]
        s_next = jax.random.choice(sub, self.spec.obs_shape[0], p=probs).astype(jnp.int32)
        reward = self.mdp.r[state.s, action].astype(jnp.float32)
        return EnvStep(TabularState(s_next, key), self._obs(s_next), reward, jnp.bool_(False))
