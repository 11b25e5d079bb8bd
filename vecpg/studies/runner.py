"""Running a study: every (algo, env) cell as one compiled call of all its seeds.

The study dir holds:

    study.json                   the resolved cells (config per cell), seeds, grid
    cells/<algo>/<env with - for />/   each cell's ordinary vecpg run dir (train, or a
                                 sweep with a grid), checkpointed every
                                 `checkpoint_every` iterations
    status/<algo>/<env>.json     each cell's last outcome (written by whichever shard ran it)
    cells.json                   every cell's status: done, failed (the one-line error),
                                 diverged (every seed), pending; merged from status/
    report/                      written once every cell has run (vecpg.studies.report)

Running again skips finished cells (their summary.json exists), resumes an interrupted
one from its last checkpoint (`vecpg.resume`), and retries failed ones. A failing cell
(any exception but Ctrl-C) is recorded and the study goes on; Ctrl-C
(`vecpg.TrainingInterrupted`, KeyboardInterrupt) stops the study, finished cells kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import vecpg
from vecpg.errors import ConfigError, create_dir
from vecpg.run import files, interrupt
from vecpg.run.api import sweep_points
from vecpg.run.launch import expand_grid
from vecpg.run.tracking import WandbOptions
from vecpg.studies.spec import Cell, Study, StudySpec, cell_dirname

STUDY_FILE = "study.json"
CELLS_FILE = "cells.json"
STATUS_DIR = "status"


def write_json(path: Path, obj: Any) -> None:
    """`vecpg.run.files.write_json` (atomic, per-process temporary), parents created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, obj)


def machine() -> dict[str, Any]:
    """Where a cell ran: CPU model, core count, jax version and devices."""
    import jax

    from vecpg.bench.timing import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def parse_shard(text: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """'i/N' (0 <= i < N) -> (i, N); without it, a SLURM array job's task (its
    SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT); else (0, 1)."""
    env = os.environ if environ is None else environ
    if text is None:
        if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
            return 0, 1
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except ValueError:
            raise ConfigError(
                "invalid SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT: must be integers"
            ) from None
        text = f"{task}/{count}"
    i, sep, n = text.partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise ConfigError(f"invalid shard={text!r}: expected i/N with 0 <= i < N")
    return index, count


def status_path(out: Path, cell: Cell) -> Path:
    return out / STATUS_DIR / cell.algo / f"{cell_dirname(cell.env)}.json"


def cell_status(out: Path, cell: Cell) -> dict[str, Any]:
    """A cell's recorded outcome; 'done' whenever its run dir is finished."""
    path = status_path(out, cell)
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        status = {"status": "pending"}
    if (out / cell.dir / "summary.json").exists() and status.get("status") != "done":
        status = {**status, **finished_status(out / cell.dir)}
    return {"algo": cell.algo, "env": cell.env, "dir": cell.dir, **status}


def finished_status(run_dir: Path) -> dict[str, Any]:
    """done, or diverged when every seed of every grid point diverged."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if "ranking" in summary:  # a sweep: per grid point
        diverged = [r.get("diverged_seeds", []) for r in summary["ranking"]]
        every = all(r.get("all_diverged") for r in summary["ranking"])
    else:
        diverged = summary.get("diverged_seeds", [])
        every = bool(summary.get("all_diverged"))
    return {"status": "diverged" if every else "done", "diverged_seeds": diverged, "error": None}


def write_cells_file(out: Path, study: Study) -> dict[str, dict[str, Any]]:
    cells = {c.key: cell_status(out, c) for c in study.cells}
    write_json(out / CELLS_FILE, cells)
    return cells


def check_out(out: Path, study: Study) -> None:
    """`out` is new, empty, or this study's dir (the same cells): one line otherwise."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"invalid out={str(out)!r}: exists and is not a directory")
    record = out / STUDY_FILE
    if record.exists():
        try:
            old = Study.from_json(json.loads(record.read_text()))
        except (ValueError, KeyError, TypeError, ConfigError) as e:
            raise ConfigError(
                f"invalid out={str(out)!r}: its {STUDY_FILE} is unreadable ({e})"
            ) from None
        if not old.runs_equal(study):
            raise ConfigError(
                f"invalid out={str(out)!r}: it holds a different study (other cells, seeds, "
                f"grid or checkpointing); use a new --out, or `vecpg study --resume {out}`"
            )
    elif out.exists() and any(not study_entry(p.name) for p in out.iterdir()):
        raise ConfigError(f"invalid out={str(out)!r}: not empty and not a study dir")


def study_entry(name: str) -> bool:
    """What a study dir holds (another shard may be creating it right now)."""
    ours = (STUDY_FILE, CELLS_FILE, STATUS_DIR, "cells", "report")
    return name in ours or name.startswith((f".{STUDY_FILE}.", f".{CELLS_FILE}.", ".report."))


def load_study(out: str | os.PathLike) -> Study:
    """The study recorded in `out`/study.json (one line if there is none)."""
    path = Path(out) / STUDY_FILE
    try:
        return Study.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"invalid study dir={str(out)!r}: no {STUDY_FILE}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"invalid study dir={str(out)!r}: {STUDY_FILE} is corrupt ({e})"
        ) from None


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def cell_wandb(options: WandbOptions | None, out: Path, cell: Cell) -> WandbOptions | None:
    """The study's W&B options for one cell: one group per study (its dir name unless
    given), the cell's algo and env as tags; one W&B run per seed, as `vecpg train`."""
    if options is None or options.mode == "disabled":
        return None
    group = options.group or f"study-{out.resolve().name}"
    tags = (*options.tags, cell.algo, cell.env)
    return dataclasses.replace(options, group=group, tags=tags)


