"""Full-state checkpoints (orbax) of every lane of a run, and the SIGINT guard.

A checkpoint holds the flattened training state of all lanes (params, optimizer
state, normaliser, env state, RNG keys, lambda/beta), the metrics so far and the
number of iterations done (the orbax step). Orbax writes each step into a temporary
directory and renames it when complete, so a crash mid-write never leaves a corrupt
latest step: `latest_step` only sees finished ones.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHECKPOINT_DIR = "checkpoints"


class CheckpointStore:
    """Save and restore (iterations done, state leaves, metrics) under `directory`."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
            ),
        )

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def save(self, done: int, leaves: list[np.ndarray], metrics: dict[str, np.ndarray]) -> None:
        tree = {
            "state": {f"{i:05d}": np.asarray(x) for i, x in enumerate(leaves)},
            "metrics": {k: np.asarray(v) for k, v in metrics.items()},
        }
        self._manager.save(done, args=self._ocp.args.StandardSave(tree))
        self._manager.wait_until_finished()

    def restore(self) -> tuple[int, list[np.ndarray], dict[str, np.ndarray]] | None:
        """(iterations done, state leaves in order, metrics) of the latest step, or None."""
        step = self.latest()
        if step is None:
            return None
        tree = self._manager.restore(step, args=self._ocp.args.StandardRestore())
        state = tree["state"]
        leaves = [np.asarray(state[k]) for k in sorted(state)]
        metrics = {k: np.asarray(v) for k, v in tree["metrics"].items()}
        return int(step), leaves, metrics

    def close(self) -> None:
        self._manager.close()


class InterruptFlag:
    """Set by the first SIGINT; a second SIGINT raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def sigint_checkpoint(message: str) -> Iterator[InterruptFlag]:
    """While active, Ctrl-C asks the run to stop after the current chunk (which then
    writes a checkpoint) instead of killing it; `message` is printed once."""
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        print(message, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
