"""Python API: train many seeds in one compiled call, save, load, deploy."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.config import ConfigError, TrainConfig
from vecpg.distributions import distribution
from vecpg.envs.protocol import EnvSpec
from vecpg.execute import run_lanes
from vecpg.networks import AgentParams, init_agent_params, make_agent, policy_dist
from vecpg.stats import mean_ci95
from vecpg.tracking import WandbOptions

FINAL_FRACTION = 0.1  # summary returns average the last 10% of iterations


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1 or a list of ints")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ConfigError(f"invalid seeds={seeds!r}: must be distinct non-negative integers")
    return out


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

    def final_returns(self) -> np.ndarray:
        """[seeds] mean episode_return over the last 10% of iterations."""
        r = self.metrics["episode_return"]
        k = max(1, int(round(r.shape[1] * FINAL_FRACTION)))
        return r[:, -k:].mean(axis=1)

    def summary(self) -> dict[str, Any]:
        final = self.final_returns()
        mean, lo, hi = mean_ci95(final)
        steps = self.metrics["env_steps"][0, -1] * len(self.seeds)
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
            "nonfinite_total": int(self.metrics["nonfinite"].sum()),
        }

    def save(
        self, run_dir: str | os.PathLike, overwrite: bool = False, in_place: bool = False
    ) -> Path:
        """Write config.json, spec.json, metrics.npz, summary.json, params.msgpack and
        curves.png. Files go to a temporary sibling first, then replace `run_dir`, so a
        failure never leaves a half-written run or destroys an earlier one. `in_place`
        (a checkpointed run's own dir) instead replaces each file atomically, keeping the
        checkpoints; summary.json is written last and marks the run finished."""
        run_dir = Path(run_dir)
        if in_place:
            tmp = Path(tempfile.mkdtemp(prefix=".final.", dir=run_dir))
            try:
                self._write_files(tmp)
                for name in FILE_ORDER:
                    os.replace(tmp / name, run_dir / name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return run_dir
        check_out_dir(run_dir, overwrite)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
        try:
            self._write_files(tmp)
            if run_dir.exists():
                shutil.rmtree(run_dir)
            os.replace(tmp, run_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return run_dir

    def _write_files(self, d: Path) -> None:
        (d / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        (d / "spec.json").write_text(json.dumps(self.spec.to_json(), indent=2))
        np.savez(d / "metrics.npz", seeds=np.array(self.seeds), **self.metrics)
        (d / "params.msgpack").write_bytes(flax.serialization.to_bytes(self.params))
        from vecpg.plots import plot_curves

        title = f"{self.config.algo} on {self.config.env}"
        plot_curves(self.metrics, d / "curves.png", title=title)
        (d / "summary.json").write_text(json.dumps(self.summary(), indent=2))


FILE_ORDER = (  # summary.json last: its presence marks a finished run
    "config.json",
    "spec.json",
    "metrics.npz",
    "params.msgpack",
    "curves.png",
    "summary.json",
)


def check_out_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"invalid out={str(run_dir)!r}: exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"invalid out={str(run_dir)!r}: directory exists and is not empty; pass --overwrite"
        )


RUN_FILE = "run.json"  # how the run was launched: seeds, chunking, W&B ids


def train(
    config: TrainConfig,
    seeds: int | Sequence[int] = 8,
    progress: bool = False,
    max_runs_per_call: int | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    checkpoint_every: int = 0,
    wandb: WandbOptions | None = None,
) -> Results:
    """Train `config` on every seed in ONE compiled call (vmapped over seeds, the seeds
    axis sharded over all local devices).

    Seed s uses `jax.random.key(s)`, so seed s of a batch matches seed s trained alone.
    With `progress`, a live line (rich bar on a terminal) is driven from inside the
    compiled run every `config.log_every` iterations. `max_runs_per_call` splits the
    seeds into equal chunks (same compiled program, same results) to bound memory.

    With `run_dir`, the run is saved there. `checkpoint_every=N` (needs `run_dir`) runs
    the iterations in compiled chunks of N and writes an orbax checkpoint of every
    seed's full state after each; `resume(run_dir)` continues a killed run, and Ctrl-C
    stops after the current chunk with a checkpoint (raising `TrainingInterrupted`).
    `wandb` logs every seed live to Weights & Biases (see `vecpg.tracking`).
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"invalid config={type(config).__name__}: must be a vecpg.TrainConfig")
    seeds = seed_list(seeds)
    check_max_runs(max_runs_per_call)
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ConfigError(
            f"invalid checkpoint_every={checkpoint_every!r}: must be an integer >= 0 (0: off)"
        )
    if checkpoint_every and run_dir is None:
        raise ConfigError("invalid checkpoint_every: checkpoints need a run_dir (--out)")
    launch = {
        "seeds": seeds,
        "max_runs_per_call": max_runs_per_call,
        "checkpoint_every": checkpoint_every,
    }
    if run_dir is not None:
        run_dir = Path(run_dir)
        check_out_dir(run_dir, overwrite)
        if run_dir.exists() and overwrite:
            shutil.rmtree(run_dir)  # checkpoints and W&B files live in the new run dir
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", config.to_dict())
        _write_json(run_dir / RUN_FILE, launch)
    return _run(config, launch, progress, run_dir, wandb)


