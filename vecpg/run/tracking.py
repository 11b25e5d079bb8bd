"""Weights & Biases logging that never blocks training.

One W&B run per lane (a vmapped (hyperparameter config, seed) slot), grouped under the
experiment name, with the full config and `env_steps` as every metric's x-axis, plus
one aggregate run per config (mean and 95% CI of the return across seeds, and the final
curves.png). Metrics arrive through `vecpg.run.progress.emit` after each compiled chunk
and are only queued there; a worker thread owns every W&B call, so neither a slow
network nor a W&B failure can stall or stop the compiled run. The run dir's metrics.npz
is written regardless.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import netrc
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import numpy as np

from vecpg.analysis.stats import mean_ci95
from vecpg.errors import ConfigError

WANDB_MODES = ("disabled", "offline", "online")
DEFAULT_BASE_URL = "https://api.wandb.ai"
IDS_FILE = "wandb_ids.json"  # W&B run name -> W&B run id, for resume


@dataclasses.dataclass(frozen=True)
class WandbOptions:
    """Where and how to log. `group` defaults to the run directory's name."""

    mode: str = "disabled"
    project: str = "vecpg"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in WANDB_MODES:
            raise ConfigError(f"invalid wandb={self.mode!r}: allowed: {', '.join(WANDB_MODES)}")
        if not isinstance(self.project, str) or not self.project:
            raise ConfigError(f"invalid wandb_project={self.project!r}: must be a non-empty name")
        for name in ("entity", "group"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"invalid wandb_{name}={value!r}: must be a non-empty name or None"
                )
        tags = self.tags
        if isinstance(tags, str) or not isinstance(tags, (tuple, list)):
            raise ConfigError(
                f"invalid wandb_tags={tags!r}: must be a tuple of strings, e.g. ('baseline',)"
            )
        if not all(isinstance(t, str) and t for t in tags):
            raise ConfigError(f"invalid wandb_tags={tags!r}: every tag must be a non-empty string")
        object.__setattr__(self, "tags", tuple(tags))  # a list given is kept as a tuple


@dataclasses.dataclass(frozen=True)
class WandbRunSpec:
    """One W&B run: its name, config and the index of its config point (for aggregates)."""

    name: str
    config: dict[str, Any]
    point: int = 0


