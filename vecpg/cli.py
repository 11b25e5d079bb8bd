"""The `vecpg` command line (tyro): `vecpg train ...`, `vecpg envs`."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from vecpg.bench.plan import BenchPlan
from vecpg.cli_args import check_args, parse
from vecpg.commands import (
    CompareCommand,
    EnvsCommand,
    EvalCommand,
    RenderCommand,
    WandbFlags,
    run_bench_cmd,
    run_compare,
    run_envs,
    run_eval,
    run_render,
)
from vecpg.config import HPARAM_FIELDS, STATIC_FIELDS, StaticFields, TracedFields, TrainConfig
from vecpg.errors import ConfigError, RunFailed, quoted
from vecpg.run.distributed import Cluster
from vecpg.studies.command import StudyCommand, run_study_cmd
from vecpg.tuning.command import SearchCommand, run_search

if TYPE_CHECKING:
    from vecpg.run.rundir import Results, SweepResults


@dataclasses.dataclass(frozen=True)
class TrainRunFlags:
    """How `vecpg train` launches (not part of the training config)."""

    seeds: int = 8
    """Number of seeds (0..seeds-1), vmapped into one compiled program."""
    out: Annotated[
        str | None, tyro.conf.arg(help_behavior_hint="(default: runs/<algo>-<env>-<time>)")
    ] = None
    """Run directory."""
    overwrite: bool = False
    """Replace a non-empty --out (its old contents are removed when the new run starts)."""
    progress: bool = True
    """Show live progress while the compiled run goes."""
    checkpoint_every: int = 100
    """Checkpoint every seed's full state every N iterations (0: off)."""
    resume: str | None = None
    """Continue the checkpointed run in this dir (its config.json and run.json are used)."""


@dataclasses.dataclass(frozen=True)
class TrainCommand(Cluster, WandbFlags, TrainRunFlags, TracedFields, StaticFields):
    """Train one config on many seeds in one compiled call; write a run dir."""


@dataclasses.dataclass(frozen=True)
class SweepRunFlags:
    """How `vecpg sweep` launches."""

    grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable: --grid lr=3e-4,1e-3 --grid max_kl=0.005,0.01 (traced fields only)."""
    seeds: int = 4
    """Seeds per grid point."""
    max_runs_per_call: int | None = None
    """Split grid x seeds into calls of this many runs (rounded up to one per device) to
    bound memory. Each run keeps its device layout; results match the unchunked sweep to
    float32 rounding, not bit for bit, and a long run can drift from there."""
    out: Annotated[
        str | None,
        tyro.conf.arg(help_behavior_hint="(default: runs/sweep-<algo>-<env>-<time>)"),
    ] = None
    """Sweep directory."""
    overwrite: bool = False
    """Replace a non-empty --out (its old contents are removed when the sweep starts)."""
    progress: bool = True
    """Show live progress."""
    checkpoint_every: int = 100
    """Checkpoint every lane's full state every N iterations (0: off)."""
    resume: str | None = None
    """Continue the checkpointed sweep in this dir (its config.json and run.json are used)."""


@dataclasses.dataclass(frozen=True)
class SweepCommand(Cluster, WandbFlags, SweepRunFlags, TracedFields, StaticFields):
    """Sweep traced hyperparameters: grid x seeds as one compiled call (sharded over all
    devices), ranked by IQM of final return with 95% bootstrap CIs."""


def config_from(cmd: TrainCommand | SweepCommand) -> TrainConfig:
    """The validated TrainConfig carried by a command's config fields."""
    return TrainConfig(**{name: getattr(cmd, name) for name in (*STATIC_FIELDS, *HPARAM_FIELDS)})


def cluster_of(cmd: TrainCommand | SweepCommand) -> Cluster:
    """The command's multi-process flags (`vecpg.run.distributed`)."""
    return Cluster(**{f.name: getattr(cmd, f.name) for f in dataclasses.fields(Cluster)})


RESUME_KEEPS = ("resume", "progress", "wandb", "wandb_project", "wandb_entity", "wandb_group",
                "wandb_tags", *(f.name for f in dataclasses.fields(Cluster)))  # fmt: skip


