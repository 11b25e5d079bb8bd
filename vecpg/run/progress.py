"""Live progress, and the hook W&B logging uses.

`emit(lanes, iteration, buffer)` gets every lane's metrics of the last `log_every`
iterations, slot `i % log_every` for iteration i. vecpg's runs call it from the host
between compiled chunks (`vecpg.training.execute.HostRing`); a program built with
`make_train(static, emit)` calls it through `jax.debug.callback` instead. `emit`
forwards to whichever sinks are active, so the compiled program does not depend on
them. Sinks must return quickly: the next chunk waits for them.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from vecpg.run.interrupt import check_stop

_sinks: list[Any] = []
_lock = threading.Lock()


class Sink(Protocol):
    def record(self, lane: int, iteration: int, buffer: dict[str, np.ndarray]) -> None: ...


def emit(lanes, iteration, buffer) -> None:
    """Called from the compiled run with every lane at once: lanes [R], buffer leaves
    [log_every, R]. Forwards each real lane (id >= 0; -1 is padding) to the sinks."""
    check_stop()  # a Ctrl-C aborts the compiled run here (see vecpg.run.interrupt)
    if not _sinks:
        return
    lanes = np.asarray(lanes)
    buffer = {k: np.asarray(v) for k, v in buffer.items()}
    iteration = int(iteration)
    for r, lane in enumerate(lanes.tolist()):
        if lane < 0:
            continue
        mine = {k: v[:, r] for k, v in buffer.items()}
        for sink in list(_sinks):
            sink.record(lane, iteration, mine)


@contextlib.contextmanager
def sinks_active(sinks: Sequence[Sink]) -> Iterator[None]:
    _sinks.extend(sinks)
    try:
        yield
    finally:
        for s in sinks:
            _sinks.remove(s)
            if hasattr(s, "stop"):
                s.stop()


def latest(buffer: dict[str, np.ndarray], iteration: int, name: str) -> float:
    """The value of metric `name` at `iteration` from a callback buffer."""
    return float(buffer[name][iteration % len(buffer[name])])


class ProgressReporter:
    """Collects per-lane values; when every lane of the current call has reported an
    iteration, shows env steps, steps/s (all lanes), ETA, and the mean and best return
    across the lanes that have a return and never diverged (diverged lanes are counted
    apart). A rich progress bar on a terminal, plain lines every 5 s otherwise."""

    def __init__(self, num_lanes: int, total_steps_per_lane: int, rich: bool | None = None):
        self.num_lanes = num_lanes
        self.total = total_steps_per_lane
        self.rich = sys.stdout.isatty() if rich is None else rich
        self._expected = num_lanes
        self._pending: dict[int, list[float]] = {}
        self._returns: dict[int, float] = {}
        self._diverged: set[int] = set()
        self._start = time.perf_counter()
        self._steps_at_start = 0
        self._last_plain = -1.0
        self._bar: Any = None  # (rich Progress, task id) while a bar is shown
        self.lines: list[str] = []

    def expect(self, lanes_in_call: int) -> None:
        self._expected = lanes_in_call

    def record(self, lane: int, iteration: int, buffer: dict[str, np.ndarray]) -> None:
        ret = latest(buffer, iteration, "episode_return")
        with _lock:
            self._returns[lane] = ret
            if "diverged" in buffer and latest(buffer, iteration, "diverged") > 0:
                self._diverged.add(lane)
            vals = self._pending.setdefault(iteration, [])
            vals.append(ret)
            if len(vals) < self._expected:
                return
            del self._pending[iteration]
            healthy = [r for k, r in self._returns.items() if k not in self._diverged]
            returns = np.array([r for r in healthy if not np.isnan(r)])
            diverged = len(self._diverged)
        self.show(int(latest(buffer, iteration, "env_steps")), returns, diverged)

    def show(self, env_steps: int, returns: np.ndarray, diverged: int = 0) -> None:
        """returns: of the lanes with a return that never diverged (maybe none)."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        sps = max(env_steps * self.num_lanes - self._steps_at_start, 0) / elapsed
        eta = (self.total - env_steps) * self.num_lanes / max(sps, 1e-9)
        text = f"steps {env_steps:,}/{self.total:,}  {sps:,.0f} steps/s  ETA {eta:4.0f}s  "
        if returns.size:
            text += f"return mean {returns.mean():8.2f}  best {returns.max():8.2f}"
        else:
            text += "no episode finished yet" if not diverged else "no healthy lane"
        if diverged:
            text += f"  ({diverged} diverged, left out)"
        self.lines.append(text)
        if self._bar is not None:
            progress, task = self._bar
            progress.update(task, completed=env_steps, description=text)
        elif elapsed - self._last_plain >= 5.0 or env_steps >= self.total:
            self._last_plain = elapsed
            print(text, flush=True)

    def start(self, steps_done_all_lanes: int = 0) -> None:
        self._start = time.perf_counter()
        self._steps_at_start = steps_done_all_lanes
        if self.rich:
            from rich.progress import BarColumn, Progress, TextColumn

            progress = Progress(TextColumn("{task.description}"), BarColumn())
            progress.start()
            self._bar = (progress, progress.add_task("compiling done, training", total=self.total))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