def has_api_key(base_url: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(base_url).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def reachable(base_url: str, timeout: float = 3.0) -> bool:
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_mode(mode: str) -> tuple[str, str | None]:
    """The mode to use and, if it had to change, a one-line reason. `online` falls back
    to `offline` without an API key or when the W&B host cannot be reached."""
    if mode != "online":
        return mode, None
    base_url = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    if not has_api_key(base_url):
        return "offline", "no W&B API key (WANDB_API_KEY or `wandb login`)"
    if not reachable(base_url):
        return "offline", f"W&B host {base_url} unreachable"
    return "online", None


class WandbLogger:
    """A `vecpg.progress` sink: `record` only enqueues; the worker thread logs."""

    def __init__(
        self,
        options: WandbOptions,
        specs: Sequence[WandbRunSpec],
        wandb_dir: str | Path,
        group: str,
        log=print,
    ):
        self.options = options
        self.specs = list(specs)  # specs[i] describes the W&B run of lane i
        self.dir = Path(wandb_dir)
        self.group = options.group or group
        self.log = log
        self.mode, reason = resolve_mode(options.mode)
        if reason:
            self.log(f"vecpg: {reason}: logging W&B offline to {self.dir}/wandb (`wandb sync`)")
        self.failed: str | None = None
        self.run_ids: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._logged = [-1] * len(self.specs)
        self._lanes_per_point = collections.Counter(spec.point for spec in self.specs)
        self._agg: dict[tuple[int, int], list[tuple[float, float, bool]]] = {}
        self._thread = threading.Thread(target=self._work, name="vecpg-wandb", daemon=True)
        self._thread.start()

    # --- main-thread side -------------------------------------------------------------
    def record(self, lane: int, iteration: int, buffer: dict[str, np.ndarray]) -> None:
        self._queue.put(("log", lane, iteration, buffer))

    def finish(self, curves_png: Path | None, summaries: Sequence[dict], timeout: float = 120.0):
        """Log the curves image and per-run summaries, close every run; waits at most
        `timeout` s (an unreachable service keeps its data in the local run files)."""
        self._queue.put(("finish", curves_png, list(summaries)))
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.log(f"vecpg: W&B still busy after {timeout:.0f}s; local files are in {self.dir}")

    # --- worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._runs, self._agg_runs = self._init_runs()
        except Exception as e:  # W&B must never stop training
            self._fail(e)
        while True:
            item = self._queue.get()
            if self.failed:
                if item[0] == "finish":
                    return
                continue
            try:
                if item[0] == "log":
                    self._log_buffer(*item[1:])
                else:
                    self._finish(*item[1:])
                    return
            except Exception as e:
                self._fail(e)

    def _fail(self, e: Exception) -> None:
        self.failed = f"{type(e).__name__}: {e}".splitlines()[0]
        self.log(f"vecpg: W&B logging stopped ({self.failed}); training goes on, see the run dir")

    def _init_runs(self):
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True, console="off", x_disable_stats=True, disable_git=True, init_timeout=60
        )
        common = dict(
            project=self.options.project,
            entity=self.options.entity,
            group=self.group,
            tags=list(self.options.tags),
            mode=self.mode,
            dir=str(self.dir),
            reinit="create_new",
            settings=settings,
        )
        ids_file = self.dir / IDS_FILE
        ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
        if ids:  # a resumed run continues the same W&B runs
            common["resume"] = "allow"
        runs = [
            wandb.init(
                name=spec.name,
                config=spec.config,
                job_type="train",
                id=ids.get(spec.name),
                **common,
            )
            for spec in self.specs
        ]
        points = sorted({spec.point for spec in self.specs})
        agg = {}
        for p in points:
            first = next(spec for spec in self.specs if spec.point == p)
            cfg = {k: v for k, v in first.config.items() if k != "seed"}
            name = f"{self.group}-aggregate" + (f"-{p}" if len(points) > 1 else "")
            agg[p] = wandb.init(
                name=name, config=cfg, job_type="aggregate", id=ids.get(name), **common
            )
        for run in [*runs, *agg.values()]:
            run.define_metric("env_steps")
            run.define_metric("*", step_metric="env_steps")
        self.run_ids = [r.id for r in runs]
        names = [spec.name for spec in self.specs] + [r.name for r in agg.values()]
        ids = dict(zip(names, [*self.run_ids, *(r.id for r in agg.values())], strict=True))
        tmp = ids_file.with_name(f".{IDS_FILE}.tmp")
        tmp.write_text(json.dumps(ids, indent=2))
        os.replace(tmp, ids_file)
        return runs, agg

    def _log_buffer(self, lane: int, iteration: int, buffer: dict[str, np.ndarray]) -> None:
        size = len(buffer["env_steps"])
        run = self._runs[lane]
        point = self.specs[lane].point
        for it in range(max(self._logged[lane] + 1, iteration - size + 1), iteration + 1):
            row = {k: float(v[it % size]) for k, v in buffer.items()}
            run.log(row)
            time.sleep(0)  # hand the GIL to a waiting host callback: the device waits on it
            vals = self._agg.setdefault((point, it), [])
            vals.append((row["env_steps"], row["episode_return"], row.get("diverged", 0.0) > 0))
            if len(vals) == self._lanes_per_point[point]:
                self._agg_runs[point].log(aggregate_row(vals))
                del self._agg[(point, it)]
        self._logged[lane] = max(self._logged[lane], iteration)

    def _finish(self, curves_png: Path | None, summaries: list[dict]) -> None:
        import wandb

        for run, summary in zip(self._runs, summaries, strict=False):
            run.summary.update(summary)
        for run in self._agg_runs.values():
            if curves_png is not None and Path(curves_png).exists():
                run.log({"curves": wandb.Image(str(curves_png))})
        for run in [*self._runs, *self._agg_runs.values()]:
            run.finish()


def aggregate_row(vals: list[tuple[float, float, bool]]) -> dict[str, float]:
    """The aggregate run's row of one iteration from every lane's (env steps, return,
    diverged): statistics of the lanes that never diverged and have a return (NaN when
    none has), and how many diverged (as in the run dir's curves and scores)."""
    returns = np.array([r for _, r, bad in vals if not bad and not np.isnan(r)])
    mean, lo, hi = mean_ci95(returns)
    return {
        "env_steps": vals[0][0],
        "return_mean": float(mean),
        "return_ci95_low": float(lo),
        "return_ci95_high": float(hi),
        "return_best": float(returns.max()) if returns.size else float("nan"),
        "diverged_seeds": float(sum(bad for _, _, bad in vals)),
    }


def log_html(options: WandbOptions, run_dir: Path, name: str, html_file: Path) -> None:
    """Log a rendered episode (`wandb.Html`) as its own run in the run dir's W&B group."""
    import wandb

    mode, reason = resolve_mode(options.mode)
    if reason:
        print(f"vecpg: {reason}: logging W&B offline to {run_dir}/wandb")
    try:
        run = wandb.init(
            project=options.project,
            entity=options.entity,
            group=options.group or run_dir.name,
            name=name,
            job_type="render",
            mode=cast(Any, mode),  # checked against WANDB_MODES
            dir=str(run_dir),
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        run.log({"rollout": wandb.Html(html_file.read_text())})
        run.finish()
    except Exception as e:  # the file is written; W&B is a bonus
        print(f"vecpg: W&B logging failed ({type(e).__name__}: {e}); {html_file} is written")
