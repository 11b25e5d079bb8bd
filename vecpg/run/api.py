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
from vecpg.training.reads import check_varied_fields


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
    """Train `config` on every seed in ONE compiled program (vmapped over seeds, the seeds
    axis sharded over all local devices).

    Seed s uses `jax.random.key(s)`, so seed s of a batch matches seed s trained alone.
    With `progress`, a live line (rich bar on a terminal) is shown every
    `config.log_every` iterations. `max_runs_per_call` splits the
    seeds into equal calls of one compiled program to bound memory: each seed keeps its
    device layout, and its results equal the unchunked run's to float32 rounding (bit for
    bit only when each device runs as many seeds per call either way; training can amplify
    a last-bit difference over a long run).

    With `run_dir`, the run is saved there. `checkpoint_every=N` (needs `run_dir`) runs
    the iterations in compiled chunks of N and writes an orbax checkpoint of every
    seed's full state after each; `resume(run_dir)` continues a killed run.

    Called from the main thread, the iterations run in compiled chunks of at most
    `config.log_every` (the same numbers as one call, bit for bit), so that Ctrl-C or
    SIGTERM stops the run within that many iterations, keeping the last checkpoint
    (raising `TrainingInterrupted`); a second Ctrl-C raises KeyboardInterrupt at once. A
    stop that comes once every iteration is computed discards nothing: the results are
    saved and returned. From another thread (no signal can reach it) the run is one call.
    `wandb` logs every seed live to Weights & Biases (see `vecpg.run.tracking`).
    Arguments of the wrong type raise ConfigError naming the argument.

    `cluster` makes this process one of several running the job together (see
    `vecpg.run.distributed`; every process calls `train` with the same arguments, process
    0 writes the run dir and returns the same results as the others).
    """
    _check_types(
        config=config, progress=progress, max_runs_per_call=max_runs_per_call,
        run_dir=run_dir, overwrite=overwrite, checkpoint_every=checkpoint_every,
        wandb=wandb, cluster=cluster,
    )  # fmt: skip
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
    `max_runs_per_call` is set: each lane keeps its device layout, and results equal the
    unchunked sweep's to float32 rounding, bit for bit when each device runs as many lanes
    per call either way). Only traced
    hyperparameters (`vecpg.config.HPARAM_FIELDS`) can be swept in one program.

    With `out`, the sweep is saved there; `checkpoint_every=N` checkpoints every lane
    every N iterations so that `resume(out)` can continue it. `wandb` logs one W&B run
    per (grid point, seed) plus one aggregate run per grid point. `cluster`: as in
    `train`."""
    _check_types(
        config=config, progress=progress, max_runs_per_call=max_runs_per_call, out=out,
        overwrite=overwrite, checkpoint_every=checkpoint_every, wandb=wandb, cluster=cluster,
    )  # fmt: skip
    if not isinstance(grid, Mapping):
        raise ConfigError(
            f"invalid grid={grid!r}: must be a dict of traced field -> list of values "
            "(e.g. {'learning_rate': [3e-4, 1e-3]})"
        )
    points = expand_grid(grid)
    distributed.join(cluster)  # before any JAX work (hparams are arrays)
    check_varied_fields(config.static(), config.hparams(), [n for p in points for n in p], "grid")
    return sweep_points(
        config, points, seeds, max_runs_per_call, progress,
        out=out, overwrite=overwrite, checkpoint_every=checkpoint_every, wandb=wandb,
    )  # fmt: skip


def sweep_points(
    config: TrainConfig,
    points: list[dict[str, float]],
    seeds: int | Sequence[int],
    max_runs_per_call: int | None = None,
    progress: bool = False,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    checkpoint_every: int = 0,
    wandb: WandbOptions | None = None,
    pbt: dict | None = None,
) -> SweepResults:
    """`sweep` over given points (traced field -> value each) instead of a grid's product:
    every point x every seed in one compiled program (`vecpg.search` runs its trials so).
    With `pbt` (`vecpg.training.pbt.pbt_options`), each seed's lanes are one population
    trained by PBT. Arguments are checked by the caller, as `sweep` does."""
    launch = Launch("sweep", seed_list(seeds), points, max_runs_per_call, checkpoint_every,
                    pbt=pbt)  # fmt: skip
    launch, path = _prepare(config, launch, out, overwrite)
    return orchestrate.run_job(
        config, launch, path, progress, wandb, _sweep_results(config, launch)
    )


def _check_types(**given: object) -> None:
    """One line for an argument of the wrong type, before anything runs."""
    for name, value in given.items():
        ok, allowed = _ALLOWED[name]
        if not ok(value):
            shown = repr(value) if name != "config" else type(value).__name__
            raise ConfigError(f"invalid {name}={shown}: must be {allowed}")


def _int_from(low: int) -> Callable[[object], bool]:
    return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= low


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike)) and str(x) != ""


_ALLOWED: dict[str, tuple[Callable[[object], bool], str]] = {
    "config": (lambda x: isinstance(x, TrainConfig), "a vecpg.TrainConfig"),
    "progress": (lambda x: isinstance(x, bool), "True or False"),
    "overwrite": (lambda x: isinstance(x, bool), "True or False"),
    "max_runs_per_call": (lambda x: x is None or _int_from(1)(x), "an integer >= 1 or None"),
    "checkpoint_every": (_int_from(0), "an integer >= 0 (0: off)"),
    "run_dir": (lambda x: x is None or _is_path(x), "a path (str or os.PathLike) or None"),
    "out": (lambda x: x is None or _is_path(x), "a path (str or os.PathLike) or None"),
    "resume": (_is_path, "a path (str or os.PathLike) to a run dir"),
    "wandb": (
        lambda x: x is None or isinstance(x, WandbOptions),
        "a vecpg WandbOptions (e.g. WandbOptions(mode='offline')) or None",
    ),
    "cluster": (
        lambda x: x is None or isinstance(x, Cluster),
        "a vecpg Cluster (e.g. Cluster('node001:12345', num_processes=2, process_id=0)) or None",
    ),
}


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


def plan_launch(config: TrainConfig, launch: Launch) -> Launch:
    """The launch as it will run (the memory estimate may choose --max-runs-per-call),
    checked in one line each, with no run dir: `vecpg search` checks its PBT populations
    fit one call before it writes anything."""
    return _check(config, dataclasses.replace(launch, checkpoint_every=0), None, False)


def _check(config: TrainConfig, launch: Launch, path: Path | None, overwrite: bool) -> Launch:
    check_max_runs(launch.max_runs_per_call)
    check_checkpoint_every(launch.checkpoint_every, path is not None)
    if path is not None and distributed.is_writer():
        check_out_dir(path, overwrite)
    configs = launch.configs(config)  # validates every grid point before anything is written
    per_lane = lane_bytes(launch.static(config), configs[0].hparams())
    free, what = available_bytes()
    lanes = len(configs) * len(launch.seeds)
    # CPU devices (and devices whose own memory is unknown) all live in the host's RAM.
    shared = jax.devices()[0].platform == "cpu" or what == "host memory"
    max_runs, note = fit_lanes(
        per_lane, lanes, launch.max_runs_per_call, free, host_available_bytes(),
        jax.device_count(), what, shared=shared,
    )  # fmt: skip
    if launch.pbt is not None and max_runs is not None and max_runs < lanes:
        raise ConfigError(
            f"invalid max_runs_per_call={max_runs}: a PBT population exchanges state inside "
            f"one program, so all {lanes} lanes must run in one call; use fewer trials or "
            "seeds (or a device with more memory)"
        )
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
    processes resumes with N processes (`cluster`). A config.json edited since the run
    began is refused (run.json holds its fingerprint and a copy)."""
    _check_types(resume=run_dir, progress=progress, wandb=wandb, cluster=cluster)
    run_dir = Path(run_dir)
    if not (run_dir / LAUNCH_FILE).exists() or not (run_dir / CONFIG_FILE).exists():
        raise ConfigError(
            f"invalid resume={str(run_dir)!r}: not a checkpointed run dir "
            f"(no {LAUNCH_FILE}; train with --checkpoint-every N)"
        )
    raw, launch = _read_launch(run_dir)
    finished = (run_dir / SUMMARY_FILE).exists()
    config = read_config(run_dir)
    if not finished:
        _check_unedited(run_dir, raw, config)
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


