"""Ctrl-C or SIGTERM while a compiled run goes: acknowledged at once, the run stopped at
the next chunk boundary (within `log_every` iterations), and a second one aborts.

The first SIGINT or SIGTERM sets a process-wide flag. A run that can be stopped goes in
compiled chunks of at most `log_every` iterations (`vecpg.training.execute`); between
chunks the flag is read (progress reporting, `vecpg.run.progress.emit`, raises
`StopRequested` once it is set) and the run stops there (`TrainingInterrupted`). The main
thread waits for each chunk by polling, so the signal handler runs at once instead of
after the compiled call returns.

Once every iteration is computed (`finishing`), a stop request no longer discards
anything: the run is saved as usual and `late_stop` says so afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator

_stop = threading.Event()
_exit_on_second = [False]  # the CLI's choice: a running XLA computation delays shutdown
_stopped_by = [0]  # the signal of the last stop request (0: none since the last run began)
_finishing = [False]  # every iteration is computed: a stop request discards nothing
_late = [""]  # "": no late stop; "during": in the last chunk; "after": once it was done
_handled = [False]  # inside ctrl_c_stops on the main thread: a stop can be requested

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def signal_name(signum: int) -> str:
    return SIGNAL_NAMES.get(signal.Signals(signum), signal.Signals(signum).name)


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by `signum` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def abort_now(signum: int = signal.SIGINT, frame: object = None) -> None:
    print(
        f"vecpg: aborted by {signal_name(signum)}; files already written stay as they are",
        flush=True,
    )
    os._exit(exit_code(signum))


def exit_on_second_ctrl_c(enabled: bool = True) -> None:
    """The CLI's choice: a Ctrl-C or SIGTERM outside a run, or a second one during a run,
    leaves the process at once with exit code 130 (SIGTERM: 143); every vecpg write is
    atomic, so nothing is left half-written."""
    _exit_on_second[0] = enabled
    if enabled and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, abort_now)
        signal.signal(signal.SIGTERM, abort_now)


class StopRequested(Exception):
    """Raised by `check_stop` (between chunks) to stop the run after a Ctrl-C."""


class _QuietStop(logging.Filter):
    """JAX logs every failing debug callback with its traceback; a requested stop is no
    failure, so its record is dropped (other callback failures still log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, StopRequested)


logging.getLogger("jax._src.debugging").addFilter(_QuietStop())


def stop_requested() -> bool:
    return _stop.is_set()


def stops_possible() -> bool:
    """Whether a Ctrl-C or SIGTERM can ask the current run to stop (inside `ctrl_c_stops`
    on the main thread; signal handlers cannot be set from other threads)."""
    return _handled[0]


def check_stop() -> None:
    if _stop.is_set() and not _finishing[0]:
        raise StopRequested("stopped by Ctrl-C")


def stopped_by() -> int:
    """The signal that asked the last run to stop (0: none). Kept after `ctrl_c_stops`
    ends, until the next run begins."""
    return _stopped_by[0]


def finishing() -> None:
    """Every iteration of the run is computed: from now on a stop request is acknowledged
    but discards nothing (the results are saved as usual). Only the main thread's run
    can be stopped, so a run on another thread changes nothing here."""
    if threading.current_thread() is not threading.main_thread():
        return
    _finishing[0] = True
    if _stop.is_set() and not _late[0]:
        _late[0] = "during"


def late_stop() -> str:
    """After a run that completed: "" when no stop was asked for, "during" when it came
    while the last iterations were being computed, "after" when it came once they were
    (always "" on another thread than the main one, whose runs cannot be stopped)."""
    if threading.current_thread() is not threading.main_thread():
        return ""
    return _late[0]


def stop_within(num_iterations: int, log_every: int, checkpoint_every: int) -> int:
    """Iterations per compiled chunk of a run that can be stopped, hence the most a stop
    waits for: `log_every`, or its gcd with `checkpoint_every` so that checkpoints fall on
    chunk boundaries (never more than the run)."""
    length = math.gcd(checkpoint_every, log_every) if checkpoint_every else log_every
    return max(1, min(length, num_iterations))


def iterations(n: int) -> str:
    return f"{n} iteration" if n == 1 else f"{n} iterations"


@contextlib.contextmanager
def ctrl_c_stops(message: str | Callable[[str], str]) -> Iterator[None]:
    """While active, the first Ctrl-C or SIGTERM prints `message` (a callable gets the
    signal's name) and asks the run to stop; a second raises KeyboardInterrupt for Ctrl-C
    and ends the process by SIGTERM for SIGTERM (the CLI leaves at once either way, see
    exit_on_second_ctrl_c). A SIGTERM handler of the caller's own is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    _stop.clear()
    _stopped_by[0] = 0
    _finishing[0] = False
    _late[0] = ""

    def say(name: str) -> str:
        return message(name) if callable(message) else message

    def handler(signum, frame):
        if _stop.is_set():
            if _exit_on_second[0]:
                abort_now(signum)
            if signum == signal.SIGTERM:  # what the process would have done without vecpg
                signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
                os.kill(os.getpid(), signal.SIGTERM)
                return
            raise KeyboardInterrupt
        _stopped_by[0] = signum
        _stop.set()
        name = signal_name(signum)
        if _finishing[0]:
            _late[0] = "after"
            print(
                f"vecpg: {name}: training has finished; saving the results first "
                f"({name} again to abort at once)",
                flush=True,
            )
        else:
            print(say(name), flush=True)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, handler)}
    term = signal.getsignal(signal.SIGTERM)
    if term in (signal.SIG_DFL, abort_now):  # not a handler of the caller's own
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)
    _handled[0] = True
    try:
        yield
    finally:
        _handled[0] = False
        for signum, before in previous.items():
            signal.signal(signum, before)
        _stop.clear()
        _finishing[0] = False
