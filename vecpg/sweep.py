"""Hyperparameter sweeps: grid x seeds as ONE compiled call (runs axis sharded over
devices). Only traced hyperparameters can be swept in one call; fields that change
shapes or code (env, algo, num_envs, hidden, ...) are refused with a clear message:
run one sweep per value of those.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vecpg.api import FINAL_FRACTION, check_max_runs, check_out_dir, seed_list
from vecpg.config import HPARAM_FIELDS, ConfigError, TrainConfig
from vecpg.execute import run_lanes
from vecpg.stats import mean_ci95
from vecpg.tracking import WandbOptions


def expand_grid(grid: dict[str, Sequence[float]]) -> list[dict[str, float]]:
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


ALIASES = {"lr": "learning_rate"}


def parse_grid_args(items: Sequence[str]) -> dict[str, list[float]]:
    """['lr=3e-4,1e-3', 'max-kl=0.01'] -> {'learning_rate': [...], 'max_kl': [0.01]}."""
    grid: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        name = ALIASES.get(name, name)
        if not sep or not values:
            raise ConfigError(f"invalid grid {item!r}: expected name=v1,v2,...")
        try:
            grid[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"invalid grid {item!r}: values must be numbers") from None
    return grid


@dataclasses.dataclass
class SweepResults:
    """metrics leaves are [grid, seeds, iterations]."""

    base: TrainConfig
    points: list[dict[str, float]]
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    compile_s: float
    run_s: float
    num_devices: int
    num_calls: int

    def final_returns(self) -> np.ndarray:
        """[grid, seeds] mean episode_return over the last 10% of iterations."""
        r = self.metrics["episode_return"]
        k = max(1, int(round(r.shape[-1] * FINAL_FRACTION)))
        return r[..., -k:].mean(axis=-1)

    def ranking(self) -> list[dict]:
        """Grid points ranked by IQM of final return, with 95% stratified-bootstrap CIs."""
        from vecpg.stats import iqm, stratified_bootstrap_ci

        rows = []
        for point, final in zip(self.points, self.final_returns(), strict=True):
            lo, hi = stratified_bootstrap_ci(final[:, None], iqm)
            mean, _, _ = mean_ci95(final)
            rows.append(
                {**point, "iqm": float(iqm(final[:, None])), "iqm_ci95": [lo, hi], "mean": mean}
            )
        return sorted(rows, key=lambda r: -r["iqm"])

    def save(self, run_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        run_dir = Path(run_dir)
        check_out_dir(run_dir, overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(self.base.to_dict(), indent=2))
        (run_dir / "grid.json").write_text(json.dumps(self.points, indent=2))
        np.savez(run_dir / "metrics.npz", seeds=np.array(self.seeds), **self.metrics)
        ranking = self.ranking()
        (run_dir / "summary.json").write_text(
            json.dumps(
                {
                    "ranking": ranking,
                    "seeds": self.seeds,
                    "compile_s": self.compile_s,
                    "run_s": self.run_s,
                    "num_devices": self.num_devices,
                    "num_calls": self.num_calls,
                },
                indent=2,
            )
        )
        (run_dir / "ranking.md").write_text(ranking_markdown(ranking))
        from vecpg.plots import plot_ranking

        title = f"{self.base.algo} on {self.base.env}, {len(self.seeds)} seeds"
        plot_ranking(ranking, run_dir / "ranking.png", title)
        return run_dir


def ranking_markdown(ranking: list[dict]) -> str:
    names = [k for k in ranking[0] if k not in ("iqm", "iqm_ci95", "mean")]
    head = "| rank | " + " | ".join(names) + " | IQM final return | 95% CI |"
    lines = [head, "|" + "---|" * (len(names) + 3)]
    for i, r in enumerate(ranking, 1):
        vals = " | ".join(f"{r[n]:g}" for n in names)
        lo, hi = r["iqm_ci95"]
        lines.append(f"| {i} | {vals} | {r['iqm']:.2f} | {lo:.2f} .. {hi:.2f} |")
    return "\n".join(lines) + "\n"


def point_name(point: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in point.items())


def sweep(
    config: TrainConfig,
    grid: dict[str, Sequence[float]],
    seeds: int | Sequence[int] = 4,
    max_runs_per_call: int | None = None,
    progress: bool = False,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    wandb: WandbOptions | None = None,
) -> SweepResults:
    """Train every grid point x every seed in one compiled program (chunked only when
    `max_runs_per_call` is set; results are identical either way). With `out`, the sweep
    is saved there; `wandb` logs one W&B run per (grid point, seed) plus one aggregate
    run per grid point, grouped under the sweep dir's name."""
    points = expand_grid(grid)
    seeds = seed_list(seeds)
    check_max_runs(max_runs_per_call)
    configs = [dataclasses.replace(config, **p) for p in points]  # validates each point
    if out is not None:
        check_out_dir(Path(out), overwrite)
    logger = None
    if wandb is not None and wandb.mode != "disabled":
        from vecpg.tracking import Lane, WandbLogger

        lanes = [
            Lane(f"{point_name(p)}-seed{s}", {**c.to_dict(), "seed": s}, i)
            for i, (p, c) in enumerate(zip(points, configs, strict=True))
            for s in seeds
        ]
        where = Path(out) if out is not None else Path(".")
        logger = WandbLogger(wandb, lanes, where, where.name if out else "sweep")
    lane_seeds = [s for _ in configs for s in seeds]
    lane_hp = [c.hparams() for c in configs for _ in seeds]
    try:
        run = run_lanes(
            config.static(),
            lane_seeds,
            lane_hp,
            max_runs_per_call,
            progress,
            config.num_iterations * config.batch_size,
            sinks=[logger] if logger else [],
        )
    except BaseException:
        if logger:
            logger.finish(None, [])
        raise
    shape = (len(points), len(seeds))
    metrics = {k: v.reshape(*shape, *v.shape[1:]) for k, v in run.metrics.items()}
    res = SweepResults(
        config, points, seeds, metrics, run.compile_s, run.run_s, run.num_devices, run.num_calls
    )
    if out is not None:
        res.save(out, overwrite=True)
    if logger:
        png = Path(out) / "ranking.png" if out is not None else None
        final = res.final_returns().reshape(-1)
        logger.finish(png, [{"final_return": float(r)} for r in final])
    return res
