"""A study's declaration and its resolution into cells.

A study is algorithms x envs x seeds. Each (algo, env) cell is one vecpg run dir (a train
run, or a sweep when the study has a grid). A cell's `TrainConfig` is built in layers,
each later one winning:

    TrainConfig.for_algo(algo)       the algorithm's own defaults
    preset                            --preset (vecpg.studies.presets)
    [settings]                        every cell
    [algo.<algo>]                     every cell of one algorithm
    [env."<env>"]                     every cell of one env
    [cell.<algo>."<env>"]             one cell
    command-line flags                given explicitly (--total-steps ...)

Every layer may set any TrainConfig field except `algo` and `env` (the study's axes).
Bad input is one line that names the table and key (`invalid algo.trpo.max_kl=-1: must
be a finite number > 0`), raised as `ConfigError` before anything compiles or is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vecpg.config import HPARAM_FIELDS, TrainConfig
from vecpg.errors import ConfigError

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
AXES = ("algo", "env")  # set by the study's cells, never by a layer
BASE = TrainConfig()
TOP_KEYS = (
    "algos",
    "envs",
    "seeds",
    "grid",
    "preset",
    "checkpoint_every",
    "score_range",
    "settings",
    "algo",
    "env",
    "cell",
)
GRID_ALIASES = {"lr": "learning_rate"}

Layer = Mapping[str, Any]


def cell_dirname(env: str) -> str:
    """'gymnax/CartPole-v1' -> 'gymnax-CartPole-v1' (a cell dir is cells/<algo>/<this>)."""
    return env.replace("/", "-")


def check_value(where: str, key: str, value: Any) -> Any:
    """One layer's `key = value`, type-checked against TrainConfig's field (bounds are
    checked when the cell's config is built). TOML ints become floats where the field
    is a float, and lists become tuples (`hidden`)."""
    if key in AXES:
        raise ConfigError(
            f"invalid {where}.{key}: a study sets {key} per cell; list it in {key}s = [...]"
        )
    if key not in FIELDS:
        close = difflib.get_close_matches(key, list(FIELDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"invalid {where}.{key}: unknown setting{hint}; allowed: TrainConfig fields "
            "(`vecpg train --help`)"
        )
    default = getattr(BASE, key)
    bad = f"invalid {where}.{key}={value!r}: "
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(bad + "must be true or false")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(bad + "must be an integer")
    elif isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(bad + "must be a number")
        return float(value)
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(bad + "must be a list of integers")
        return tuple(value)
    elif not isinstance(value, str):
        raise ConfigError(bad + "must be a string")
    return value


def check_layer(where: str, layer: Any) -> dict[str, Any]:
    if not isinstance(layer, Mapping):
        raise ConfigError(f"invalid {where}={layer!r}: must be a table of TrainConfig settings")
    return {k: check_value(where, k, v) for k, v in layer.items()}


def parse_grid(items: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """['lr=3e-4,1e-3'] -> {'learning_rate': (3e-4, 1e-3)}; one line for a bad item
    (`vecpg sweep`'s parser, then the study's checks)."""
    from vecpg.run.launch import parse_grid_args

    return check_grid(parse_grid_args(items))


def check_grid(grid: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    out = {}
    for name, values in grid.items():
        name = GRID_ALIASES.get(name, name)
        if name not in HPARAM_FIELDS:
            raise ConfigError(
                f"invalid grid.{name}: only traced hyperparameters can be swept in one "
                f"call; allowed: {', '.join(HPARAM_FIELDS)}"
            )
        ok = isinstance(values, (list, tuple)) and len(values) > 0
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not ok or len(set(values)) != len(values):
            raise ConfigError(f"invalid grid.{name}={values!r}: must be distinct numbers")
        out[name] = tuple(float(v) for v in values)
    return out


def parse_score_ranges(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    """['gymnax/CartPole-v1=0,500'] -> {'gymnax/CartPole-v1': (0.0, 500.0)}."""
    out = {}
    for item in items:
        env, sep, rng = item.rpartition("=")
        parts = rng.split(",")
        try:
            low, high = (float(p) for p in parts) if sep and len(parts) == 2 else (0.0, 0.0)
        except ValueError:
            low, high = 0.0, 0.0
        if not high > low:
            raise ConfigError(
                f"invalid score_range={item!r}: expected ENV=low,high with high > low"
            )
        out[env] = (low, high)
    return out


def names_list(key: str, value: Any) -> tuple[str, ...]:
    """algos/envs: a list of distinct names (or 'a,b' from the command line)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"invalid {key}={value!r}: must be a non-empty list of names")
    if not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise ConfigError(f"invalid {key}={value!r}: must be distinct names")
    return tuple(value)


