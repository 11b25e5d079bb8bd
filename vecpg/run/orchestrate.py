"""The one path every launch takes: train, sweep and their `--resume`.

prepare_dir  write config.json and run.json before compiling (so a killed run can be
             resumed), replacing an old run only with --overwrite; run.json records the
             config's fingerprint, so that `--resume` notices an edited config.json
execute      W&B runs, progress and the checkpoint store around
             `vecpg.training.execute.run_lanes`
complete     save the results in the run dir (atomically, summary.json last) and close
             the W&B runs with each lane's final return
run_job      all three under the Ctrl-C / SIGTERM guard (`vecpg.run.interrupt`): a stop
             request is honoured between chunks; once every iteration is computed it
             discards nothing (the results are saved, and one line says so)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from vecpg.config import TrainConfig
from vecpg.errors import ConfigError, RunFailed
from vecpg.run import distributed, interrupt
from vecpg.run.files import CONFIG_FILE, LAUNCH_FILE, make_run_dir, write_json
from vecpg.run.interrupt import ctrl_c_stops, iterations, stop_requested, stop_within
from vecpg.run.launch import Launch
from vecpg.run.progress import ProgressReporter, sinks_active
from vecpg.run.rundir import LEGACY_FIELDS
from vecpg.run.tracking import WandbLogger, WandbOptions, WandbRunSpec
from vecpg.training.checkpoint import CHECKPOINT_DIR, CheckpointStore
from vecpg.training.execute import (
    Checkpointing,
    LaneOutput,
    TrainingInterrupted,
    never,
    plan_lanes,
    run_lanes,
)

CONFIG_SHA = "config_sha256"  # run.json: the fingerprint of config.json when the run began
CONFIG_COPY = "config"  # run.json: a copy of config.json then, to name what was edited


def interrupt_message(config: TrainConfig, checkpoint_every: int, name: str = "Ctrl-C") -> str:
    """What the first Ctrl-C (or SIGTERM: `name`) prints: the most iterations the stop
    waits for (a run that can be stopped goes in chunks of that many)."""
    kept = "the last checkpoint is kept" if checkpoint_every else "no checkpoints to keep"
    within = stop_within(config.num_iterations, config.log_every, checkpoint_every)
    return (
        f"vecpg: {name}: stopping within {iterations(within)} ({kept}); "
        f"{name} again to abort at once"
    )


def config_fingerprint(config: TrainConfig, like: dict[str, Any] | None = None) -> str:
    """sha256 of the config's canonical JSON (what config.json holds). With `like`, the
    copy of a config saved when a run began: fields added to vecpg since (absent from
    it) are left out when they hold the value such a run was made with
    (`rundir.LEGACY_FIELDS`), so an old run's fingerprint still matches."""
    d = config.to_dict()
    if like is not None:
        d = {k: v for k, v in d.items() if k in like or LEGACY_FIELDS.get(k, object()) != v}
    return hashlib.sha256(canonical(d).encode()).hexdigest()


def canonical(d: Any) -> str:
    return json.dumps(d, sort_keys=True, allow_nan=True)


def config_edits(before: dict[str, Any], now: dict[str, Any]) -> str:
    """'learning_rate: 0.00025 -> 0.001, hidden: [8] -> [16]': the fields that differ."""
    names = sorted(set(before) | set(now))
    missing = object()
    changed = [
        (n, before.get(n, missing), now.get(n, missing))
        for n in names
        if canonical(before.get(n)) != canonical(now.get(n)) or (n in before) != (n in now)
    ]
    show = lambda v: "(absent)" if v is missing else json.dumps(v)  # noqa: E731
    return ", ".join(f"{n}: {show(a)} -> {show(b)}" for n, a, b in changed)


class Saveable(Protocol):
    figure: str  # the picture the W&B aggregate runs get

    def final_returns(self) -> np.ndarray: ...

    def save(self, run_dir: str, overwrite: bool = False, in_place: bool = False) -> Path: ...


R = TypeVar("R", bound=Saveable)


def prepare_dir(run_dir: Path, overwrite: bool, config: TrainConfig, launch: Launch) -> None:
    """Create the run dir with config.json and run.json before compiling, replacing an
    old vecpg run dir whole with `overwrite` (its checkpoints and W&B files included)."""
    make_run_dir(run_dir, overwrite)
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    record = {CONFIG_SHA: config_fingerprint(config), CONFIG_COPY: config.to_dict()}
    write_json(run_dir / LAUNCH_FILE, {**launch.to_dict(), **record})


def describe(config: TrainConfig, launch: Launch) -> str:
    """'ppo on gymnax/CartPole-v1 | 8 seeds x 488 iterations x 1024 steps' (sweeps: points x
    seeds)."""
    lanes = f"{len(launch.seeds)} seeds"
    if launch.kind == "sweep":
        lanes = f"{len(launch.points)} configs x {lanes}"
    if launch.pbt is not None:
        lanes = f"PBT every {launch.pbt['interval']} iterations, {lanes}"
    iterations = f"{config.num_iterations} iterations x {config.batch_size} steps"
    return f"{config.algo} on {config.env} | {lanes} x {iterations}"


