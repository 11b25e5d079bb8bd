"""The Python front doors: `train`, `sweep` and `resume`. Each checks its arguments
(one line each, before compiling), records the launch, and takes the one path in
`orchestrate`."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax

from vecpg.config import TrainConfig
from vecpg.envs import make_env_for
from vecpg.errors import ConfigError
from vecpg.run import distributed, orchestrate
from vecpg.run.distributed import Cluster
from vecpg.run.files import CONFIG_FILE, LAUNCH_FILE, SUMMARY_FILE, check_out_dir
from vecpg.run.launch import (
    Launch,
    check_checkpoint_every,
    check_max_runs,
    expand_grid,
    seed_list,
)
from vecpg.run.memory import available_bytes, fit_lanes, host_available_bytes, lane_bytes
from vecpg.run.rundir import Results, SweepResults, load, load_sweep, read_config
from vecpg.run.tracking import WandbOptions
from vecpg.training.execute import LaneOutput


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
    cluster: Cluster | None = None,
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
    `wandb` logs every seed live to Weights & Biases (see `vecpg.run.tracking`).

    `cluster` makes this process one of several running the job together (see
    `vecpg.run.distributed`; every process calls `train` with the same arguments, process
    0 writes the run dir and returns the same results as the others).
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"invalid config={type(config).__name__}: must be a vecpg.TrainConfig")
    distributed.join(cluster)
    launch = Launch("train", seed_list(seeds), [{}], max_runs_per_call, checkpoint_every)
    launch, path = _prepare(config, launch, run_dir, overwrite)
    return orchestrate.run_job(
        config, launch, path, progress, wandb, _train_results(config, launch)
    )


def sweep(
    config: TrainConfig,
    grid: Mapping[str, Sequence[float]],
    seeds: int | Sequence[int] = 4,
    max_runs_per_call: int | None = None,
    progress: bool = False,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    checkpoint_every: int = 0,
    wandb: WandbOptions | None = None,
    cluster: Cluster | None = None,
) -> SweepResults:
    """Train every grid point x every seed in one compiled program (chunked only when
    `max_runs_per_call` is set; results are identical either way). Only traced
    hyperparameters (`vecpg.config.HPARAM_FIELDS`) can be swept in one program.

    With `out`, the sweep is saved there; `checkpoint_every=N` checkpoints every lane
    every N iterations so that `resume(out)` can continue it. `wandb` logs one W&B run
    per (grid point, seed) plus one aggregate run per grid point. `cluster`: as in
    `train`."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"invalid config={type(config).__name__}: must be a vecpg.TrainConfig")
    distributed.join(cluster)
    points = expand_grid(grid)
    launch = Launch("sweep", seed_list(seeds), points, max_runs_per_call, checkpoint_every)
    launch, path = _prepare(config, launch, out, overwrite)
    return orchestrate.run_job(
        config, launch, path, progress, wandb, _sweep_results(config, launch)
    )


def _prepare(
    config: TrainConfig, launch: Launch, run_dir: str | os.PathLike | None, overwrite: bool
) -> tuple[Launch, Path | None]:
    """Check the launch (one line each, before compiling; the memory estimate may choose
    --max-runs-per-call), agree on it with the other processes, then create the run dir
    (process 0)."""
    launch = dataclasses.replace(launch, num_processes=jax.process_count())
    path = None if run_dir is None else Path(run_dir)
    error = None
    try:
        launch = _check(config, launch, path, overwrite)
    except ConfigError as e:
        error = e
    distributed.agree(distributed.fingerprint(config, launch, path), error)
    if path is not None and distributed.is_writer():
        orchestrate.prepare_dir(path, overwrite, config, launch)
    return launch, path


def _check(config: TrainConfig, launch: Launch, path: Path | None, overwrite: bool) -> Launch:
    check_max_runs(launch.max_runs_per_call)
    check_checkpoint_every(launch.checkpoint_every, path is not None)
    if path is not None and distributed.is_writer():
        check_out_dir(path, overwrite)
    configs = launch.configs(config)  # validates every grid point before anything is written
    per_lane = lane_bytes(config.static(), configs[0].hparams())
    free, what = available_bytes()
    lanes = len(configs) * len(launch.seeds)
    max_runs, note = fit_lanes(
        per_lane, lanes, launch.max_runs_per_call, free, host_available_bytes(),
        jax.device_count(), what,
    )  # fmt: skip
    if note:
        if distributed.is_writer():
            print(note, flush=True)
        launch = dataclasses.replace(launch, max_runs_per_call=max_runs)
    return launch


def resume(
    run_dir: str | os.PathLike,
    progress: bool = False,
    wandb: WandbOptions | None = None,
    cluster: Cluster | None = None,
) -> Results | SweepResults:
    """Continue a checkpointed train or sweep run (killed, pre-empted or interrupted) from
    its latest checkpoint; the final metrics equal those of an uninterrupted run of the
    same launch. A run that already finished is loaded and returned. A run made by N
    processes resumes with N processes (`cluster`)."""
    run_dir = Path(run_dir)
    if not (run_dir / LAUNCH_FILE).exists() or not (run_dir / CONFIG_FILE).exists():
        raise ConfigError(
            f"invalid resume={str(run_dir)!r}: not a checkpointed run dir "
            f"(no {LAUNCH_FILE}; train with --checkpoint-every N)"
        )
    launch = Launch.from_dict(json.loads((run_dir / LAUNCH_FILE).read_text()))
    finished = (run_dir / SUMMARY_FILE).exists()
    config = read_config(run_dir)
    if not finished:
        _check_processes(launch, cluster)
        distributed.join(cluster)
        distributed.agree(distributed.fingerprint(config, launch, run_dir), None)
    if launch.kind == "train":
        if finished:
            return load(run_dir)
        train_results = _train_results(config, launch)
        return orchestrate.run_job(config, launch, run_dir, progress, wandb, train_results)
    if finished:
        return load_sweep(run_dir)
    sweep_results = _sweep_results(config, launch)
    return orchestrate.run_job(config, launch, run_dir, progress, wandb, sweep_results)


def _train_results(config: TrainConfig, launch: Launch) -> Callable[[LaneOutput], Results]:
    spec = make_env_for(config).spec

    def results(out: LaneOutput) -> Results:
        return Results(
            config, launch.seeds, out.metrics, out.params, spec,
            out.compile_s, out.run_s, out.num_devices, out.iterations_run, out.devices_per_lane,
        )  # fmt: skip

    return results


def _sweep_results(config: TrainConfig, launch: Launch) -> Callable[[LaneOutput], SweepResults]:
    shape = (len(launch.points), len(launch.seeds))

    def results(out: LaneOutput) -> SweepResults:
        metrics = {k: v.reshape(*shape, *v.shape[1:]) for k, v in out.metrics.items()}
        return SweepResults(
            config, launch.points, launch.seeds, metrics,
            out.compile_s, out.run_s, out.num_devices, out.num_calls, out.devices_per_lane,
        )  # fmt: skip

    return results


def _check_processes(launch: Launch, cluster: Cluster | None) -> None:
    """A run resumes with the process count that started it (its lanes' shards)."""
    cluster = cluster or Cluster()
    n = cluster.num_processes or distributed.detected_processes()
    if n != launch.num_processes:
        raise ConfigError(
            f"invalid resume: this run was started by {launch.num_processes} process(es); "
            f"resume it with --num-processes {launch.num_processes} (this job has {n})"
        )
