"""The functional environment protocol every env source is adapted to.

An adapter is a small object with a static `spec` and two pure, vmappable functions:
`reset(key) -> EnvStep` and `step(state, action) -> EnvStep`. Randomness an env needs
while stepping lives inside its own state. `terminated` means a true terminal state;
time limits are applied by `vecpg.envs.wrappers`, never by the adapter.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import flax.struct
import jax


class EnvSpec(NamedTuple):
    """Static description of one environment instance."""

    name: str
    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int  # discrete: number of actions; continuous: action dimension
    action_low: float  # continuous bounds (scalar, shared by all dims); unused if discrete
    action_high: float
    max_episode_steps: int

    def to_json(self) -> dict:
        return {**self._asdict(), "obs_shape": list(self.obs_shape)}

    @classmethod
    def from_json(cls, d: dict) -> EnvSpec:
        return cls(**{**d, "obs_shape": tuple(d["obs_shape"])})


@flax.struct.dataclass
class EnvStep:
    """One env transition for a single (unbatched) environment.

    state: adapter-specific pytree; obs: [*obs_shape]; reward: []; terminated: [] bool.
    """

    state: Any
    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array


class Env(Protocol):
    spec: EnvSpec

    def reset(self, key: jax.Array) -> EnvStep: ...

    def step(self, state: Any, action: jax.Array) -> EnvStep: ...
