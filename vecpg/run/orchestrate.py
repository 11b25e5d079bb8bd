"""The one path every launch takes: train, sweep and their `--resume`.

prepare_dir  write config.json and run.json before compiling (so a killed run can be
             resumed), replacing an old run only with --overwrite
execute      W&B runs, progress, the SIGINT guard and the checkpoint store around
             `vecpg.training.execute.run_lanes`
complete     save the results in the run dir (atomically, summary.json last) and close
             the W&B runs with each lane's final return
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from vecpg.config import TrainConfig
from vecpg.run.launch import Launch
from vecpg.run.progress import ProgressReporter, sinks_active
from vecpg.run.rundir import CONFIG_FILE, LAUNCH_FILE, check_out_dir, write_json
from vecpg.run.tracking import Lane, WandbLogger, WandbOptions
from vecpg.training.checkpoint import CHECKPOINT_DIR, CheckpointStore, sigint_checkpoint
from vecpg.training.execute import Checkpointing, LaneOutput, plan_lanes, run_lanes

INTERRUPT_MESSAGE = (
    "vecpg: interrupt: will checkpoint after the current chunk and stop; Ctrl-C again to abort"
)


class Saveable(Protocol):
    figure: str  # the picture the W&B aggregate runs get

    def final_returns(self) -> np.ndarray: ...

    def save(self, run_dir: str, overwrite: bool = False, in_place: bool = False) -> Path: ...


R = TypeVar("R", bound=Saveable)


def prepare_dir(run_dir: Path, overwrite: bool, config: TrainConfig, launch: Launch) -> None:
    """Create the run dir with config.json and run.json (checked before compiling)."""
    check_out_dir(run_dir, overwrite)
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)  # checkpoints and W&B files live in the new run dir
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    write_json(run_dir / LAUNCH_FILE, launch.to_dict())


def start_wandb(
    options: WandbOptions | None, config: TrainConfig, launch: Launch, run_dir: Path | None
) -> WandbLogger | None:
    """One W&B run per lane (and an aggregate run per grid point), or None."""
    if options is None or options.mode == "disabled":
        return None
    configs = launch.configs(config)
    names = iter(launch.lane_names())
    lanes = [
        Lane(next(names), {**c.to_dict(), "seed": s}, i)
        for i, c in enumerate(configs)
        for s in launch.seeds
    ]
    if run_dir is not None:
        return WandbLogger(options, lanes, run_dir, run_dir.name)
    group = f"{config.algo}-{config.env}" if launch.kind == "train" else "sweep"
    return WandbLogger(options, lanes, Path("."), group)


def execute(
    config: TrainConfig,
    launch: Launch,
    run_dir: Path | None,
    progress: bool,
    logger: WandbLogger | None,
) -> LaneOutput:
    """Run every lane of `launch` (chunked with checkpoints in `run_dir` when the launch
    asks for them), feeding progress and W&B; Ctrl-C stops after the current chunk."""
    seeds, hparams = launch.lanes(config)
    plan = plan_lanes(seeds, hparams, launch.max_runs_per_call)
    total_steps = config.num_iterations * config.batch_size
    reporter = ProgressReporter(plan.num_lanes, total_steps) if progress else None
    sinks = [s for s in (logger, reporter) if s is not None]
    every = launch.checkpoint_every
    guard = sigint_checkpoint(INTERRUPT_MESSAGE) if every else contextlib.nullcontext()
    with guard as interrupted, sinks_active(sinks):
        ck = None
        if every and run_dir is not None:
            store = CheckpointStore(run_dir / CHECKPOINT_DIR)
            ck = Checkpointing(store, every, interrupted or (lambda: False))
        try:
            return run_lanes(config.static(), plan, checkpointing=ck, watcher=reporter)
        except BaseException:
            if logger:
                logger.finish(None, [])  # close the W&B runs so their files are complete
            raise


def complete(results: R, run_dir: Path | None, logger: WandbLogger | None) -> R:
    """Save `results` into the prepared run dir, then close W&B with the final returns."""
    if run_dir is not None:
        results.save(str(run_dir), in_place=True)
    if logger:
        figure = run_dir / results.figure if run_dir is not None else None
        finals = results.final_returns().reshape(-1)
        logger.finish(figure, [{"final_return": float(r)} for r in finals])
    return results


def run_job(
    config: TrainConfig,
    launch: Launch,
    run_dir: Path | None,
    progress: bool,
    wandb: WandbOptions | None,
    make_results: Callable[[LaneOutput], R],
) -> R:
    """execute -> make_results -> complete: the path of train, sweep and resume."""
    logger = start_wandb(wandb, config, launch, run_dir)
    out = execute(config, launch, run_dir, progress, logger)
    return complete(make_results(out), run_dir, logger)