def flags_beside_resume(cmd: Any) -> str:
    """'--trials, --seeds': the flags given with --resume other than those it keeps
    (progress, W&B, cluster), comma-separated; empty if none."""
    default = type(cmd)()
    given = [
        f.name
        for f in dataclasses.fields(cmd)
        if f.name not in RESUME_KEEPS and getattr(cmd, f.name) != getattr(default, f.name)
    ]
    return ", ".join("--" + name.replace("_", "-") for name in given)


def check_resume_alone(cmd: TrainCommand | SweepCommand) -> None:
    """--resume takes everything from the run dir: any other launch flag is an error."""
    flags = flags_beside_resume(cmd)
    if flags:
        raise ConfigError(
            f"invalid resume={cmd.resume!r}: {flags} cannot be combined with --resume "
            "(the run dir's config.json and run.json are used)"
        )


def default_out(cfg: TrainConfig) -> Path:
    env = cfg.env.replace("/", "-")
    return Path("runs") / f"{cfg.algo}-{env}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_train(cmd: TrainCommand) -> int:
    from vecpg.run.api import train

    if cmd.resume:
        return resume_run(cmd)
    cfg = config_from(cmd)
    seeds = cli_seeds(cmd.seeds, cfg.num_iterations)
    out = Path(cmd.out) if cmd.out else default_out(cfg)
    call = functools.partial(
        train,
        cfg,
        seeds,
        progress=cmd.progress,
        run_dir=out,
        overwrite=cmd.overwrite,
        checkpoint_every=cmd.checkpoint_every,
        wandb=cmd.wandb_options(),
        cluster=cluster_of(cmd),
    )
    return finish(call, out, "train")


def run_sweep(cmd: SweepCommand) -> int:
    from vecpg.run.api import sweep
    from vecpg.run.launch import parse_grid_args

    if cmd.resume:
        return resume_run(cmd)
    cfg = config_from(cmd)
    check_grid_names(cmd.grid)
    grid = parse_grid_args(cmd.grid)
    if not grid:
        raise ConfigError("invalid grid=(): give at least one --grid name=v1,v2")
    seeds = cli_seeds(cmd.seeds, cfg.num_iterations, math.prod(len(v) for v in grid.values()))
    if cmd.out:
        out = Path(cmd.out)
    else:
        out = default_out(cfg)
        out = out.with_name("sweep-" + out.name)
    call = functools.partial(
        sweep,
        cfg,
        grid,
        seeds,
        cmd.max_runs_per_call,
        cmd.progress,
        out=out,
        overwrite=cmd.overwrite,
        checkpoint_every=cmd.checkpoint_every,
        wandb=cmd.wandb_options(),
        cluster=cluster_of(cmd),
    )
    return finish(call, out, "sweep")


SEED_LIMIT = 2**32  # seeds are 0..seeds-1, each a uint32 jax.random.key
LANE_HOST_BYTES = 128  # per run on the host beyond its metrics: its seed, name, bookkeeping


def cli_seeds(n: int, iterations: int = 1, points: int = 1) -> list[int]:
    """[0..n-1] for `--seeds n`, refused in one line before the list is built when the
    seeds cannot be keys or the results of n x `points` runs of `iterations` iterations
    cannot fit in host memory (the host half of `vecpg.run.memory`'s estimate)."""
    from vecpg.run.memory import NUM_METRICS_BOUND, USABLE_FRACTION, gib, host_available_bytes

    if n < 1:
        raise ConfigError(f"invalid seeds={n}: must be an integer >= 1")
    if n > SEED_LIMIT:
        raise ConfigError(
            f"invalid seeds={n}: must be at most 2**32 = {SEED_LIMIT} (seeds 0..seeds-1 are "
            "uint32 keys)"
        )
    runs = n * points
    need = runs * (iterations * NUM_METRICS_BOUND * 4 + LANE_HOST_BYTES)
    usable = USABLE_FRACTION * host_available_bytes()
    if need > usable:
        raise ConfigError(
            f"invalid seeds={n}: the results of {runs} runs need about {gib(need)} of host "
            f"memory, over the {gib(usable)} usable; run fewer seeds or grid points, or "
            "fewer iterations"
        )
    return list(range(n))