def positive_int(key: str, value: Any, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"invalid {key}={value!r}: must be an integer >= {low}")
    return value


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """What the user declared (TOML and/or flags), before resolution into cells."""

    algos: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: int = 8
    settings: Layer = dataclasses.field(default_factory=dict)
    algo: Mapping[str, Layer] = dataclasses.field(default_factory=dict)
    env: Mapping[str, Layer] = dataclasses.field(default_factory=dict)
    cell: Mapping[str, Mapping[str, Layer]] = dataclasses.field(default_factory=dict)
    flags: Layer = dataclasses.field(default_factory=dict)  # command line: wins over all
    grid: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    preset: str | None = None
    checkpoint_every: int = 100
    score_ranges: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names_list("algos", self.algos)
        names_list("envs", self.envs)
        positive_int("seeds", self.seeds)
        positive_int("checkpoint_every", self.checkpoint_every, 0)
        for a in self.algos:
            try:
                TrainConfig.for_algo(a)
            except ConfigError as e:
                raise ConfigError(f"invalid algos entry {a!r}: {reason(e)}") from None
        for env in self.envs:
            try:
                TrainConfig(env=env)
            except ConfigError as e:
                raise ConfigError(f"invalid envs entry {env!r}: {reason(e)}") from None
        check_layer("settings", self.settings)
        check_layer("command line", self.flags)
        for a, layer in self.algo.items():
            self._known("algo", a, self.algos, "algos")
            check_layer(f"algo.{a}", layer)
        for env, layer in self.env.items():
            self._known("env", env, self.envs, "envs")
            check_layer(f'env."{env}"', layer)
        for a, per_env in self.cell.items():
            self._known("cell", a, self.algos, "algos")
            if not isinstance(per_env, Mapping):
                raise ConfigError(f'invalid cell.{a}: must hold tables [cell.{a}."<env>"]')
            for env, layer in per_env.items():
                self._known(f"cell.{a}", env, self.envs, "envs")
                check_layer(f'cell.{a}."{env}"', layer)
        if self.preset is not None:
            from vecpg.studies.presets import check_preset

            check_preset(self.preset, self.envs)

    @staticmethod
    def _known(table: str, name: str, names: tuple[str, ...], key: str) -> None:
        if name not in names:
            raise ConfigError(f"invalid {table}.{name}: {name!r} is not in {key} = {list(names)}")

    def layers(self, algo: str, env: str) -> list[tuple[str, Layer]]:
        """(where, settings) from the lowest precedence to the highest."""
        from vecpg.studies.presets import preset_settings

        preset = preset_settings(self.preset, algo, env) if self.preset else {}
        return [
            (f"preset {self.preset}", preset),
            ("settings", check_layer("settings", self.settings)),
            (f"algo.{algo}", check_layer(f"algo.{algo}", self.algo.get(algo, {}))),
            (f'env."{env}"', check_layer(f'env."{env}"', self.env.get(env, {}))),
            (f'cell.{algo}."{env}"', check_layer("cell", self.cell.get(algo, {}).get(env, {}))),
            ("command line", check_layer("command line", self.flags)),
        ]

    def resolve(self) -> Study:
        """Every cell's validated config (one line for the first bad one), sorted by
        (algo, env)."""
        cells = []
        for algo in sorted(self.algos):
            for env in sorted(self.envs):
                values: dict[str, Any] = {}
                where: dict[str, str] = {}
                for name, layer in self.layers(algo, env):
                    values.update(layer)
                    where.update(dict.fromkeys(layer, name))
                config = build(algo, env, values, where)
                for name, grid_values in self.grid.items():
                    for v in grid_values:
                        try:
                            TrainConfig.from_dict({**config.to_dict(), name: v})
                        except ConfigError as e:
                            raise ConfigError(f"invalid grid.{name}={v!r}: {reason(e)}") from None
                cells.append(Cell(algo, env, config))
        return Study(
            tuple(cells),
            self.seeds,
            dict(self.grid),
            self.checkpoint_every,
            dict(self.score_ranges),
        )


def reason(e: ConfigError) -> str:
    """'invalid x=1: must be ...' -> 'must be ...'."""
    return str(e).split(": ", 1)[-1]


def build(algo: str, env: str, values: dict[str, Any], where: dict[str, str]) -> TrainConfig:
    """TrainConfig.for_algo(algo, env=env, **values); a bad value's one line names the
    layer it came from (a value of the defaults: the cell)."""
    try:
        return TrainConfig.for_algo(algo, env=env, **values)
    except ConfigError as e:
        text = str(e)
        m = re.match(r"invalid (\w+)(=.*)", text)
        cell = f"(cell {algo} on {env})"
        if m and m.group(1) in where:
            field, src = m.group(1), where[m.group(1)]
            name = "--" + field.replace("_", "-") if src == "command line" else f"{src}.{field}"
            raise ConfigError(f"invalid {name}{m.group(2)} {cell}") from None
        raise ConfigError(f"{text} {cell}") from None