def run_cell(
    out: Path, study: Study, cell: Cell, progress: bool, wandb: WandbOptions | None = None
) -> dict[str, Any]:
    """Train, resume or skip one cell; returns its status (Ctrl-C propagates)."""
    run_dir = out / cell.dir
    if (run_dir / "summary.json").exists():
        return cell_status(out, cell)
    started = time.time()
    wandb = cell_wandb(wandb, out, cell)
    try:
        if (run_dir / "run.json").exists():
            vecpg.resume(run_dir, progress=progress, wandb=wandb)
        else:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            common: dict[str, Any] = dict(
                progress=progress,
                overwrite=run_dir.exists() and files.is_run_dir(run_dir),
                checkpoint_every=study.checkpoint_every,
                wandb=wandb,
            )
            if study.grid:  # one grid for every algorithm: a field one of them never reads
                # is that cell's business (its points train alike), not a refusal
                points = expand_grid({k: list(v) for k, v in study.grid.items()})
                sweep_points(cell.config, points, study.seeds, out=run_dir, **common)
            else:
                vecpg.train(cell.config, study.seeds, run_dir=run_dir, **common)
        status = finished_status(run_dir)
    except (vecpg.TrainingInterrupted, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a failing cell is recorded; the study goes on
        status = {"status": "failed", "error": one_line(e), "diverged_seeds": []}
    status.update(wall_s=time.time() - started, machine=machine())
    write_json(status_path(out, cell), status)
    return cell_status(out, cell)


def run_study(
    spec: StudySpec | Study,
    out: str | os.PathLike,
    *,
    shard: tuple[int, int] | str | None = None,
    progress: bool = False,
    report: bool = True,
    wandb: WandbOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every cell of `spec` that belongs to this shard, writing the study dir `out`
    (see the module docstring); return every cell's status ({'ppo/gymnax/CartPole-v1':
    {'status': 'done', ...}}). Everything is validated before anything is written.

    `shard`: (i, N) or 'i/N' runs cell k of the sorted cell list when k % N == i; None
    takes a SLURM array job's task from the environment (or runs every cell). When every
    cell has run (done, diverged or failed), the report is written to `out`/report/.
    `wandb`: every cell logs one W&B run per seed into one group per study (`cell_wandb`),
    and the report's HTML page is logged into that group when it is written.
    """
    if wandb is not None and not isinstance(wandb, WandbOptions):
        raise ConfigError(f"invalid wandb={wandb!r:.60}: must be a vecpg WandbOptions or None")
    study = spec.resolve() if isinstance(spec, StudySpec) else spec
    index, count = shard if isinstance(shard, tuple) else parse_shard(shard)
    if not 0 <= index < count:
        raise ConfigError(f"invalid shard={index}/{count}: expected i/N with 0 <= i < N")
    out = Path(out)
    check_out(out, study)
    create_dir(out, "out")
    write_json(out / STUDY_FILE, study.to_json())
    mine = study.shard(index, count)
    try:
        for k, cell in enumerate(mine, 1):
            if progress:
                print(f"vecpg study: cell {k}/{len(mine)}: {cell.algo} on {cell.env}", flush=True)
            status = run_cell(out, study, cell, progress, wandb)
            if interrupt.late_stop():  # a stop during the cell's last chunk: it is saved
                raise KeyboardInterrupt
            if progress or status["status"] != "done":
                note = status.get("error") or status["status"]
                print(f"vecpg study: {cell.algo} on {cell.env}: {note}", flush=True)
    finally:
        cells = write_cells_file(out, study)
    if report and all(c["status"] != "pending" for c in cells.values()):
        from vecpg.studies.report import write_report

        dest = write_report(out)
        options = cell_wandb(wandb, out, study.cells[0]) if study.cells else None
        if options is not None:
            from vecpg.run.tracking import log_html

            log_html(options, out, "study-report", Path(dest) / "report.html")
    return cells