def check_grid_names(items: tuple[str, ...]) -> None:
    """One line for a --grid field that is not a traced hyperparameter (before the values
    are parsed): a static field changes the compiled program; anything else is unknown."""
    from vecpg.run.launch import GRID_ALIASES

    for item in items:
        raw = item.partition("=")[0].strip()
        name = GRID_ALIASES.get(raw.replace("-", "_"), raw.replace("-", "_"))
        if name in HPARAM_FIELDS:
            continue
        if name in STATIC_FIELDS:
            values = item.partition("=")[2]
            how = f"a separate sweep per value, each with --{name.replace('_', '-')} VALUE"
            if name in ("algo", "env"):  # `vecpg study` runs one compiled call per value
                how = f"`vecpg study --{name}s {quoted(values)}` (one call per {name}), or {how}"
            raise ConfigError(
                f"invalid grid {item!r}: {name} changes the compiled program, so it cannot be "
                f"swept in one call (only traced hyperparameters can); run {how}"
            )
        close = difflib.get_close_matches(name, [*HPARAM_FIELDS, *GRID_ALIASES], n=1)
        hint = f"did you mean {GRID_ALIASES.get(close[0], close[0])}? " if close else ""
        raise ConfigError(
            f"invalid grid {item!r}: {name} is not a hyperparameter; {hint}(sweepable: "
            f"{', '.join(HPARAM_FIELDS)})"
        )


def resume_run(cmd: TrainCommand | SweepCommand) -> int:
    from vecpg.run.api import resume

    assert cmd.resume is not None
    check_resume_alone(cmd)
    out = Path(cmd.resume)
    if (out / "summary.json").exists():
        print(f"vecpg: {quoted(out)} already finished; nothing to resume", flush=True)
        return 0
    print(f"vecpg: resuming {quoted(out)}", flush=True)
    call = functools.partial(
        resume, out, progress=cmd.progress, wandb=cmd.wandb_options(), cluster=cluster_of(cmd)
    )
    return finish(call, out, "train" if isinstance(cmd, TrainCommand) else "sweep")


def finish(call: Callable[[], Results | SweepResults], out: Path, command: str) -> int:
    """Run `call`; print the final table (train) or ranking (sweep), or how to resume
    (exit 130 after a Ctrl-C, 143 after a SIGTERM)."""
    import signal

    from vecpg.run import interrupt
    from vecpg.run.rundir import Results, ranking_markdown
    from vecpg.training.execute import TrainingInterrupted

    try:
        res = call()
    except TrainingInterrupted as e:
        resume = f"vecpg {command} --resume {quoted(out)}"
        if e.iteration:
            kept = (
                f"kept the checkpoint of iteration {e.iteration} in {quoted(out / 'checkpoints')}"
            )
            print(f"vecpg: stopped; {kept}. Resume with: {resume}", flush=True)
        else:
            print(
                "vecpg: stopped before any checkpoint; nothing trained was kept. "
                f"Start it again with: {resume}",
                flush=True,
            )
        return interrupt.exit_code(interrupt.stopped_by() or signal.SIGINT)
    from vecpg.run import distributed

    if not distributed.is_writer():  # results are process 0's to show and write
        import jax

        print(f"vecpg: process {jax.process_index()} of {jax.process_count()} done; "
              f"process 0 wrote {out}/", flush=True)  # fmt: skip
        return 0
    if isinstance(res, Results):
        print_final_table(res.summary())
        print(f"compile {res.compile_s:.1f}s, run {res.run_s:.1f}s; wrote {out}/")
        return 0
    print(ranking_markdown(res.ranking(), len(res.seeds)))
    print(
        f"{len(res.points)} configs x {len(res.seeds)} seeds on {res.num_devices} device(s) in "
        f"{res.num_calls} call(s): compile {res.compile_s:.1f}s, run {res.run_s:.1f}s; "
        f"wrote {out}/"
    )
    return 0


