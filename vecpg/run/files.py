"""Files of a run dir, written and checked: atomic writes, the vecpg marker, what
`--overwrite` may replace, one-line errors for unreadable or unfinished run dirs."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vecpg.errors import ConfigError, RunFailed, disk_full, quoted

T = TypeVar("T")
MARKER = ".vecpg-run"  # in every dir vecpg writes: only such dirs are ever replaced
CONFIG_FILE = "config.json"
LAUNCH_FILE = "run.json"  # how the run was launched: seeds, grid, chunking
SUMMARY_FILE = "summary.json"


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
    """Atomic (`write_text`)."""
    write_text(path, dumps(obj))


def write_text(path: Path, text: str) -> None:
    """Atomic: a temporary sibling (named per process, so that processes writing the same
    file, such as a study's shards, never share one), then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
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
        mark(run_dir)
    except OSError as e:
        reason = "disk full" if disk_full(e) else (e.strerror or str(e))
        raise ConfigError(f"invalid out={str(run_dir)!r}: cannot write there ({reason})") from None


def mark(d: Path) -> None:
    """Mark `d` as a directory vecpg wrote (what --overwrite may replace)."""
    (d / MARKER).write_text("a vecpg run directory\n")


def write_then_move(tmp: Path, dest: Path, write: Callable[[Path], T], last: str) -> T:
    """Write files into the fresh directory `tmp`, then move each into `dest` (every
    replace atomic), `last` after all others; one line if a write fails."""
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        result = write(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in tmp.iterdir() if p.name != last)
        for name in [*names, last]:
            os.replace(tmp / name, dest / name)
        return result
    except OSError as e:
        raise write_failed(dest, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_dir(
    run_dir: Path,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    in_place: bool = False,
) -> Path:
    """Write a run's files, summary.json among them, through `write(tmp_dir)`.

    New dir: everything goes to a temporary sibling that then replaces `run_dir`, so a
    failure never leaves a half-written run or destroys an earlier one. `in_place` (a
    prepared run dir holding checkpoints) instead replaces each file atomically,
    summary.json last.
    """
    if in_place:
        write_then_move(run_dir / ".final", run_dir, write, SUMMARY_FILE)
        return run_dir
    check_out_dir(run_dir, overwrite)
    tmp = run_dir.with_name(f".{run_dir.name}.new")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        mark(tmp)
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


def check_run_dir(run_dir: Path, kind: str) -> None:
    """One line unless `run_dir` holds a finished run of `kind` ('train' or 'sweep')."""
    if not run_dir.exists():
        raise bad_run_dir(run_dir, "no such directory")
    if not run_dir.is_dir():
        raise bad_run_dir(run_dir, "is a file, not a run directory")
    if not (run_dir / CONFIG_FILE).exists():
        raise bad_run_dir(run_dir, "not a vecpg run dir (no config.json)")
    is_sweep = (run_dir / "grid.json").exists() or _launch_kind(run_dir) == "sweep"
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


def _launch_kind(run_dir: Path) -> str:
    """run.json's `kind` ('train' or 'sweep'); '' when it is missing or unreadable."""
    try:
        launch = json.loads((run_dir / LAUNCH_FILE).read_text())
    except (OSError, ValueError):
        return ""
    return str(launch.get("kind", "train")) if isinstance(launch, dict) else ""
