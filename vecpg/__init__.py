"""vecpg: advanced policy-gradient methods with the whole loop in one jitted JAX function."""

from vecpg.api import Results, load, load_policy, train
from vecpg.config import ConfigError, HParams, StaticConfig, TrainConfig
from vecpg.sweep import SweepResults, sweep

__all__ = [
    "ConfigError",
    "HParams",
    "Results",
    "StaticConfig",
    "SweepResults",
    "TrainConfig",
    "load",
    "load_policy",
    "sweep",
    "train",
]
__version__ = "0.1.0"
