"""`vecpg search`: the command-line face of `vecpg.tuning.run.search`."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from vecpg.commands import WandbFlags
from vecpg.config import HPARAM_FIELDS, STATIC_FIELDS, StaticFields, TracedFields, TrainConfig
from vecpg.errors import ConfigError


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
    top: int | None = None
    """Configs re-run on fresh seeds after selection (default 3, or --trials if fewer)."""
    confirm_seeds: int = 8
    """Fresh seeds per top config (seeds .. seeds+confirm_seeds-1, none used to select)."""
    pbt: bool = False
    """Population-based training instead of selection: each seed's trials are one
    population, run against the same configs without PBT (--top and --confirm-seeds
    unused)."""
    pbt_interval: int = 10
    """--pbt: iterations between exploit-and-explore steps."""
    pbt_fraction: float = 0.25
    """--pbt: the bottom quantile that copies a member of the top one, in (0, 0.5]."""
    pbt_resample: float = 0.25
    """--pbt: probability that an explored field is drawn afresh from its space (else
    x0.8 / x1.2, or a choice's neighbour)."""
    out: Annotated[
        str | None,
        tyro.conf.arg(help_behavior_hint="(default: runs/search-<algo>-<env>-<time>)"),
    ] = None
    """Search directory."""
    overwrite: bool = False
    """Replace a non-empty --out."""
    resume: str | None = None
    """Continue the search in this directory with the arguments it was started with
    (finished sweeps are read back, an unfinished one resumes from its checkpoint)."""
    checkpoint_every: int = 0
    """Checkpoint every sweep of the search every N iterations (0: off)."""
    max_runs_per_call: int | None = None
    """Split trials x seeds into calls of this many runs to bound memory."""
    progress: bool = True
    """Show live progress."""


@dataclasses.dataclass(frozen=True)
class SearchCommand(WandbFlags, SearchFlags, TracedFields, StaticFields):
    """Random, Sobol, TPE or CMA-ES search over traced hyperparameters, the top configs
    confirmed on fresh seeds: selection and confirmed scores side by side (the winner's
    curse); or population-based training against the same configs fixed (--pbt).
    --resume DIR continues a stopped search."""


def run_search(cmd: SearchCommand) -> int:
    from vecpg.cli import cli_seeds, default_out
    from vecpg.training.execute import TrainingInterrupted
    from vecpg.tuning.run import DEFAULT_TOP, resume_search, search

    if cmd.resume:
        from vecpg.tuning.stages import read_search

        out = Path(cmd.resume)
        _check_resume_alone(cmd)
        every = read_search(out)[1]["checkpoint_every"]  # one line if it is no search
        try:
            res = resume_search(out, progress=cmd.progress, wandb=cmd.wandb_options())
        except TrainingInterrupted:
            return _stopped(out, every)
        return _print(res, out)
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
            sample_seed=cmd.sample_seed, confirm_seeds=cmd.confirm_seeds,
            top=min(DEFAULT_TOP, max(cmd.trials, 1)) if cmd.top is None else cmd.top,
            rounds=cmd.rounds,
            out=out, overwrite=cmd.overwrite, max_runs_per_call=cmd.max_runs_per_call,
            progress=cmd.progress, pbt_interval=_pbt_interval(cmd),
            pbt_fraction=cmd.pbt_fraction, pbt_resample=cmd.pbt_resample,
            checkpoint_every=cmd.checkpoint_every, wandb=cmd.wandb_options(),
        )  # fmt: skip
    except TrainingInterrupted:
        return _stopped(out, cmd.checkpoint_every)
    return _print(res, out)


def _stopped(out: Path, checkpoint_every: int) -> int:
    from vecpg.run import interrupt

    kept = "the finished sweeps and the last checkpoint" if checkpoint_every else (
        "the finished sweeps (no checkpoints: the stopped one starts again)")  # fmt: skip
    print(f"vecpg: search stopped; {out}/ keeps {kept}; continue it with "
          f"vecpg search --resume {out}", flush=True)  # fmt: skip
    return interrupt.exit_code(interrupt.stopped_by() or signal.SIGINT)


def _print(res: Any, out: Path) -> int:
    from vecpg.tuning.pbt_search import PBTResults

    if isinstance(res, PBTResults):
        print(res.report_markdown().split("\n![")[0].rstrip())
        print(f"wrote {out}/ ({len(res.pbt.seeds)} populations of {len(res.trials)})")
        return 0
    print(res.report_markdown().split("\nEvery trial")[0].rstrip())
    print(f"wrote {out}/ ({len(res.trials)} trials, {len(res.top)} confirmed)")
    return 0


def _check_resume_alone(cmd: SearchCommand) -> None:
    """One line for flags given with --resume that the resumed search would ignore."""
    from vecpg.cli import flags_beside_resume

    flags = flags_beside_resume(cmd)
    if flags:
        raise ConfigError(
            f"invalid resume={cmd.resume!r}: a search resumes with the arguments it "
            f"started with (search.json); leave out {flags}"
        )


def _pbt_interval(cmd: SearchCommand) -> int:
    """--pbt-interval when --pbt is given (checked: >= 1), else 0 (no PBT); a PBT
    setting without --pbt is refused in one line."""
    if not cmd.pbt:
        for name in ("pbt_interval", "pbt_fraction", "pbt_resample"):
            if getattr(cmd, name) != getattr(SearchFlags, name):
                raise ConfigError(
                    f"invalid {name}={getattr(cmd, name)!r}: a PBT setting; add --pbt"
                )
        return 0
    if cmd.pbt_interval < 1:
        raise ConfigError(f"invalid pbt_interval={cmd.pbt_interval}: must be an integer >= 1")
    return cmd.pbt_interval
