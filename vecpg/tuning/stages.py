"""A search's sweeps as resumable stages, and its arguments as search.json records them.

`vecpg search` writes search.json (the base config and every argument) before it runs
anything; `resume_search` reads it back, checked in one line, and re-runs the search:
each stage (a sweep in its own run dir) that finished is read back, the one that was
running continues from its last checkpoint, and the rest run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vecpg.config import TrainConfig
from vecpg.errors import ConfigError
from vecpg.run.rundir import SweepResults
from vecpg.run.tracking import WandbOptions

ARGS = "search.json"  # the config and the search's arguments, for resume_search
SEARCH_ARGS = (
    "space", "trials", "seeds", "sampler", "sample_seed", "top", "confirm_seeds", "rounds",
    "max_runs_per_call", "pbt_interval", "pbt_fraction", "pbt_resample", "checkpoint_every",
)  # fmt: skip


def read_search(out: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """(base config, arguments) of the search in `out`; one line if it has none or its
    search.json is not one vecpg wrote."""
    where = f"invalid resume={str(out)!r}"
    if not (out / ARGS).exists():
        raise ConfigError(f"{where}: not a search dir (no {ARGS})")
    try:
        saved = json.loads((out / ARGS).read_text())
        config = TrainConfig.from_dict(saved["config"])
        args = {name: saved["args"][name] for name in SEARCH_ARGS}
    except ConfigError as e:
        raise ConfigError(f"{where}: {ARGS} holds a config vecpg refuses ({e})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        why = f"no {e}" if isinstance(e, KeyError) else type(e).__name__
        raise ConfigError(
            f"{where}: {ARGS} is corrupt ({why}); the search cannot be resumed"
        ) from None
    return config, args


def run_stage(
    config: TrainConfig,
    path: Path,
    points: list[dict[str, float]],
    seeds: list[int],
    pbt: dict | None = None,
    *,
    max_runs_per_call: int | None,
    checkpoint_every: int,
    progress: bool,
    wandb: WandbOptions | None,
    resuming: bool,
) -> SweepResults:
    """One sweep of a search (`points` x `seeds`; PBT populations with `pbt`) in `path`:
    read back when it finished, resumed from its checkpoint when it began (resuming a
    search), else run."""
    from vecpg.run.api import resume, sweep_points
    from vecpg.run.files import LAUNCH_FILE, SUMMARY_FILE
    from vecpg.run.rundir import load_sweep

    if resuming and (path / SUMMARY_FILE).exists():
        return load_sweep(path)
    if resuming and (path / LAUNCH_FILE).exists():
        out = resume(path, progress, wandb)
        assert isinstance(out, SweepResults)
        return out
    return sweep_points(config, points, seeds, max_runs_per_call, progress, out=path,
                        overwrite=resuming, checkpoint_every=checkpoint_every, wandb=wandb,
                        pbt=pbt)  # fmt: skip