def print_final_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['algo']} on {summary['env']}: final return (last 10%)")
    table.add_column("seed", justify="right")
    table.add_column("final return", justify="right")
    diverged = summary.get("diverged_at_iteration", {})
    for seed, r in zip(summary["seeds"], summary["final_return_per_seed"], strict=True):
        at = diverged.get(str(seed))
        score = "no score" if r is None or r != r else f"{r:.2f}"  # r != r: NaN
        table.add_row(str(seed), score if at is None else f"{score} (diverged at it {at})")
    n, total = len(diverged), len(summary["seeds"])
    mean = summary["final_return_mean"]
    if summary.get("all_diverged"):
        table.add_row("mean", f"diverged: all {total} seeds, no score")
    elif mean is None or mean != mean:
        table.add_row("mean", "no score: no seed finished an episode")
    else:
        lo, hi = summary["final_return_ci95"]
        table.add_row("mean", f"{mean:.2f}  (95% bootstrap CI {lo:.2f} .. {hi:.2f})")
    Console(width=100).print(table)
    if diverged:
        print(
            f"vecpg: {n} of {total} seeds diverged (non-finite params, loss or gradients); "
            + (
                "the run has no score and ranks below every scored run"
                if n == total
                else "each scores the lowest final return of this run's seeds"
            )
        )


def algo_defaults(flags: type, args: list[str]) -> Any:
    """For train and sweep: the command with `--algo`'s own defaults (vecpg.algos.DEFAULTS)
    in place of the shared ones, so that flags given still win; None otherwise."""
    from vecpg.algos import DEFAULTS

    if flags not in (TrainCommand, SweepCommand, SearchCommand):
        return None
    algo = None
    for i, arg in enumerate(args):
        if arg == "--algo" and i + 1 < len(args):
            algo = args[i + 1]
        elif arg.startswith("--algo="):
            algo = arg.split("=", 1)[1]
    if algo not in DEFAULTS:
        return None
    return flags(algo=algo, **DEFAULTS[algo])


# name -> (flags, runner): one table serves parsing and dispatch.
COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    "train": (TrainCommand, run_train),
    "sweep": (SweepCommand, run_sweep),
    "compare": (CompareCommand, run_compare),
    "envs": (EnvsCommand, run_envs),
    "bench": (BenchPlan, run_bench_cmd),
    "eval": (EvalCommand, run_eval),
    "render": (RenderCommand, run_render),
    "study": (StudyCommand, run_study_cmd),
    "search": (SearchCommand, run_search),
}


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input (one line, nothing written), 1 a run that could not
    go on (one line, e.g. disk full), 130 stopped by Ctrl-C."""
    from vecpg.run.interrupt import exit_on_second_ctrl_c

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]  # `vecpg` alone runs the demo
    exit_on_second_ctrl_c(True)
    try:
        if argv[0] in COMMANDS:  # parsed alone, so errors point to `vecpg <command> --help`
            flags, runner = COMMANDS[argv[0]]
            args = argv[1:]
            if not {"-h", "--help"} & set(args):
                check_args(argv[0], flags, args)
            default = algo_defaults(flags, args)
            cmd = parse(flags, args, f"vecpg {argv[0]}", default)
            for name in ("out", "resume"):  # '' would read as "not given": a new default run
                if getattr(cmd, name, None) == "":
                    raise ConfigError(f"invalid {name}='': give a path")
            return runner(cmd)
        if argv[0] not in ("-h", "--help"):
            close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
            hint = f" (did you mean `vecpg {close[0]}`?)" if close else ""
            raise ConfigError(f"unknown command {argv[0]!r}{hint}; commands: {', '.join(COMMANDS)}")
        tyro.extras.subcommand_cli_from_dict(
            {name: flags for name, (flags, _) in COMMANDS.items()}, args=argv, prog="vecpg"
        )
        return 2
    except ConfigError as e:
        print(f"vecpg: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"vecpg: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vecpg: aborted by Ctrl-C", file=sys.stderr)
        return 130


def entry() -> None:
    """The `vecpg` command: main(), then Ctrl-C and SIGTERM ignored while the interpreter
    shuts down (Python would otherwise restore the default handler and die of the
    signal)."""
    import signal

    from vecpg.run import distributed

    try:
        code = main()
    except BrokenPipeError:
        # stdout's reader left (`vecpg train --help | head`): stop quietly with 1, as rich
        # does for the tables; stdout goes to /dev/null so the last flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if distributed.is_multiprocess():
        distributed.leave(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