def _read_launch(run_dir: Path) -> tuple[dict, Launch]:
    """run.json as written (a dict) and the Launch it holds; one line if it is corrupt."""
    where = f"invalid resume={str(run_dir)!r}: {LAUNCH_FILE}"
    try:
        raw = json.loads((run_dir / LAUNCH_FILE).read_text())
    except OSError as e:
        raise ConfigError(f"{where} cannot be read ({e.strerror or e})") from None
    except ValueError:
        raise ConfigError(
            f"{where} is corrupt (not readable JSON); the run cannot be resumed"
        ) from None
    try:
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        launch = Launch.from_dict(raw)
        seeds_ok = all(isinstance(s, int) for s in launch.seeds) and launch.seeds
        points_ok = all(isinstance(p, dict) for p in launch.points) and launch.points
        if launch.kind not in ("train", "sweep") or not seeds_ok or not points_ok:
            raise ValueError("unexpected kind, seeds or points")
        check_checkpoint_every(launch.checkpoint_every, True)
        check_max_runs(launch.max_runs_per_call)
        if not isinstance(launch.num_processes, int) or launch.num_processes < 1:
            raise ValueError("unexpected num_processes")
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        why = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise ConfigError(f"{where} is corrupt ({why}); the run cannot be resumed") from None
    return raw, launch


def _check_unedited(run_dir: Path, raw: dict, config: TrainConfig) -> None:
    """Refuse to resume when config.json changed since the run began (runs made before
    run.json held the fingerprint resume as before)."""
    want = raw.get(orchestrate.CONFIG_SHA)
    before = raw.get(orchestrate.CONFIG_COPY)
    like = before if isinstance(before, dict) else None
    if want is None or orchestrate.config_fingerprint(config, like) == want:
        return
    edits = orchestrate.config_edits(before, config.to_dict()) if isinstance(before, dict) else ""
    raise ConfigError(
        f"invalid resume={str(run_dir)!r}: config.json was edited after the run started"
        f"{f' ({edits})' if edits else ''}, so the run so far does not match this run's "
        "config.json; restore it or start a new run"
    )


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
