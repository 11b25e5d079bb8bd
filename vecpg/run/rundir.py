"""The run-dir format, in one place: file names, atomic writes, `Results` and
`SweepResults` with their save and load, and policies rebuilt from a run dir.

A train run dir holds config.json, run.json (how it was launched), spec.json,
metrics.npz ([seeds, iterations] per metric), params.msgpack (flax, leading [seeds]
axis), curves.png and summary.json. A sweep dir holds config.json, run.json, grid.json,
metrics.npz ([points, seeds, iterations]), ranking.md, ranking.png and summary.json.
summary.json is always written last: its presence marks a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.analysis.stats import iqm, mean_ci95, stratified_bootstrap_ci
from vecpg.config import TrainConfig
from vecpg.envs.protocol import EnvSpec
from vecpg.errors import ConfigError, RunFailed, disk_full, quoted
from vecpg.models.distributions import distribution
from vecpg.models.networks import Agent, AgentParams, init_agent_params, make_agent, policy_dist

MARKER = ".vecpg-run"  # in every dir vecpg writes: only such dirs are ever replaced
CONFIG_FILE = "config.json"
LAUNCH_FILE = "run.json"  # how the run was launched: seeds, grid, chunking
SUMMARY_FILE = "summary.json"
TRAIN_FILES = ("config.json", "spec.json", "metrics.npz", "params.msgpack", "curves.png")
SWEEP_FILES = ("config.json", "grid.json", "metrics.npz", "ranking.md", "ranking.png")
FINAL_FRACTION = 0.1  # final return = mean episode_return over the last 10% of iterations


def final_returns(episode_return: np.ndarray) -> np.ndarray:
    """[..., iterations] -> [...] mean over the last FINAL_FRACTION of iterations."""
    k = max(1, int(round(episode_return.shape[-1] * FINAL_FRACTION)))
    return episode_return[..., -k:].mean(axis=-1)


def json_safe(obj: Any) -> Any:
    """Non-finite floats become null (JSON has no Infinity or NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, allow_nan=False)


def write_json(path: Path, obj: Any) -> None:
    """Atomic: a temporary sibling, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(dumps(obj))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_failed(path, e) from None


def write_failed(path: Path, error: OSError) -> Exception:
    """The one-line error for a failed write: disk full, or where and why."""
    if disk_full(error):
        return RunFailed(f"disk full while writing {quoted(path)}")
    return RunFailed(f"cannot write {quoted(path)}: {error.strerror or error}")


def is_run_dir(path: Path) -> bool:
    """A dir vecpg wrote: its marker, or (runs from 0.1) config.json with run.json or
    summary.json beside it."""
    if (path / MARKER).exists():
        return True
    has = lambda name: (path / name).exists()  # noqa: E731
    return has(CONFIG_FILE) and (has(LAUNCH_FILE) or has(SUMMARY_FILE))


def check_out_dir(run_dir: Path, overwrite: bool) -> None:
    """One line unless `run_dir` is new, empty, or (with `overwrite`) a vecpg run dir
    that is not the current directory or above it. Touches nothing."""
    where = f"invalid out={str(run_dir)!r}"
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{where}: exists and is not a directory")
    for parent in run_dir.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{where}: {str(parent)!r} is a file, not a directory")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"{where}: directory exists and is not empty; pass --overwrite")
    here = Path.cwd().resolve()
    if run_dir.resolve() in (here, *here.parents, Path.home().resolve()):
        raise ConfigError(f"{where}: --overwrite never replaces the current directory or above")
    if not is_run_dir(run_dir):
        raise ConfigError(
            f"{where}: not a vecpg run dir (no {MARKER} marker); --overwrite only replaces "
            "vecpg runs, so nothing was touched"
        )


def make_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Replace (with `overwrite`, after check_out_dir) or create `run_dir`, marked as a
    vecpg run dir; one line if that cannot be written."""
    check_out_dir(run_dir, overwrite)
    try:
        if run_dir.exists() and overwrite:
            shutil.rmtree(run_dir)  # a vecpg run dir, replaced whole
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MARKER).write_text("a vecpg run directory\n")
    except OSError as e:
        reason = "disk full" if disk_full(e) else (e.strerror or str(e))
        raise ConfigError(f"invalid out={str(run_dir)!r}: cannot write there ({reason})") from None


