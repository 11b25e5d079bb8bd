"""Environments: a functional protocol, brax, gymnax, Playground and tabular adapters,
in-graph wrappers."""

from vecpg.envs.protocol import Env, EnvSpec, EnvStep
from vecpg.envs.registry import env_names, make_env, make_env_for, split_env_name
from vecpg.envs.wrappers import EpisodeState, EpisodeStep, reset_episode, step_episode

__all__ = [
    "Env",
    "EnvSpec",
    "EnvStep",
    "EpisodeState",
    "EpisodeStep",
    "env_names",
    "make_env",
    "make_env_for",
    "reset_episode",
    "split_env_name",
    "step_episode",
]