@dataclasses.dataclass(frozen=True)
class Cell:
    algo: str
    env: str
    config: TrainConfig

    @property
    def key(self) -> str:
        return f"{self.algo}/{self.env}"

    @property
    def dir(self) -> str:
        """Relative to the study dir."""
        return f"cells/{self.algo}/{cell_dirname(self.env)}"

    def changed(self) -> dict[str, Any]:
        """The config fields that differ from TrainConfig's defaults, plus algo and env."""
        d = self.config.to_dict()
        base = BASE.to_dict()
        return {k: v for k, v in d.items() if k in AXES or v != base[k]}


@dataclasses.dataclass(frozen=True)
class Study:
    """The resolved study: what study.json records, and all a run or a resume needs."""

    cells: tuple[Cell, ...]
    seeds: int
    grid: Mapping[str, tuple[float, ...]]
    checkpoint_every: int
    score_ranges: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def shard(self, index: int, count: int) -> list[Cell]:
        """Cell k of the sorted cell list belongs to shard k % count."""
        return [c for k, c in enumerate(self.cells) if k % count == index]

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "checkpoint_every": self.checkpoint_every,
            "score_ranges": {k: list(v) for k, v in self.score_ranges.items()},
            "cells": [
                {"algo": c.algo, "env": c.env, "dir": c.dir, "config": c.config.to_dict()}
                for c in self.cells
            ],
        }

    def runs_equal(self, other: Study) -> bool:
        """Same cells, seeds, grid and checkpointing (score ranges only change the report)."""
        a, b = self.to_json(), other.to_json()
        a.pop("score_ranges"), b.pop("score_ranges")
        return a == b

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Study:
        cells = tuple(
            Cell(c["algo"], c["env"], TrainConfig.from_dict(c["config"])) for c in d["cells"]
        )
        grid = {k: tuple(v) for k, v in d.get("grid", {}).items()}
        ranges = {k: (float(v[0]), float(v[1])) for k, v in d.get("score_ranges", {}).items()}
        return cls(cells, int(d["seeds"]), grid, int(d["checkpoint_every"]), ranges)


def spec_from_toml(path: str | Path, **overrides: Any) -> StudySpec:
    """Read a study TOML file (see README, "Studies"); one line for a bad key or value.
    `overrides` (StudySpec fields: the command line's) win over the file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"invalid config={str(p)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid config={str(p)!r}: cannot read it ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid config={str(p)!r}: not TOML ({e})") from None
    return spec_from_dict(data, **overrides)


def spec_from_dict(data: Mapping[str, Any], **overrides: Any) -> StudySpec:
    """A StudySpec from a TOML-shaped dict; `overrides` (StudySpec fields) win."""
    for key in data:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(key, TOP_KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"invalid {key}: unknown study key{hint}; allowed: {', '.join(TOP_KEYS)}"
            )
    kw: dict[str, Any] = {}
    for key in ("algos", "envs"):
        if key in data:
            kw[key] = names_list(key, data[key])
    for key in ("seeds", "checkpoint_every", "preset"):
        if key in data:
            kw[key] = data[key]
    if "preset" in kw and not isinstance(kw["preset"], str):
        raise ConfigError(f"invalid preset={kw['preset']!r}: must be a preset name")
    for key in ("settings", "algo", "env", "cell"):
        if key in data:
            if not isinstance(data[key], Mapping):
                raise ConfigError(f"invalid {key}={data[key]!r}: must be a table")
            kw[key] = data[key]
    if "grid" in data:
        if not isinstance(data["grid"], Mapping):
            raise ConfigError(f"invalid grid={data['grid']!r}: must be a table name = [values]")
        kw["grid"] = check_grid(data["grid"])
    if "score_range" in data:
        sr = data["score_range"]
        if not isinstance(sr, Mapping):
            raise ConfigError(f'invalid score_range={sr!r}: must be a table "ENV" = [low, high]')
        items = []
        for env, v in sr.items():
            ok = isinstance(v, list) and len(v) == 2
            items.append(f"{env}={v[0]},{v[1]}" if ok else f"{env}={v!r}")
        kw["score_ranges"] = parse_score_ranges(items)
    if "score_ranges" in kw and "score_ranges" in overrides:  # merged, the override's win
        merged = {**kw["score_ranges"], **overrides["score_ranges"]}
        overrides = {**overrides, "score_ranges": merged}
    kw.update(overrides)
    for key in ("algos", "envs"):
        if key not in kw:
            raise ConfigError(f"invalid {key}: missing; give --{key} a,b or {key} = [...] in TOML")
        kw[key] = names_list(key, kw[key])
    return StudySpec(**kw)


def show_config(study: Study) -> str:
    """Every cell's resolved config as TOML tables: the fields that differ from
    TrainConfig's defaults (algo and env always)."""
    out = []
    for c in study.cells:
        out.append(f'[cell.{c.algo}."{c.env}"]')
        for k, v in c.changed().items():
            out.append(f"{k} = {toml_value(v)}")
        out.append("")
    if study.grid:
        out.append("[grid]")
        out += [f"{k} = {toml_value(list(v))}" for k, v in study.grid.items()]
        out.append("")
    return "\n".join(out)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)