def save_dir(run_dir: Path, names: Sequence[str], write: Callable[[Path], None], *,
             overwrite: bool = False, in_place: bool = False) -> Path:  # fmt: skip
    """Write `names` and then summary.json through `write(tmp_dir)`.

    New dir: everything goes to a temporary sibling that then replaces `run_dir`, so a
    failure never leaves a half-written run or destroys an earlier one. `in_place` (a
    prepared run dir holding checkpoints) instead replaces each file atomically,
    summary.json last.
    """
    if in_place:
        tmp = run_dir / ".final"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            write(tmp)
            for name in (*names, SUMMARY_FILE):
                os.replace(tmp / name, run_dir / name)
        except OSError as e:
            raise write_failed(run_dir, e) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return run_dir
    check_out_dir(run_dir, overwrite)
    tmp = run_dir.with_name(f".{run_dir.name}.new")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / MARKER).write_text("a vecpg run directory\n")
        write(tmp)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(tmp, run_dir)
    except OSError as e:
        raise write_failed(run_dir, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_dir


def bad_run_dir(run_dir: Path, reason: str) -> ConfigError:
    return ConfigError(f"invalid run_dir={str(run_dir)!r}: {reason}")


def read_json(run_dir: Path, name: str) -> Any:
    try:
        return json.loads((run_dir / name).read_text())
    except FileNotFoundError:
        raise bad_run_dir(run_dir, f"{name} is missing") from None
    except (OSError, ValueError):
        raise bad_run_dir(run_dir, f"{name} is corrupt (not readable JSON)") from None


def read_config(run_dir: Path) -> TrainConfig:
    d = read_json(run_dir, CONFIG_FILE)
    try:
        if not isinstance(d, dict):
            raise ConfigError("not a JSON object")
        return TrainConfig.from_dict(d)
    except (ConfigError, TypeError) as e:
        raise bad_run_dir(run_dir, f"{CONFIG_FILE} is invalid ({e})") from None


def check_run_dir(run_dir: Path, kind: str) -> None:
    """One line unless `run_dir` holds a finished run of `kind` ('train' or 'sweep')."""
    if not run_dir.exists():
        raise bad_run_dir(run_dir, "no such directory")
    if not run_dir.is_dir():
        raise bad_run_dir(run_dir, "is a file, not a run directory")
    if not (run_dir / CONFIG_FILE).exists():
        raise bad_run_dir(run_dir, "not a vecpg run dir (no config.json)")
    is_sweep = (run_dir / "grid.json").exists() or '"sweep"' in _launch_text(run_dir)
    if kind == "train" and is_sweep:
        raise bad_run_dir(run_dir, "is a sweep dir (vecpg.load_sweep reads it)")
    if kind == "sweep" and not is_sweep:
        raise bad_run_dir(run_dir, "is not a sweep dir")
    if not (run_dir / SUMMARY_FILE).exists():
        how = (
            f"; continue it with: vecpg {kind} --resume {quoted(run_dir)}"
            if (run_dir / LAUNCH_FILE).exists()
            else ""
        )
        raise bad_run_dir(run_dir, f"the run did not finish (no {SUMMARY_FILE}){how}")


def _launch_text(run_dir: Path) -> str:
    try:
        return (run_dir / LAUNCH_FILE).read_text()
    except OSError:
        return ""


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
    figure = "curves.png"  # the picture W&B's aggregate run gets

    def final_returns(self) -> np.ndarray:
        """[seeds] mean episode_return over the last 10% of iterations."""
        return final_returns(self.metrics["episode_return"])

    def summary(self) -> dict[str, Any]:
        final = self.final_returns()
        mean, lo, hi = mean_ci95(final)
        iterations = self.iterations_run or self.config.num_iterations
        steps = iterations * self.config.batch_size * len(self.seeds)
        return {
            "env": self.config.env,
            "algo": self.config.algo,
            "seeds": self.seeds,
            "final_return_mean": float(mean),
            "final_return_ci95": [float(lo), float(hi)],
            "final_return_per_seed": [float(x) for x in final],
            "env_steps_per_seed": int(self.metrics["env_steps"][0, -1]),
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "env_steps_per_s": float(steps / self.run_s) if self.run_s > 0 else None,
            "iterations_timed": iterations,
            "num_devices": self.num_devices,
            "nonfinite_total": int(self.metrics["nonfinite"].sum()),
        }

    def save(
        self, run_dir: str | os.PathLike, overwrite: bool = False, in_place: bool = False
    ) -> Path:
        """Write the train run-dir files (see the module docstring) atomically."""
        return save_dir(
            Path(run_dir), TRAIN_FILES, self._write, overwrite=overwrite, in_place=in_place
        )

    def _write(self, d: Path) -> None:
        from vecpg.analysis.plots import plot_curves

        (d / CONFIG_FILE).write_text(dumps(self.config.to_dict()))
        (d / "spec.json").write_text(dumps(self.spec.to_json()))
        write_metrics(d / "metrics.npz", self.seeds, self.metrics)
        (d / "params.msgpack").write_bytes(flax.serialization.to_bytes(self.params))
        title = f"{self.config.algo} on {self.config.env}"
        plot_curves(self.metrics, d / "curves.png", title=title)
        (d / SUMMARY_FILE).write_text(dumps(self.summary()))


def _params_template(config: TrainConfig, spec: EnvSpec, num_seeds: int) -> AgentParams:
    agent = make_agent(spec, config.hidden, config.activation)
    one = init_agent_params(agent, jax.random.key(0))
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
    figure = "ranking.png"

    def final_returns(self) -> np.ndarray:
        """[grid, seeds] mean episode_return over the last 10% of iterations."""
        return final_returns(self.metrics["episode_return"])

    def ranking(self) -> list[dict]:
        """Grid points ranked by IQM of final return, with 95% stratified-bootstrap CIs."""
        rows = []
        for point, final in zip(self.points, self.final_returns(), strict=True):
            lo, hi = stratified_bootstrap_ci(final[:, None], iqm)
            mean, _, _ = mean_ci95(final)
            rows.append(
                {**point, "iqm": float(iqm(final[:, None])), "iqm_ci95": [lo, hi], "mean": mean}
            )
        return sorted(rows, key=lambda r: -r["iqm"])

    def summary(self) -> dict[str, Any]:
        return {
            "ranking": self.ranking(),
            "seeds": self.seeds,
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "num_devices": self.num_devices,
            "num_calls": self.num_calls,
        }

    def save(
        self, run_dir: str | os.PathLike, overwrite: bool = False, in_place: bool = False
    ) -> Path:
        """Write the sweep-dir files (see the module docstring) atomically."""
        return save_dir(
            Path(run_dir), SWEEP_FILES, self._write, overwrite=overwrite, in_place=in_place
        )

    def _write(self, d: Path) -> None:
        from vecpg.analysis.plots import plot_ranking

        summary = self.summary()
        (d / CONFIG_FILE).write_text(dumps(self.base.to_dict()))
        (d / "grid.json").write_text(dumps(self.points))
        write_metrics(d / "metrics.npz", self.seeds, self.metrics)
        (d / "ranking.md").write_text(ranking_markdown(summary["ranking"]))
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
    return SweepResults(
        read_config(run_dir),
        points,
        seeds,
        metrics,
        summary["compile_s"],
        summary["run_s"],
        summary["num_devices"],
        summary["num_calls"],
    )


def ranking_markdown(ranking: list[dict]) -> str:
    names = [k for k in ranking[0] if k not in ("iqm", "iqm_ci95", "mean")]
    head = "| rank | " + " | ".join(names) + " | IQM final return | 95% CI |"
    lines = [head, "|" + "---|" * (len(names) + 3)]
    for i, r in enumerate(ranking, 1):
        vals = " | ".join(f"{r[n]:g}" for n in names)
        lo, hi = r["iqm_ci95"]
        lines.append(f"| {i} | {vals} | {r['iqm']:.2f} | {lo:.2f} .. {hi:.2f} |")
    return "\n".join(lines) + "\n"


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
    agent = make_agent(res.spec, tuple(res.config.hidden), res.config.activation)
    return SavedPolicies(res, agent, jax.tree.map(jnp.asarray, res.params))


def load_policy(run_dir: str | os.PathLike, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic numpy policy: obs [*obs_shape] or [N, *obs_shape] -> action (argmax
    or clipped mean), with the run's observation normalisation applied."""
    saved = load_policies(run_dir)
    params = saved.of_seed(seed)
    spec, agent = saved.results.spec, saved.agent
    dist = distribution(spec.discrete)
    normalize = saved.results.config.normalize_obs

    @jax.jit
    def act(obs: jax.Array) -> jax.Array:
        a = dist.mode(policy_dist(agent, params, obs, normalize_obs=normalize))
        if spec.discrete:
            return a
        return jnp.clip(a, spec.action_low, spec.action_high)

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(act(jnp.asarray(obs, jnp.float32)))

    return policy
