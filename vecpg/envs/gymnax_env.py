"""Adapter for gymnax environments (classic control, MinAtar, bsuite, ...)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

from vecpg.envs.protocol import EnvSpec, EnvStep
from vecpg.errors import ConfigError

# Drawn by gymnax through gymnasium's renderer (pygame); MinAtar, bsuite etc. need only matplotlib.
CLASSIC_CONTROL = (
    "Acrobot-v1",
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
)


@flax.struct.dataclass
class GymnaxState:
    env_state: Any
    key: jax.Array


# Imported by gymnax's env modules for their renderers only (pong: seaborn, with scipy.stats
# and pandas; catch and others: pyplot): `import gymnax` took 2.0-2.2 s with them, 0.3 s
# without (2026-12-01, 2-core AMD EPYC, experiments/startup_costs.py).
RENDER_ONLY_MODULES = ("seaborn", "matplotlib.pyplot")


class LoadedOnFirstUse(types.ModuleType):
    """Stands in sys.modules for a module until one of its attributes is read; then the
    real module is imported (replacing this one there) and answers. The stdlib's
    LazyLoader would not do: the import statement itself reads `__spec__` and loads it."""

    def __getattr__(self, attr: str) -> Any:  # called only for what the stand-in lacks
        with _STAND_IN_LOCK:
            _remove_stand_in(self)
            return getattr(importlib.import_module(self.__name__), attr)


_STAND_IN_LOCK = threading.Lock()


def _remove_stand_in(stand_in: types.ModuleType) -> None:
    """Out of sys.modules and its parent package, where it still stands."""
    name = stand_in.__name__
    if sys.modules.get(name) is stand_in:
        del sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and getattr(sys.modules[parent], child, None) is stand_in:
        delattr(sys.modules[parent], child)


def import_gymnax() -> Any:
    """`import gymnax`, with RENDER_ONLY_MODULES (those not imported yet) imported on
    their first use instead. The stand-ins live on in gymnax's modules only: any later
    import of those modules gets the real ones."""
    stand_ins = []
    for name in RENDER_ONLY_MODULES:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue  # gymnax's own import then fails as it would have
        stand_in = LoadedOnFirstUse(name)
        stand_in.__spec__ = spec
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)
        stand_ins.append(stand_in)
    try:
        import gymnax
    finally:
        with _STAND_IN_LOCK:
            for stand_in in stand_ins:
                _remove_stand_in(stand_in)
    return gymnax


class GymnaxEnv:
    """Wraps `gymnax.make(env_id)`, using `reset_env`/`step_env` so that gymnax's own
    auto-reset and time limit stay out of the way (vecpg's wrappers do both)."""

    render_suffix = ".gif"  # what `render` writes

    def __init__(self, env_id: str):
        gymnax = import_gymnax()
        from gymnax.environments import spaces

        self._env, self._params = gymnax.make(env_id)
        act = self._env.action_space(self._params)
        obs_space = self._env.observation_space(self._params)
        discrete = isinstance(act, spaces.Discrete)
        if discrete:
            num_actions, low, high = int(act.n), 0.0, 0.0
        else:
            num_actions = int(np.prod(act.shape)) if act.shape else 1  # numpy: no compiles
            low, high = float(np.min(np.asarray(act.low))), float(np.max(np.asarray(act.high)))
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
        self._step_draws = step_reads_key(self._env, self._params)

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
        # a deterministic step (CartPole's) is given its key unsplit: a split nobody reads
        # is still compiled, and in the rollout's body (a threefry loop, 9 kernels)
        key, sub = jax.random.split(state.key) if self._step_draws else (state.key, state.key)
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

    def check_render(self) -> None:
        """One line if this env cannot be drawn here (before any episode is compiled)."""
        if self._env.name in CLASSIC_CONTROL and importlib.util.find_spec("pygame") is None:
            raise ConfigError(
                f"invalid env={self.spec.name!r}: gymnax draws classic control through "
                "gymnasium + pygame, which is not installed (pip install 'vecpg[render]')"
            )

    def render(self, states: list[GymnaxState], out: Path) -> None:
        """A GIF of `states` (one per step) drawn by gymnax's visualizer."""
        from gymnax.visualize import Visualizer

        from vecpg.analysis.plots import pyplot

        pyplot()  # headless backend
        self.check_render()
        try:
            Visualizer(self._env, self._params, [s.env_state for s in states]).animate(str(out))
        except Exception as e:  # gymnax draws classic control through gymnasium + pygame
            reason = f"{type(e).__name__}: {e}".splitlines()[0]
            raise ConfigError(
                f"invalid env={self.spec.name!r}: gymnax cannot draw it ({reason})"
            ) from None


def step_reads_key(env: Any, params: Any) -> bool:
    """Whether gymnax's `env.step_env` reads its key (draws random numbers), from its
    jaxpr at the env's reset state."""
    key = jax.random.key(0)
    _, state = jax.eval_shape(env.reset_env, key, params)
    action = jax.eval_shape(env.action_space(params).sample, key)
    closed = jax.make_jaxpr(lambda k, s, a: env.step_env(k, s, a, params))(key, state, action)
    jaxpr = closed.jaxpr
    key_var = jaxpr.invars[0]
    used = {v for eqn in jaxpr.eqns for v in eqn.invars if isinstance(v, jax.extend.core.Var)}
    return key_var in used or key_var in jaxpr.outvars