def resume(
    run_dir: str | os.PathLike, progress: bool = False, wandb: WandbOptions | None = None
) -> Results:
    """Continue a checkpointed run (killed, pre-empted or interrupted) from its latest
    checkpoint; the final metrics equal those of an uninterrupted run of the same launch.
    A run that already finished is loaded and returned."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).exists() or not (run_dir / "config.json").exists():
        raise ConfigError(
            f"invalid resume={str(run_dir)!r}: not a checkpointed run dir "
            f"(no {RUN_FILE}; train with --checkpoint-every N)"
        )
    if (run_dir / "summary.json").exists():
        return load(run_dir)
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    launch = json.loads((run_dir / RUN_FILE).read_text())
    return _run(config, launch, progress, run_dir, wandb)


def _run(
    config: TrainConfig,
    launch: dict,
    progress: bool,
    run_dir: Path | None,
    wandb: WandbOptions | None,
) -> Results:
    from vecpg.checkpoint import CHECKPOINT_DIR, CheckpointStore, sigint_checkpoint
    from vecpg.envs import make_env
    from vecpg.execute import Checkpointing

    seeds = launch["seeds"]
    spec = make_env(config.env, config.backend).spec
    logger = _start_wandb(wandb, config, seeds, run_dir)
    every = launch["checkpoint_every"]
    message = (
        "vecpg: interrupt: will checkpoint after the current chunk and stop; Ctrl-C again to abort"
    )
    with sigint_checkpoint(message) if every else contextlib.nullcontext() as flag:
        ck = (
            Checkpointing(CheckpointStore(Path(run_dir) / CHECKPOINT_DIR), every, flag)
            if every
            else None
        )
        try:
            out = run_lanes(
                config.static(),
                seeds,
                [config.hparams()] * len(seeds),
                launch["max_runs_per_call"],
                progress,
                config.num_iterations * config.batch_size,
                sinks=[logger] if logger else [],
                checkpointing=ck,
            )
        except BaseException:
            if logger:
                logger.finish(None, [])  # close the W&B runs so their files are complete
            raise
    res = Results(
        config=config,
        seeds=seeds,
        metrics=out.metrics,
        params=out.params,
        spec=spec,
        compile_s=out.compile_s,
        run_s=out.run_s,
        num_devices=out.num_devices,
    )
    if run_dir is not None:
        res.save(run_dir, in_place=True)
    if logger:
        curves = Path(run_dir) / "curves.png" if run_dir is not None else None
        final = res.final_returns()
        logger.finish(curves, [{"final_return": float(r)} for r in final])
    return res


def _start_wandb(options, config: TrainConfig, seeds: list[int], run_dir):
    if options is None or options.mode == "disabled":
        return None
    from vecpg.tracking import Lane, WandbLogger

    base = config.to_dict()
    lanes = [Lane(f"seed{s}", {**base, "seed": s}) for s in seeds]
    where = Path(run_dir) if run_dir is not None else Path(".")
    group = where.name if run_dir is not None else f"{config.algo}-{config.env}"
    return WandbLogger(options, lanes, where, group)


def _write_json(path: Path, obj: Any) -> None:
    """Atomic: a temporary sibling, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def check_max_runs(max_runs_per_call: int | None) -> None:
    if max_runs_per_call is not None and (
        not isinstance(max_runs_per_call, int) or max_runs_per_call < 1
    ):
        raise ConfigError(
            f"invalid max_runs_per_call={max_runs_per_call!r}: must be an integer >= 1 or None"
        )


def _params_template(config: TrainConfig, spec: EnvSpec, num_seeds: int) -> AgentParams:
    agent = make_agent(spec, config.hidden, config.activation)
    one = init_agent_params(agent, jax.random.key(0))
    return jax.tree.map(lambda x: np.zeros((num_seeds, *x.shape), x.dtype), one)


def load(run_dir: str | os.PathLike) -> Results:
    """Read a run directory written by `Results.save`."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a vecpg run dir (no config.json)")
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    spec = EnvSpec.from_json(json.loads((run_dir / "spec.json").read_text()))
    with np.load(run_dir / "metrics.npz") as z:
        metrics = {k: z[k] for k in z.files if k != "seeds"}
        seeds = [int(s) for s in z["seeds"]]
    summary = json.loads((run_dir / "summary.json").read_text())
    params = flax.serialization.from_bytes(
        _params_template(config, spec, len(seeds)), (run_dir / "params.msgpack").read_bytes()
    )
    return Results(
        config, seeds, metrics, params, spec, summary.get("compile_s"), summary.get("run_s")
    )


def load_policy(run_dir: str | os.PathLike, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic numpy policy: obs [obs_dim] or [N, obs_dim] -> action (argmax or
    clipped mean), with the run's observation normalisation applied."""
    res = load(run_dir)
    if seed not in res.seeds:
        raise ConfigError(f"invalid seed={seed!r}: this run has seeds {res.seeds}")
    i = res.seeds.index(seed)
    params = jax.tree.map(lambda x: jnp.asarray(x[i]), res.params)
    agent = make_agent(res.spec, res.config.hidden, res.config.activation)
    dist = distribution(res.spec.discrete)
    use_norm = res.config.normalize_obs

    @jax.jit
    def act(obs: jax.Array) -> jax.Array:
        a = dist.mode(policy_dist(agent, params, obs, use_norm))
        if res.spec.discrete:
            return a
        return jnp.clip(a, res.spec.action_low, res.spec.action_high)

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(act(jnp.asarray(obs, jnp.float32)))

    return policy
