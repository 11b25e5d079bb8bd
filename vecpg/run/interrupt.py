"""Ctrl-C while a compiled run goes: acknowledged at once, the run stopped at the next
progress flush, and a second Ctrl-C aborts.

The first SIGINT sets a process-wide flag. Progress reporting
(`vecpg.run.progress.emit`, every `log_every` iterations, between compiled chunks or in a
host callback) raises `StopRequested` once the flag is set, and the run stops there
(`TrainingInterrupted`); the main thread waits for results by polling
(`vecpg.training.execute`), so the signal handler runs at once instead of after the
compiled call returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

_stop = threading.Event()
_exit_on_second = [False]  # the CLI's choice: a running XLA computation delays shutdown


def abort_now(signum: int = signal.SIGINT, frame: object = None) -> None:
    print("vecpg: aborted by Ctrl-C; files already written stay as they are", flush=True)
    os._exit(130)


def exit_on_second_ctrl_c(enabled: bool = True) -> None:
    """The CLI's choice: a Ctrl-C outside a run, or a second one during a run, leaves the
    process at once with exit code 130 (every vecpg write is atomic, so nothing is left
    half-written)."""
    _exit_on_second[0] = enabled
    if enabled and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, abort_now)


class StopRequested(Exception):
    """Raised inside the host callback to abort the compiled run after a Ctrl-C."""


class _QuietStop(logging.Filter):
    """JAX logs every failing debug callback with its traceback; a requested stop is no
    failure, so its record is dropped (other callback failures still log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, StopRequested)


logging.getLogger("jax._src.debugging").addFilter(_QuietStop())


def stop_requested() -> bool:
    return _stop.is_set()


def check_stop() -> None:
    if _stop.is_set():
        raise StopRequested("stopped by Ctrl-C")


@contextlib.contextmanager
def ctrl_c_stops(message: str) -> Iterator[None]:
    """While active, the first Ctrl-C prints `message` and asks the run to stop; a second
    raises KeyboardInterrupt (or leaves the process at once, see exit_on_second_ctrl_c)."""
    _stop.clear()
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        if _stop.is_set():
            if _exit_on_second[0]:
                abort_now()
            raise KeyboardInterrupt
        _stop.set()
        print(message, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop.clear()
