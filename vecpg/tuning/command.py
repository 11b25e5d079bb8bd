"""`vecpg search`: the command-line face of `vecpg.tuning.run.search`."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Annotated, Literal

import tyro

from vecpg.config import HPARAM_FIELDS, STATIC_FIELDS, StaticFields, TracedFields, TrainConfig


@dataclasses.dataclass(frozen=True)
class SearchFlags:
    """How `vecpg search` samples, selects and confirms."""

    space: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable: --space learning_rate=log:1e-5:1e-2 --space clip_eps=uniform:0.1:0.3
    --space max_kl=choice:0.005,0.01,0.02 (traced fields only)."""
    trials: int = 32
    """Configs sampled from the space, each run on --seeds seeds (one compiled program)."""
    seeds: int = 2
    """Selection seeds per trial: 0 .. seeds-1."""
    sampler: Literal["random", "sobol", "tpe", "cmaes"] = "random"
    """random: i.i.d. uniform draws (numpy); sobol: a scrambled Sobol sequence (scipy);
    tpe, cmaes: Optuna's samplers, asked a batch per compiled call over --rounds rounds
    (pip install 'vecpg[search]')."""
    rounds: int | None = None
    """tpe / cmaes: ask-and-tell rounds the trials are split over (default 4); random and
    sobol sample every trial at once (1)."""
    sample_seed: int = 0
    """Seed of the sampler."""
    top: int = 3
    """Configs re-run on fresh seeds after selection."""
    confirm_seeds: int = 8
    """Fresh seeds per top config (seeds .. seeds+confirm_seeds-1, none used to select)."""
    out: Annotated[
        str | None,
        tyro.conf.arg(help_behavior_hint="(default: runs/search-<algo>-<env>-<time>)"),
    ] = None
    """Search directory."""
    overwrite: bool = False
    """Replace a non-empty --out."""
    max_runs_per_call: int | None = None
    """Split trials x seeds into calls of this many runs to bound memory."""
    progress: bool = True
    """Show live progress."""


@dataclasses.dataclass(frozen=True)
class SearchCommand(SearchFlags, TracedFields, StaticFields):
    """Random or Sobol search over traced hyperparameters, the top configs confirmed on
    fresh seeds: selection and confirmed scores side by side (the winner's curse)."""


def run_search(cmd: SearchCommand) -> int:
    from vecpg.cli import cli_seeds, default_out
    from vecpg.run import interrupt
    from vecpg.training.execute import TrainingInterrupted
    from vecpg.tuning.run import search

    cfg = TrainConfig(**{n: getattr(cmd, n) for n in (*STATIC_FIELDS, *HPARAM_FIELDS)})
    # the seeds as keys, and the results in host memory, checked in one line each
    cli_seeds(cmd.seeds + max(cmd.confirm_seeds, 0), cfg.num_iterations, max(cmd.trials, 1))
    if cmd.out:
        out = Path(cmd.out)
    else:
        out = default_out(cfg)
        out = out.with_name("search-" + out.name)
    try:
        res = search(
            cfg, cmd.space, cmd.trials, cmd.seeds, sampler=cmd.sampler,
            sample_seed=cmd.sample_seed, top=cmd.top, confirm_seeds=cmd.confirm_seeds,
            rounds=cmd.rounds,
            out=out, overwrite=cmd.overwrite, max_runs_per_call=cmd.max_runs_per_call,
            progress=cmd.progress,
        )  # fmt: skip
    except TrainingInterrupted:
        print(f"vecpg: search stopped; searches keep no checkpoints, so {out}/ holds only "
              "what finished. Start it again with --overwrite", flush=True)  # fmt: skip
        return interrupt.exit_code(interrupt.stopped_by() or signal.SIGINT)
    print(res.report_markdown().split("\nEvery trial")[0].rstrip())
    print(f"wrote {out}/ ({len(res.trials)} trials, {len(res.top)} confirmed)")
    return 0
