"""The run-dir format: `Results` and `SweepResults` with their save and load, and
policies rebuilt from a run dir (file handling: `vecpg.run.files`).

A train run dir holds config.json, run.json (how it was launched), spec.json,
metrics.npz ([seeds, iterations] per metric), params.msgpack (flax, leading [seeds]
axis), curves.png and summary.json. A sweep dir holds config.json, run.json, grid.json,
metrics.npz ([points, seeds, iterations]), ranking.md, ranking.png and summary.json.
summary.json is always written last: its presence marks a finished run.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.analysis.stats import iqm, mean_ci95, stratified_bootstrap_ci
from vecpg.config import TrainConfig
from vecpg.envs.protocol import EnvSpec
from vecpg.envs.registry import parse_indices
from vecpg.envs.wrappers import keep_mask
from vecpg.errors import ConfigError
from vecpg.models.networks import (
    Agent,
    AgentParams,
    Memory,
    env_action,
    init_agent_params,
    init_memory,
    make_agent_for,
    policy_step,
)
from vecpg.run.files import (
    CONFIG_FILE,
    SUMMARY_FILE,
    bad_run_dir,
    check_run_dir,
    dumps,
    read_json,
    save_dir,
)

FINAL_FRACTION = 0.1  # final return = mean episode_return over the last 10% of iterations
DIVERGED_SCORING = (
    "a diverged seed scores the lowest final return of any seed of its own config (its own "
    "last finite value included); a config whose seeds all diverged has no score (null), "
    "is reported as diverged and ranks below every config with a score"
)
NO_EPISODE = "a seed none of whose episodes finished has no score (null) and is left out"


def final_returns(episode_return: np.ndarray) -> np.ndarray:
    """[..., iterations] -> [...] mean over the last FINAL_FRACTION of iterations of the
    iterations that have a return (NaN before a lane's first finished episode); NaN when
    none has."""
    k = max(1, int(round(episode_return.shape[-1] * FINAL_FRACTION)))
    window = episode_return[..., -k:].astype(np.float64)
    valid = ~np.isnan(window)
    count = valid.sum(axis=-1)
    total = np.where(valid, window, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def diverged_at(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """[..., iterations] metrics -> [...] the first iteration at which each lane's
    params, loss or gradients were non-finite, -1 where never (run dirs made before the
    `diverged` metric existed: -1 everywhere)."""
    flag = metrics.get("diverged")
    if flag is None:
        return np.full(metrics["episode_return"].shape[:-1], -1)
    first = np.argmax(flag > 0, axis=-1)
    return np.where(flag[..., -1] > 0, first, -1)


def scored_final_returns(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Final returns [..., seeds] (metrics [..., seeds, iterations]; the seeds of one
    config share the last axis) scored so that no diverged seed can help its config:

    - a diverged seed scores the lowest finite final return of its own config's seeds,
      its own last finite value included (never another config's: a config's score does
      not depend on what else is in the sweep);
    - a config whose seeds all diverged has no score: every seed is NaN;
    - a seed without any finished episode is NaN (no score) as well.

    Every statistic in `vecpg.analysis.stats` leaves NaN out."""
    final = final_returns(metrics["episode_return"])
    diverged = diverged_at(metrics) >= 0
    with np.errstate(invalid="ignore"):
        floor = np.min(np.where(np.isfinite(final), final, np.inf), axis=-1, keepdims=True)
    floor = np.where(np.isinf(floor), np.nan, floor)
    scored = np.where(diverged, floor, final)
    all_diverged = diverged.all(axis=-1, keepdims=True)
    return np.where(all_diverged, np.nan, scored)


# Fields added after runs were first saved, with the value those runs' programs were
# compiled with: a resumed or evaluated old run keeps its numerics.
LEGACY_FIELDS = {
    "cpu_fast_math": False,
    "gpu_autotune": True,
    "cpu_opt_level": 2,
    "cpu_fusion_emitters": True,
    "memory": "none",
    "memory_size": 128,
    "mask_obs": "",
}


def read_config(run_dir: Path) -> TrainConfig:
    """The run's TrainConfig; fields its config.json predates take `LEGACY_FIELDS`."""
    d = read_json(run_dir, CONFIG_FILE)
    try:
        if not isinstance(d, dict):
            raise ConfigError("not a JSON object")
        return TrainConfig.from_dict({**LEGACY_FIELDS, **d})
    except (ConfigError, TypeError) as e:
        raise bad_run_dir(run_dir, f"{CONFIG_FILE} is invalid ({e})") from None


def write_metrics(path: Path, seeds: Sequence[int], metrics: dict[str, np.ndarray]) -> None:
    arrays: dict[str, Any] = {"seeds": np.array(seeds), **metrics}
    np.savez(path, **arrays)


def read_metrics(path: Path) -> tuple[list[int], dict[str, np.ndarray]]:
    """(seeds, metrics) from metrics.npz, never unpickling; one line if it is corrupt."""
    try:
        with np.load(path, allow_pickle=False) as z:
            metrics = {k: z[k] for k in z.files if k != "seeds"}
            seeds = [int(s) for s in z["seeds"]]
    except FileNotFoundError:
        raise bad_run_dir(path.parent, f"{path.name} is missing") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise bad_run_dir(path.parent, f"{path.name} is corrupt or truncated") from None
    return seeds, metrics


@dataclasses.dataclass
class Results:
    """Output of `vecpg.train`. metrics leaves are [seeds, iterations] numpy arrays."""

    config: TrainConfig
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    params: AgentParams  # leaves with a leading [seeds] axis
    spec: EnvSpec
    compile_s: float = float("nan")
    run_s: float = float("nan")
    num_devices: int = 1
    iterations_run: int | None = None  # iterations timed by run_s (all, unless resumed)
    devices_per_lane: int = 1  # devices sharing one seed's envs (data parallelism)
    figure = "curves.png"  # the picture W&B's aggregate run gets

    def final_returns(self) -> np.ndarray:
        """[seeds] mean episode_return over the last 10% of iterations, scored by
        `scored_final_returns`: a diverged seed scores the lowest of this run's seeds,
        and NaN (no score) when every seed diverged or a seed finished no episode."""
        return scored_final_returns(self.metrics)

    def diverged(self) -> dict[int, int]:
        """{seed: first diverged iteration} of the seeds that diverged."""
        at = diverged_at(self.metrics)
        return {s: int(i) for s, i in zip(self.seeds, at, strict=True) if i >= 0}

    def all_diverged(self) -> bool:
        """Every seed diverged: the run has no score and never ranks above anything."""
        return len(self.diverged()) == len(self.seeds)

    def summary(self) -> dict[str, Any]:
        final, diverged = self.final_returns(), self.diverged()
        mean, lo, hi = mean_ci95(final)
        iterations = self.iterations_run or self.config.num_iterations
        steps = iterations * self.config.batch_size * len(self.seeds)
        no_score = [s for s, r in zip(self.seeds, final, strict=True) if np.isnan(r)]
        return {
            "env": self.config.env,
            "algo": self.config.algo,
            "seeds": self.seeds,
            "final_return_mean": float(mean),
            "final_return_ci95": [float(lo), float(hi)],
            "final_return_ci95_method": "percentile bootstrap of the mean over seeds",
            "final_return_per_seed": [float(x) for x in final],
            "all_diverged": self.all_diverged(),
            "seeds_without_score": [] if self.all_diverged() else no_score,
            "env_steps_per_seed": int(self.metrics["env_steps"][0, -1]),
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "env_steps_per_s": float(steps / self.run_s) if self.run_s > 0 else None,
            "iterations_timed": iterations,
            "num_devices": self.num_devices,
            "devices_per_lane": self.devices_per_lane,
            "nonfinite_total": int(self.metrics["nonfinite"].sum()),
            "diverged_seeds": sorted(diverged),
            "diverged_at_iteration": {str(s): i for s, i in diverged.items()},
            "diverged_scoring": DIVERGED_SCORING,
            "no_score": NO_EPISODE,
        }

    def save(
        self, run_dir: str | os.PathLike, overwrite: bool = False, in_place: bool = False
    ) -> Path:
        """Write the train run-dir files (see the module docstring) atomically."""
        return save_dir(Path(run_dir), self._write, overwrite=overwrite, in_place=in_place)

    def _write(self, d: Path) -> None:
        from vecpg.analysis.plots import plot_curves

        (d / CONFIG_FILE).write_text(dumps(self.config.to_dict()))
        (d / "spec.json").write_text(dumps(self.spec.to_json()))
        write_metrics(d / "metrics.npz", self.seeds, self.metrics)
        (d / "params.msgpack").write_bytes(flax.serialization.to_bytes(self.params))
        title = f"{self.config.algo} on {self.config.env}"
        plot_curves(self.metrics, d / "curves.png", title=title)
        (d / SUMMARY_FILE).write_text(dumps(self.summary()))


def check_metrics_match(
    run_dir: Path, config: TrainConfig, seeds: list[int], metrics: dict[str, np.ndarray]
) -> None:
    """One line unless metrics.npz is what config.json's run writes: episode_return
    [..., seeds, iterations] with env_steps ending at iterations x batch."""
    ret, steps = metrics.get("episode_return"), metrics.get("env_steps")
    if ret is None or steps is None or ret.ndim < 2 or ret.shape[-2] != len(seeds):
        raise bad_run_dir(run_dir, "metrics.npz lacks episode_return/env_steps per seed")
    want = (config.num_iterations, config.num_iterations * config.batch_size)
    got = (ret.shape[-1], int(np.ravel(steps[..., -1])[0]))
    if got != want:
        raise bad_run_dir(
            run_dir,
            f"config.json implies {want[0]} iterations of {config.batch_size} steps but "
            f"metrics.npz holds {got[0]} ending at {got[1]} steps: config.json was edited",
        )


def _params_template(config: TrainConfig, spec: EnvSpec, num_seeds: int) -> AgentParams:
    agent = make_agent_for(spec, config)
    # shapes only: running the initialisers op by op cost about a second per load
    one = jax.eval_shape(lambda key: init_agent_params(agent, key), jax.random.key(0))
    return jax.tree.map(lambda x: np.zeros((num_seeds, *x.shape), x.dtype), one)


def load(run_dir: str | os.PathLike) -> Results:
    """Read a train run directory written by `Results.save`."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, "train")
    config = read_config(run_dir)
    try:
        spec = EnvSpec.from_json(read_json(run_dir, "spec.json"))
    except (KeyError, TypeError, ValueError):
        raise bad_run_dir(run_dir, "spec.json is invalid") from None
    seeds, metrics = read_metrics(run_dir / "metrics.npz")
    if spec.name != config.env:
        raise bad_run_dir(
            run_dir,
            f"config.json names env {config.env!r} but the run trained on {spec.name!r} "
            "(spec.json): config.json was edited",
        )
    check_metrics_match(run_dir, config, seeds, metrics)
    summary = read_json(run_dir, SUMMARY_FILE)
    try:
        raw = (run_dir / "params.msgpack").read_bytes()
        params = flax.serialization.from_bytes(_params_template(config, spec, len(seeds)), raw)
    except FileNotFoundError:
        raise bad_run_dir(run_dir, "params.msgpack is missing") from None
    except Exception:  # msgpack and flax raise many types on truncated or foreign bytes
        raise bad_run_dir(run_dir, "params.msgpack is corrupt or truncated") from None
    return Results(
        config, seeds, metrics, params, spec, summary.get("compile_s"), summary.get("run_s")
    )


@dataclasses.dataclass
class SweepResults:
    """Output of `vecpg.sweep`. metrics leaves are [grid points, seeds, iterations]."""

    base: TrainConfig
    points: list[dict[str, float]]
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    compile_s: float
    run_s: float
    num_devices: int
    num_calls: int
    devices_per_lane: int = 1
    figure = "ranking.png"

    def final_returns(self) -> np.ndarray:
        """[grid, seeds] mean episode_return over the last 10% of iterations, scored per
        grid point by `scored_final_returns` (a diverged seed scores the lowest of its own
        point's seeds; NaN: no score)."""
        return scored_final_returns(self.metrics)

    def ranking(self) -> list[dict]:
        """Grid points ranked by IQM of final return, with 95% stratified-bootstrap CIs.
        Points whose seeds all diverged have no score (IQM null) and rank last;
        `diverged_seeds` lists each point's."""
        rows = []
        at = diverged_at(self.metrics)
        for point, final, first in zip(self.points, self.final_returns(), at, strict=True):
            lo, hi = stratified_bootstrap_ci(final[:, None], iqm)
            mean, _, _ = mean_ci95(final)
            diverged = [s for s, i in zip(self.seeds, first, strict=True) if i >= 0]
            rows.append(
                {
                    **point,
                    "iqm": float(iqm(final[:, None])),
                    "iqm_ci95": [lo, hi],
                    "mean": mean,
                    "diverged_seeds": diverged,
                    "all_diverged": len(diverged) == len(self.seeds),
                }
            )
        return sorted(rows, key=rank_key)

    def summary(self) -> dict[str, Any]:
        return {
            "ranking": self.ranking(),
            "seeds": self.seeds,
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "num_devices": self.num_devices,
            "devices_per_lane": self.devices_per_lane,
            "num_calls": self.num_calls,
            "diverged_scoring": DIVERGED_SCORING,
            "no_score": NO_EPISODE,
        }

    def save(
        self, run_dir: str | os.PathLike, overwrite: bool = False, in_place: bool = False
    ) -> Path:
        """Write the sweep-dir files (see the module docstring) atomically."""
        return save_dir(Path(run_dir), self._write, overwrite=overwrite, in_place=in_place)

    def _write(self, d: Path) -> None:
        from vecpg.analysis.plots import plot_ranking

        summary = self.summary()
        (d / CONFIG_FILE).write_text(dumps(self.base.to_dict()))
        (d / "grid.json").write_text(dumps(self.points))
        write_metrics(d / "metrics.npz", self.seeds, self.metrics)
        (d / "ranking.md").write_text(ranking_markdown(summary["ranking"], len(self.seeds)))
        title = f"{self.base.algo} on {self.base.env}, {len(self.seeds)} seeds"
        plot_ranking(summary["ranking"], d / "ranking.png", title)
        (d / SUMMARY_FILE).write_text(dumps(summary))


def load_sweep(run_dir: str | os.PathLike) -> SweepResults:
    """Read a sweep directory written by `SweepResults.save`."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, "sweep")
    seeds, metrics = read_metrics(run_dir / "metrics.npz")
    summary = read_json(run_dir, SUMMARY_FILE)
    points = read_json(run_dir, "grid.json")
    config = read_config(run_dir)
    check_metrics_match(run_dir, config, seeds, metrics)
    return SweepResults(
        config,
        points,
        seeds,
        metrics,
        summary["compile_s"],
        summary["run_s"],
        summary["num_devices"],
        summary["num_calls"],
        summary.get("devices_per_lane", 1),
    )


def rank_key(row: dict) -> tuple[bool, bool, float]:
    """Best first: every scored row before any unscored one (all seeds diverged, or no
    finished episode), all-diverged rows last; then by IQM."""
    score = row["iqm"]
    scored = score is not None and np.isfinite(score)
    return (bool(row.get("all_diverged")), not scored, -score if scored else 0.0)


STAT_KEYS = ("iqm", "iqm_ci95", "mean", "diverged_seeds", "all_diverged")


def ranking_markdown(ranking: list[dict], num_seeds: int | None = None) -> str:
    """The ranking as a markdown table; a `diverged` column when any seed diverged."""
    names = grid_fields(ranking[0])
    any_diverged = any(r.get("diverged_seeds") for r in ranking)
    head = "| rank | " + " | ".join(names) + " | IQM final return | 95% CI |"
    head += " diverged |" if any_diverged else ""
    lines = [head, "|" + "---|" * (len(names) + 3 + any_diverged)]
    for i, r in enumerate(ranking, 1):
        vals = " | ".join(f"{r[n]:g}" for n in names)
        lo, hi = r["iqm_ci95"]
        if r.get("all_diverged"):
            line = f"| {i} | {vals} | diverged | - |"
        elif r["iqm"] is None or not np.isfinite(r["iqm"]):
            line = f"| {i} | {vals} | no score | - |"
        else:
            line = f"| {i} | {vals} | {r['iqm']:.2f} | {lo:.2f} .. {hi:.2f} |"
        if any_diverged:
            k = len(r.get("diverged_seeds", []))
            line += f" {k} of {num_seeds} seeds |" if num_seeds else f" {k} seeds |"
        lines.append(line)
    note = (
        "\nA diverged seed is scored as the lowest final return of its own config's seeds; "
        "a config whose seeds all diverged has no score and ranks last.\n"
    )
    return "\n".join(lines) + "\n" + (note if any_diverged else "")


def grid_fields(row: dict) -> list[str]:
    """The grid-point names of a ranking row (not its statistics)."""
    return [k for k in row if k not in STAT_KEYS]


class SavedPolicies(NamedTuple):
    """Every seed's policy of a train run dir, rebuilt: the one way vecpg does it."""

    results: Results
    agent: Agent
    params: AgentParams  # leaves [seeds, ...] (jax arrays)

    def of_seed(self, seed: int) -> AgentParams:
        """The params of trained seed `seed` (one line if the run has no such seed)."""
        seeds = self.results.seeds
        if seed not in seeds:
            raise ConfigError(f"invalid seed={seed!r}: this run has seeds {seeds}")
        return jax.tree.map(lambda x: x[seeds.index(seed)], self.params)


def load_policies(run_dir: str | os.PathLike) -> SavedPolicies:
    res = load(run_dir)
    agent = make_agent_for(res.spec, res.config)
    return SavedPolicies(res, agent, jax.tree.map(jnp.asarray, res.params))


class Policy:
    """A deterministic numpy policy: `policy(obs)` with obs [*obs_shape] or [N,
    *obs_shape] -> action (argmax or clipped mean), with the run's observation mask and
    normalisation applied. A recurrent policy (`--memory`) carries its core's state from
    call to call: `policy.reset()` starts new episodes (for every one of the N envs);
    a feed-forward policy's `reset` does nothing."""

    def __init__(self, saved: SavedPolicies, seed: int):
        self.spec, self.agent = saved.results.spec, saved.agent
        params = saved.of_seed(seed)
        c = saved.results.config
        mask = keep_mask(self.spec.obs_shape, parse_indices(c.mask_obs))  # as in training
        spec, agent = self.spec, self.agent

        @jax.jit
        def act(carry: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
            reset = jnp.zeros(obs.shape[: obs.ndim - len(spec.obs_shape)], bool)
            carry, d = policy_step(
                agent, params, carry, obs * mask, reset, normalize_obs=c.normalize_obs
            )
            return carry, env_action(agent, agent.dist.mode(d))

        self._act = act
        self._carry: Any = None  # the core's state, made at the first call after a reset

    def reset(self) -> None:
        """Forget the core's state: the next call starts new episodes."""
        self._carry = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        spec = self.spec
        try:
            x = np.asarray(obs, np.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid obs={obs!r:.60}: must be an array of numbers") from None
        if x.shape != spec.obs_shape and x.shape[1:] != spec.obs_shape:
            raise ConfigError(
                f"invalid obs of shape {x.shape}: this policy takes {spec.obs_shape} "
                f"or [N, *{spec.obs_shape}] observations ({spec.name})"
            )
        batch = x.shape[: x.ndim - len(spec.obs_shape)]
        recurrent = self.agent.recurrent
        if recurrent and self._carry is None:
            self._carry = cast(Memory, init_memory(self.agent, batch)).actor
        elif recurrent and jax.tree.leaves(self._carry)[0].shape[:-1] != batch:
            raise ConfigError(
                f"invalid obs of shape {x.shape}: this recurrent policy is carrying the "
                "state of another batch of envs; call policy.reset() first"
            )
        carry, action = self._act(self._carry, jnp.asarray(x))
        if recurrent:
            self._carry = carry
        return np.asarray(action)


def load_policy(run_dir: str | os.PathLike, seed: int = 0) -> Policy:
    """Seed `seed`'s deterministic numpy policy (`Policy`): `policy(obs) -> action`,
    `policy.reset()` between episodes of a recurrent policy."""
    return Policy(load_policies(run_dir), seed)
