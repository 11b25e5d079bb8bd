"""Environments: a functional protocol, brax and gymnax adapters, in-graph wrappers."""

from vecpg.envs.protocol import Env, EnvSpec, EnvStep
from vecpg.envs.registry import env_names, make_env, split_env_name
from vecpg.envs.wrappers import EpisodeState, EpisodeStep, reset_episode, step_episode

__all__ = [
    "Env",
    "EnvSpec",
    "EnvStep",
    "EpisodeState",
    "EpisodeStep",
    "env_names",
    "make_env",
    "reset_episode",
    "split_env_name",
    "step_episode",
]
