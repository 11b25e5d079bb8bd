"""vecpg: advanced policy-gradient methods with the whole loop in one jitted JAX function."""

from vecpg import compile_cache, cores

cores.use_all_cores()  # before anything starts JAX
compile_cache.enable()

# ruff: noqa: E402

from vecpg.analysis import stats
from vecpg.config import HParams, StaticConfig, TrainConfig
from vecpg.errors import ConfigError
from vecpg.run.api import resume, sweep, train
from vecpg.run.distributed import Cluster, join
from vecpg.run.rundir import Results, SweepResults, load, load_policy, load_sweep
from vecpg.studies import StudySpec
from vecpg.studies.runner import run_study as study
from vecpg.training.execute import TrainingInterrupted
from vecpg.training.trainer import make_train
from vecpg.training.xla_options import program_options
from vecpg.tuning.pbt_search import PBTResults
from vecpg.tuning.run import SearchResults, load_search, resume_search, search

__all__ = [
    "Cluster",
    "ConfigError",
    "HParams",
    "Results",
    "StaticConfig",
    "SweepResults",
    "TrainConfig",
    "TrainingInterrupted",
    "join",
    "load",
    "load_policy",
    "load_search",
    "load_sweep",
    "make_train",
    "program_options",
    "PBTResults",
    "resume",
    "resume_search",
    "stats",
    "study",
    "StudySpec",
    "SearchResults",
    "search",
    "sweep",
    "train",
]
__version__ = "0.4.0"
