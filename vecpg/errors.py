"""Errors every layer may raise. A module of its own, so that nothing imports the config
(or the CLI) just to report bad input."""

from __future__ import annotations

import errno
import shlex
from pathlib import Path


class ConfigError(ValueError):
    """A one-line, user-facing message naming the bad field and what is allowed."""


class RunFailed(RuntimeError):
    """A one-line, user-facing message for a run that could not go on (disk full, ...)."""


def quoted(path: str | Path) -> str:
    """A path as a shell would need it in a command the user copies."""
    return shlex.quote(str(path))


def disk_full(error: BaseException) -> bool:
    """Whether ENOSPC is `error` or anywhere in its cause/context chain."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        text = str(seen)
        if "No space left on device" in text or (
            "RESOURCE_EXHAUSTED" in text and "writing" in text
        ):
            return True  # the second: tensorstore's words for it (orbax checkpoints)
        seen = seen.__cause__ or seen.__context__
    return False


def unwritable_reason(path: Path) -> str | None:
    """Why a file or directory cannot be created at `path` (a parent is a file, or the
    nearest existing parent is read-only), or None. Touches nothing."""
    import os

    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            return f"{str(parent)!r} is a file, not a directory"
    existing = path if path.is_dir() else path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return f"cannot write there ({'Read-only file system' if read_only else 'Permission denied'})"


def create_dir(path: Path, field: str, given: Path | None = None) -> None:
    """`path` made a directory (parents too) before any work, or one line naming `field`
    and the value `given` (default `path`) if that fails: a permission check can pass
    where nothing can be created (`/proc`)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        shown = str(path if given is None else given)
        reason = e.strerror or str(e)
        raise ConfigError(f"invalid {field}={shown!r}: cannot write there ({reason})") from None


def check_output_dir(out: Path, field: str, ours: tuple[str, ...], command: str) -> None:
    """One line unless `out` can become a directory of `command`'s output: new, empty, or
    holding only files named by the patterns `ours` (an earlier output, replaced; e.g.
    "report.md", "*.png"); never a file, under a file, or where nothing can be written.
    Touches nothing."""
    from fnmatch import fnmatchcase

    where = f"invalid {field}={str(out)!r}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{where}: exists and is not a directory")
    reason = unwritable_reason(out)
    if reason:
        raise ConfigError(f"{where}: {reason}")
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir())
        foreign = [n for n in names if not any(fnmatchcase(n, pattern) for pattern in ours)]
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(
                f"{where}: the directory holds files `{command}` did not write ({shown}); "
                "give a new or empty directory"
            )
