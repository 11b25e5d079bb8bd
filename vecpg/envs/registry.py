"""Env names (`brax/<name>`, `gymnax/<id>`) and construction."""

from __future__ import annotations

import functools

from vecpg.envs.protocol import Env

# Known without importing brax/gymnax (fast validation, no compilation).
BRAX_ENVS = (
    "ant",
    "fast",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)
GYMNAX_ENVS = (
    "CartPole-v1",
    "Acrobot-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "Reacher-misc",
    "Swimmer-misc",
)
TABULAR_ENVS = ("gridworld",)  # 4x4 gridworld of vecpg.tabular, gamma 0.9, 100 steps
_SOURCES = {"brax": BRAX_ENVS, "gymnax": GYMNAX_ENVS, "tabular": TABULAR_ENVS}


def env_names() -> list[str]:
    return [f"{src}/{n}" for src, names in _SOURCES.items() for n in names]


def split_env_name(name: str) -> tuple[str, str]:
    """'brax/hopper' -> ('brax', 'hopper'); KeyError if unknown."""
    src, _, env_id = name.partition("/")
    if src not in _SOURCES or env_id not in _SOURCES[src]:
        raise KeyError(name)
    return src, env_id


@functools.cache
def make_env(name: str, backend: str = "generalized") -> Env:
    """Build the adapter for `name`. Cached: brax system loading takes seconds."""
    src, env_id = split_env_name(name)
    if src == "tabular":
        from vecpg.envs.tabular_env import TabularEnv
        from vecpg.tabular.exact import gridworld

        return TabularEnv(gridworld(4, gamma=0.9), name)
    if src == "brax":
        from vecpg.envs.brax_env import BraxEnv

        return BraxEnv(env_id, backend)
    from vecpg.envs.gymnax_env import GymnaxEnv

    return GymnaxEnv(env_id)
