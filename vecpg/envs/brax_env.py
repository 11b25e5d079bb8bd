"""Adapter for brax environments. The backend is a constructor argument."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from vecpg.envs.protocol import EnvSpec, EnvStep

BRAX_EPISODE_LENGTH = 1000


class BraxEnv:
    """Wraps a raw `brax.envs.get_environment(name, backend=...)` (no brax wrappers:
    vecpg applies its own time limit and auto-reset)."""

    render_suffix = ".html"  # what `render` writes

    def __init__(self, name: str, backend: str):
        from brax import envs

        self._env = envs.get_environment(name, backend=backend)
        # brax's `observation_size` runs a reset op by op: hundreds of tiny compiles, 9.2 s
        # for inverted_pendulum against 0.6 s for this trace (2026-12-01, 2-core AMD EPYC,
        # experiments/startup_costs.py).
        obs = jax.eval_shape(self._env.reset, jax.random.PRNGKey(0)).obs
        obs_shape = tuple(obs.shape)
        self.spec = EnvSpec(
            name=f"brax/{name}",
            obs_shape=obs_shape,
            discrete=False,
            num_actions=int(self._env.action_size),
            action_low=-1.0,
            action_high=1.0,
            max_episode_steps=BRAX_EPISODE_LENGTH,
        )
        self.backend = backend

    def reset(self, key: jax.Array) -> EnvStep:
        s = self._env.reset(key)
        return EnvStep(state=s, obs=s.obs, reward=jnp.float32(0.0), terminated=jnp.bool_(False))

    def step(self, state, action: jax.Array) -> EnvStep:
        s = self._env.step(state, action)
        return EnvStep(
            state=s,
            obs=s.obs,
            reward=jnp.asarray(s.reward, jnp.float32),
            terminated=s.done > 0.5,
        )

    def render(self, states: list, out: Path) -> None:
        """brax's interactive three.js viewer of `states` (one per step) as an HTML file."""
        from brax.io import html

        sys = self._env.sys.tree_replace({"opt.timestep": self._env.dt})
        out.write_text(html.render(sys, [s.pipeline_state for s in states]))
