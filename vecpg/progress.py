"""Live progress from inside the compiled run.

The compiled program calls `emit` through `jax.debug.callback`, once per seed every
`log_every` iterations. `emit` forwards to whichever reporter is active on the host, so
the compiled program does not depend on the reporter and can be cached.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np

_active: list[ProgressReporter] = []
_lock = threading.Lock()


def emit(iteration, env_steps, episode_return) -> None:
    """Host side of the callback: one value per seed lane."""
    if _active:
        _active[-1].record(int(iteration), int(env_steps), float(episode_return))


class ProgressReporter:
    """Collects per-seed values; when all seeds reported an iteration, shows a line with
    env steps, steps/s (all seeds), ETA, mean and best return across seeds. Uses a rich
    progress bar on a terminal, plain lines otherwise."""

    def __init__(self, num_seeds: int, total_steps_per_seed: int, rich: bool | None = None):
        self.num_seeds = num_seeds
        self.total = total_steps_per_seed
        self.rich = sys.stdout.isatty() if rich is None else rich
        self._pending: dict[int, list[float]] = {}
        self._start = time.perf_counter()
        self._last_plain = -1.0
        self._bar = None
        self.lines: list[str] = []

    def record(self, iteration: int, env_steps: int, ret: float) -> None:
        with _lock:
            vals = self._pending.setdefault(iteration, [])
            vals.append(ret)
            if len(vals) < self.num_seeds:
                return
            del self._pending[iteration]
        self.show(env_steps, np.array(vals))

    def show(self, env_steps: int, returns: np.ndarray) -> None:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        sps = env_steps * self.num_seeds / elapsed
        eta = (self.total - env_steps) * self.num_seeds / max(sps, 1e-9)
        text = (
            f"steps {env_steps:,}/{self.total:,}  {sps:,.0f} steps/s  ETA {eta:4.0f}s  "
            f"return mean {returns.mean():8.2f}  best {returns.max():8.2f}"
        )
        self.lines.append(text)
        if self._bar is not None:
            progress, task = self._bar
            progress.update(task, completed=env_steps, description=text)
        elif elapsed - self._last_plain >= 5.0 or env_steps >= self.total:
            self._last_plain = elapsed
            print(text, flush=True)

    def start(self) -> None:
        self._start = time.perf_counter()
        if self.rich:
            from rich.progress import BarColumn, Progress, TextColumn

            progress = Progress(TextColumn("{task.description}"), BarColumn())
            progress.start()
            self._bar = (progress, progress.add_task("compiling done, training", total=self.total))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None


@contextlib.contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    _active.append(reporter)
    try:
        yield reporter
    finally:
        reporter.stop()
        _active.remove(reporter)
