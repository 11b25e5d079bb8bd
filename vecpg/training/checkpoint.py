"""Full-state checkpoints (orbax) of every lane of a run.

A checkpoint holds the flattened training state of all lanes (params, optimizer
state, normaliser, env state, RNG keys, lambda/beta), the metrics so far and the
number of iterations done (the orbax step). Orbax writes each step into a temporary
directory and renames it when complete, so a crash mid-write never leaves a corrupt
latest step: `latest_step` only sees finished ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vecpg.errors import ConfigError, RunFailed, disk_full, quoted
from vecpg.output import LineFilter

CHECKPOINT_DIR = "checkpoints"


class _Held:
    drop = False  # disk full: discard, and let only vecpg's lines through from now on
    discard = False  # discard what was held, then carry on as before


@contextlib.contextmanager
def stderr_held_back() -> Iterator[_Held]:
    """Hold back what is written to file descriptor 2 (C++ and Python threads alike);
    write it out afterwards unless `held.drop` was set. After a drop, orbax's writer
    threads go on failing until the process ends, so from then on stderr passes only
    vecpg's own lines."""
    held = _Held()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            if held.drop:
                with open(os.devnull, "wb") as devnull:
                    os.dup2(devnull.fileno(), 2)
                sys.stderr = LineFilter(
                    os.fdopen(saved, "w"), lambda line: line.startswith("vecpg:"), flush_each=True
                )
            else:
                os.dup2(saved, 2)
                os.close(saved)
                if not held.discard:
                    buffer.seek(0)
                    os.write(2, buffer.read())


class CheckpointStore:
    """Save and restore (iterations done, state leaves, metrics) under `directory`."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.CRITICAL)  # a corrupt step is reported by restore, in one line
        try:
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
                ),
                item_handlers=ocp.StandardCheckpointHandler(),  # so metadata reads at once
            )
        finally:
            absl.setLevel(level)

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def save(self, done: int, leaves: list[Any], metrics: dict[str, np.ndarray]) -> None:
        """Write step `done`. `leaves` are the state's arrays, sharded over the lanes axis:
        with several processes, each process writes its own shards (orbax). Orbax refuses
        zero-size arrays (the mjx backend's state has some): each is stored as its shape
        alone. A full disk raises RunFailed; the previous step stays the latest."""
        state, empty = {}, {}
        for i, x in enumerate(leaves):
            if x.size == 0:
                empty[f"{i:05d}"] = [int(n) for n in x.shape]
            else:
                state[f"{i:05d}"] = x
        tree = {"state": state, "metrics": {k: np.asarray(v) for k, v in metrics.items()}}
        save = self._ocp.args.StandardSave(tree, custom_metadata={"empty_shapes": empty})
        try:
            with stderr_held_back() as held:
                try:
                    self._manager.save(done, args=save)
                    self._manager.wait_until_finished()
                except Exception as e:
                    held.drop = disk_full(e)  # orbax's threads print dozens of tracebacks
                    raise
        except Exception as e:
            if disk_full(e):
                kept = (
                    f"; the checkpoint of iteration {self.latest()} is kept"
                    if self.latest()
                    else ""
                )
                raise RunFailed(f"disk full while writing {quoted(self.directory)}{kept}") from None
            raise

    def restore(self, like: list[Any]) -> tuple[int, list[Any], dict[str, np.ndarray]] | None:
        """(iterations done, state leaves, metrics) of the latest step, or None. `like`:
        this run's state leaves (sharded arrays); the state comes back with their
        shapes and shardings, each process reading its own shards. One line if that
        step cannot be read or does not match `like`."""
        import jax

        with stderr_held_back() as held:  # orbax logs its own error before raising
            step = self.latest()
            if step is None:
                return None
            path = quoted(self.directory / str(step))
            try:
                metadata = self._manager.item_metadata(step)
                saved = metadata.tree
                custom = metadata.custom_metadata or {}
                empty = {k: tuple(v) for k, v in custom.get("empty_shapes", {}).items()}
            except Exception as e:
                held.discard = True
                raise unreadable(path, e) from None
            keys = sorted([*saved["state"], *empty])
            shapes = [empty[k] if k in empty else tuple(saved["state"][k].shape) for k in keys]
            if shapes != [tuple(x.shape) for x in like]:
                held.discard = True
                raise ConfigError(
                    "invalid resume: the checkpoint does not match this run's config.json "
                    "(state shapes differ: was config.json edited, or was the run saved by "
                    "another vecpg version?)"
                )
            target = {
                "state": {
                    k: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                    for k, x in zip(keys, like, strict=True)
                    if k not in empty
                },
                "metrics": {k: np.zeros(m.shape, m.dtype) for k, m in saved["metrics"].items()},
            }
            try:
                tree = self._manager.restore(step, args=self._ocp.args.StandardRestore(target))
            except Exception as e:
                held.discard = True
                raise unreadable(path, e) from None
        leaves = [
            _zeros_like(x) if k in empty else tree["state"][k]
            for k, x in zip(keys, like, strict=True)
        ]
        metrics = {k: np.asarray(v) for k, v in tree["metrics"].items()}
        return int(step), leaves, metrics

    def close(self) -> None:
        self._manager.close()


def unreadable(path: str, e: Exception) -> ConfigError:
    return ConfigError(
        f"invalid resume: checkpoint {path} cannot be read ({type(e).__name__}); "
        "remove it to resume from the one before, if any"
    )


def _zeros_like(x: Any) -> Any:
    """A zero-size array with `x`'s shape, dtype and sharding (nothing to read back)."""
    import jax

    return jax.make_array_from_callback(
        x.shape, x.sharding, lambda idx: np.zeros(x.shape, x.dtype)[idx]
    )
