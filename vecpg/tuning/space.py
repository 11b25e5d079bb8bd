"""A hyperparameter search space over traced fields, and its samplers.

A dimension is written `name=log:LOW:HIGH` (log-uniform), `name=uniform:LOW:HIGH` or
`name=choice:A,B,C` (`--space` on the command line). Only traced fields
(`vecpg.config.HPARAM_FIELDS`) can be searched: every sampled config then runs as a lane
of one compiled program. Values are checked against the field's own bound.

Samplers map points of the unit cube [0, 1)^d to configs, one coordinate per dimension:
`random` draws them i.i.d. uniform (numpy's PCG64), `sobol` takes a scrambled Sobol
sequence (scipy's `qmc.Sobol`), which covers the cube more evenly for the same count.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np

from vecpg.config import HPARAM_FIELDS, TracedFields, bound_of
from vecpg.errors import ConfigError
from vecpg.run.launch import GRID_ALIASES

KINDS = ("log", "uniform", "choice")
SAMPLERS = ("random", "sobol")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched field: `kind` log | uniform (over [low, high]) or choice (`values`)."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    values: tuple[float, ...] = ()

    def at(self, u: np.ndarray) -> np.ndarray:
        """The values at unit-interval points u [n] (in [0, 1))."""
        if self.kind == "uniform":
            return self.low + u * (self.high - self.low)
        if self.kind == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            return np.exp(lo + u * (hi - lo))
        k = len(self.values)
        return np.asarray(self.values)[np.minimum((u * k).astype(int), k - 1)]

    def describe(self) -> str:
        """The `--space` spec, exact (`parse_dimension` reads it back)."""
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(repr(v) for v in self.values)}"
        return f"{self.name}={self.kind}:{self.low!r}:{self.high!r}"


def parse_space(items: Sequence[str]) -> tuple[Dimension, ...]:
    """['lr=log:1e-5:1e-2', 'max_kl=choice:0.005,0.01'] -> dimensions; one line per bad
    item, naming it and what is allowed."""
    dims: list[Dimension] = []
    for item in items:
        dim = parse_dimension(item)
        if any(d.name == dim.name for d in dims):
            raise ConfigError(f"invalid space {item!r}: {dim.name} is given twice")
        dims.append(dim)
    if not dims:
        raise ConfigError(
            "invalid space: give at least one --space name=log:LOW:HIGH, "
            "name=uniform:LOW:HIGH or name=choice:A,B,..."
        )
    return tuple(dims)


def parse_dimension(item: str) -> Dimension:
    where = f"invalid space {item!r}"
    name, sep, rest = item.partition("=")
    name = GRID_ALIASES.get(name.strip().replace("-", "_"), name.strip().replace("-", "_"))
    kind, _, spec = rest.partition(":")
    if not sep or kind not in KINDS or not spec:
        raise ConfigError(
            f"{where}: expected name=log:LOW:HIGH, name=uniform:LOW:HIGH or name=choice:A,B,..."
        )
    if name not in HPARAM_FIELDS:
        from vecpg.config import STATIC_FIELDS
        from vecpg.envs.registry import closest

        if name in STATIC_FIELDS:
            why = f"{name} shapes the compiled program; search it with one search per value"
        else:
            close = closest(name, HPARAM_FIELDS)
            why = f"no field {name}" + (f" (did you mean {' or '.join(close)}?)" if close else "")
        raise ConfigError(
            f"{where}: only traced hyperparameters can be searched in one program "
            f"({', '.join(HPARAM_FIELDS)}); {why}"
        )
    parts = spec.split(",") if kind == "choice" else spec.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{where}: {spec!r} must be numbers") from None
    for v in numbers:
        _check_value(name, v, where)
    if kind == "choice":
        if len(set(numbers)) != len(numbers):
            raise ConfigError(f"{where}: the choices must be distinct")
        return Dimension(name, kind, values=tuple(numbers))
    if len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise ConfigError(f"{where}: {kind} needs LOW:HIGH with LOW < HIGH")
    if kind == "log" and numbers[0] <= 0:
        raise ConfigError(f"{where}: log needs LOW > 0")
    return Dimension(name, kind, numbers[0], numbers[1])


def _check_value(name: str, value: float, where: str) -> None:
    field = next(f for f in dataclasses.fields(TracedFields) if f.name == name)
    try:
        bound_of(field).check(name, value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def unit_points(n: int, d: int, sampler: str, seed: int) -> np.ndarray:
    """[n, d] points of [0, 1)^d: i.i.d. uniform (`random`) or a scrambled Sobol
    sequence (`sobol`; its balance properties hold for n a power of 2)."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"invalid sampler={sampler!r}: allowed: {', '.join(SAMPLERS)}")
    if sampler == "random":
        return np.random.default_rng(seed).random((n, d))
    from scipy.stats import qmc

    with warnings.catch_warnings():  # n not a power of 2: scipy warns, the points stand
        warnings.simplefilter("ignore", UserWarning)
        return qmc.Sobol(d, scramble=True, seed=seed).random(n)


def sample(
    space: Sequence[Dimension], n: int, sampler: str = "random", seed: int = 0
) -> list[dict[str, float]]:
    """n configs (field -> value) from `space`."""
    u = unit_points(n, len(space), sampler, seed)
    columns = [dim.at(u[:, j]) for j, dim in enumerate(space)]
    return [{dim.name: float(col[i]) for dim, col in zip(space, columns, strict=True)}
            for i in range(n)]  # fmt: skip
