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
