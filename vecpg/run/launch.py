"""What a launch is made of, checked before anything compiles: the seeds, the grid
points, chunking and checkpointing. Saved as run.json, so `--resume` rebuilds the same
job from the run dir alone."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, cast

from vecpg.config import HPARAM_FIELDS, HParams, StaticConfig, TrainConfig
from vecpg.errors import ConfigError

KINDS = ("train", "sweep")
GRID_ALIASES = {"lr": "learning_rate"}


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """8 -> [0..7]; a list of distinct non-negative ints is kept as given."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1 or a list of ints")
        return list(range(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1 or a list of ints")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"invalid seeds={seeds!r}: must be distinct integers in [0, 2**32)")
    out = list(seeds)
    if not out or len(set(out)) != len(out) or min(out) < 0 or max(out) >= 2**32:
        raise ConfigError(f"invalid seeds={seeds!r}: must be distinct integers in [0, 2**32)")
    return out


def check_max_runs(max_runs_per_call: int | None) -> None:
    if max_runs_per_call is not None and (
        not isinstance(max_runs_per_call, int) or max_runs_per_call < 1
    ):
        raise ConfigError(
            f"invalid max_runs_per_call={max_runs_per_call!r}: must be an integer >= 1 or None"
        )


def check_checkpoint_every(every: int, has_dir: bool) -> None:
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ConfigError(f"invalid checkpoint_every={every!r}: must be an integer >= 0 (0: off)")
    if every and not has_dir:
        raise ConfigError("invalid checkpoint_every: checkpoints need a run_dir (--out)")


def expand_grid(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """{'lr': [a, b], 'gamma': [c]} -> [{'lr': a, 'gamma': c}, {'lr': b, 'gamma': c}]."""
    for name, values in grid.items():
        if name not in HPARAM_FIELDS:
            raise ConfigError(
                f"invalid grid field {name!r}: only traced hyperparameters can be swept in one "
                f"call ({', '.join(HPARAM_FIELDS)}); run separate sweeps for shape/code fields"
            )
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise ConfigError(f"invalid grid values for {name!r}: must be a list of numbers")
        if len(values) == 0 or len(set(values)) != len(values):
            raise ConfigError(f"invalid grid values for {name!r}: must be non-empty and distinct")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"invalid grid values for {name!r}: must be numbers, got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def parse_grid_args(items: Sequence[str]) -> dict[str, list[float]]:
    """['lr=3e-4,1e-3', 'max-kl=0.01'] -> {'learning_rate': [...], 'max_kl': [0.01]}."""
    grid: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        name = GRID_ALIASES.get(name, name)
        if not sep or not values:
            raise ConfigError(f"invalid grid {item!r}: expected name=v1,v2,...")
        if name in grid:
            raise ConfigError(f"invalid grid {item!r}: {name} is given twice; list all values once")
        try:
            grid[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"invalid grid {item!r}: values must be numbers") from None
    return grid


def point_name(point: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in point.items())


@dataclasses.dataclass(frozen=True)
class Launch:
    """One job: every grid point x every seed (a train run is the one point {})."""

    kind: str
    seeds: list[int]
    points: list[dict[str, float]]
    max_runs_per_call: int | None = None
    checkpoint_every: int = 0
    num_processes: int = 1  # JAX processes that ran it (resume needs as many)
    pbt: dict[str, Any] | None = None  # population-based training (`vecpg.training.pbt`)

    def static(self, base: TrainConfig) -> StaticConfig:
        """The compiled program's static config: `base`'s, with PBT's spec when set (its
        populations: the seeds; its members: the points)."""
        static = base.static()
        if self.pbt is None:
            return static
        from vecpg.training.pbt import pbt_spec

        spec = pbt_spec(self.pbt, populations=len(self.seeds), size=len(self.points))
        return dataclasses.replace(static, pbt=spec)

    def configs(self, base: TrainConfig) -> list[TrainConfig]:
        """The config of every grid point (each one validated)."""
        return [dataclasses.replace(base, **cast(dict[str, Any], p)) for p in self.points]

    def lanes(self, base: TrainConfig) -> tuple[list[int], list[HParams]]:
        """Per lane (point-major, then seed): its seed and its hyperparameters."""
        configs = self.configs(base)
        seeds = [s for _ in configs for s in self.seeds]
        return seeds, [c.hparams() for c in configs for _ in self.seeds]

    def lane_names(self) -> list[str]:
        if self.kind == "train":
            return [f"seed{s}" for s in self.seeds]
        return [f"{point_name(p)}-seed{s}" for p in self.points for s in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Launch:
        """Also reads run.json of runs made before `kind` and `points` were recorded."""
        return cls(
            kind=d.get("kind", "train"),
            seeds=list(d["seeds"]),
            points=list(d.get("points", [{}])),
            max_runs_per_call=d.get("max_runs_per_call"),
            checkpoint_every=d.get("checkpoint_every", 0),
            num_processes=d.get("num_processes", 1),
            pbt=d.get("pbt"),
        )
