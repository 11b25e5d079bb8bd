"""vecpg: advanced policy-gradient methods with the whole loop in one jitted JAX function."""

from vecpg.api import Results, load, load_policy, train
from vecpg.config import ConfigError, HParams, StaticConfig, TrainConfig

__all__ = [
    "ConfigError",
    "HParams",
    "Results",
    "StaticConfig",
    "TrainConfig",
    "load",
    "load_policy",
    "train",
]
__version__ = "0.1.0"