def start_wandb(
    options: WandbOptions | None, config: TrainConfig, launch: Launch, run_dir: Path | None
) -> WandbLogger | None:
    """One W&B run per lane (and an aggregate run per grid point), or None. Only process
    0 logs: after each chunk every process's lanes are gathered to it."""
    if options is None or options.mode == "disabled" or not distributed.is_writer():
        return None
    configs = launch.configs(config)
    names = iter(launch.lane_names())
    specs = [
        WandbRunSpec(next(names), {**c.to_dict(), "seed": s}, i)
        for i, c in enumerate(configs)
        for s in launch.seeds
    ]
    if run_dir is not None:
        return WandbLogger(options, specs, run_dir, run_dir.name)
    group = f"{config.algo}-{config.env}" if launch.kind == "train" else "sweep"
    return WandbLogger(options, specs, Path("."), group)


def execute(
    config: TrainConfig,
    launch: Launch,
    run_dir: Path | None,
    progress: bool,
    logger: WandbLogger | None,
    report: bool = True,
) -> LaneOutput:
    """Run every lane of `launch` (chunked with checkpoints in `run_dir` when the launch
    asks for them), feeding progress and W&B. Under `ctrl_c_stops` (`run_job`), a first
    Ctrl-C or SIGTERM stops the run at the next chunk boundary (TrainingInterrupted); a
    second aborts (see `vecpg.run.interrupt`)."""
    seeds, hparams = launch.lanes(config)
    static = launch.static(config)
    plan = plan_lanes(seeds, hparams, launch.max_runs_per_call, static)
    total_steps = config.num_iterations * config.batch_size
    progress = progress and distributed.is_writer()
    reporter = ProgressReporter(plan.num_lanes, total_steps) if progress else None
    sinks = [s for s in (logger, reporter) if s is not None]
    every = launch.checkpoint_every
    if progress:
        print(f"vecpg: {describe(config, launch)} | compiling...", flush=True)
    with sinks_active(sinks):
        store = CheckpointStore(run_dir / CHECKPOINT_DIR) if every and run_dir else None
        ck = Checkpointing(store, every) if store else None
        try:
            return run_lanes(
                static,
                plan,
                checkpointing=ck,
                watcher=reporter,
                interrupted=stop_requested if interrupt.stops_possible() else never,
                report=report,
            )
        except BaseException:
            if logger:
                logger.finish(None, [])  # close the W&B runs so their files are complete
            raise
        finally:
            if store is not None:
                store.close()


def say_late_stop(run_dir: Path | None) -> None:
    """The line for a Ctrl-C or SIGTERM that came when there was nothing left to stop."""
    name = interrupt.signal_name(interrupt.stopped_by())
    if interrupt.late_stop() == "during":
        when = "during the last chunk, too late to stop it; training finished"
    else:
        when = "after training finished"
    if run_dir is None:
        kept = "the results are returned"
    elif distributed.is_writer():
        kept = f"the results are saved in {run_dir}/"
    else:
        kept = "process 0 saves the results"
    print(f"vecpg: {name} came {when}; nothing was discarded: {kept}", flush=True)


def complete(results: R, run_dir: Path | None, logger: WandbLogger | None) -> R:
    """Save `results` into the prepared run dir (process 0), then close W&B with the final
    returns."""
    if run_dir is not None and distributed.is_writer():
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
    """execute -> make_results -> complete: the path of train, sweep and resume, under the
    Ctrl-C / SIGTERM guard. A stop that comes once every iteration is computed discards
    nothing: the results are saved and returned, and one line says so. With several
    processes, a failure here is published so that the others stop too."""
    try:
        # Every process runs the same chunks: whether the run reports between chunks
        # follows the arguments, not which process writes.
        report = progress or (wandb is not None and wandb.mode != "disabled")
        message = lambda name: interrupt_message(config, launch.checkpoint_every, name)  # noqa: E731
        with ctrl_c_stops(message):
            logger = start_wandb(wandb, config, launch, run_dir)
            out = execute(config, launch, run_dir, progress, logger, report)
            interrupt.finishing()  # a stop from here on discards nothing
            results = complete(make_results(out), run_dir, logger)
        if interrupt.late_stop():
            say_late_stop(run_dir)
        return results
    except Exception as e:
        ours = (ConfigError, RunFailed, TrainingInterrupted)
        if distributed.is_multiprocess() and not isinstance(e, ours):
            e = distributed.explain(e)  # most likely a peer died mid-collective
        distributed.failed(str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise e from None
    except BaseException as e:
        distributed.failed(type(e).__name__)
        raise
