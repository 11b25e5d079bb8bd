"""`vecpg study`: algorithms x envs x seeds, one compiled call per cell.

    vecpg study --algos ppo,trpo --envs gymnax/CartPole-v1,gymnax/Acrobot-v1 --seeds 8 \\
                --total-steps 100000 --out runs/study
    vecpg study --config study.toml --out runs/study     # layers: vecpg.studies.spec
    vecpg study --config study.toml --show-config        # every cell's resolved config
    vecpg study --resume runs/study                      # or the same command again
    vecpg study ... --shard 0/4                          # or a SLURM array task
    vecpg study report runs/study                        # runs/study/report/

Every TrainConfig field is a flag (`--total-steps`, `--learning-rate`, ...; booleans take
true/false: `--normalize-obs false`); a flag given wins over every TOML layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from pathlib import Path
from typing import Annotated, Any

import tyro

from vecpg.commands import WandbFlags
from vecpg.errors import ConfigError, quoted


@dataclasses.dataclass(frozen=True)
class StudyFlags:
    """How the study is declared and run."""

    action: tyro.conf.Positional[tuple[str, ...]] = ()
    """`report DIR` writes DIR/report/ from a study dir; otherwise none."""
    algos: str | None = None
    """Comma-separated algorithms (a2c, ppo, ppo_kl, dual, npg, trpo); wins over TOML."""
    envs: str | None = None
    """Comma-separated envs (`vecpg envs` lists them); wins over TOML."""
    seeds: int | None = None
    """Seeds per cell, 0..seeds-1 (default 8); wins over TOML."""
    config: str | None = None
    """A study TOML file: algos, envs, seeds, [settings], [algo.X], [env."Y"], [cell.X."Y"],
    [grid], preset, checkpoint_every, [score_range]."""
    grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable --grid name=v1,v2 (traced hyperparameters): every cell becomes a sweep."""
    preset: str | None = None
    """playground-dmc | playground-dmc-cpu: MuJoCo Playground's published PPO settings per
    DM Control task (vecpg.studies.presets)."""
    checkpoint_every: int | None = None
    """Checkpoint each cell every N iterations (default 100; 0: off)."""
    out: str | None = None
    """The study dir (running the same command again continues it)."""
    resume: str | None = None
    """Continue the study in this dir (its study.json is used)."""
    shard: str | None = None
    """i/N: run cell k of the sorted cells when k % N == i (default: a SLURM array task's
    SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, else all)."""
    show_config: bool = False
    """Print every cell's resolved config (fields that differ from the defaults) and exit."""
    score_range: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable ENV=low,high for the report's cross-task aggregate (playground/ envs:
    0,1000 by default)."""
    progress: bool = True
    """Show each cell's live progress."""


@dataclasses.dataclass(frozen=True)
class TrainFlags:
    """TrainConfig fields for every cell, winning over every TOML layer when given."""

    backend: str | None = None
    playground_impl: str | None = None
    num_envs: int | None = None
    num_steps: int | None = None
    total_steps: int | None = None
    update_epochs: int | None = None
    num_minibatches: int | None = None
    hidden: tuple[int, ...] | None = None
    activation: str | None = None
    torso: str | None = None
    memory: str | None = None
    memory_size: int | None = None
    mask_obs: str | None = None
    normalize_obs: str | None = None
    anneal_lr: str | None = None
    cpu_fast_math: str | None = None
    cpu_opt_level: int | None = None
    cpu_fusion_emitters: str | None = None
    gpu_autotune: str | None = None
    log_every: int | None = None
    cg_iters: int | None = None
    linesearch_steps: int | None = None
    fvp_fraction: float | None = None
    anneal_kl: str | None = None
    npg_fixed_step: str | None = None
    learning_rate: float | None = None
    gamma: float | None = None
    gae_lambda: float | None = None
    clip_eps: float | None = None
    ent_coef: float | None = None
    vf_coef: float | None = None
    max_grad_norm: float | None = None
    reward_scale: float | None = None
    max_kl: float | None = None
    damping: float | None = None
    dual_lr: float | None = None
    init_penalty: float | None = None
    backtrack_coef: float | None = None
    natural_lr: float | None = None


@dataclasses.dataclass(frozen=True)
class StudyCommand(WandbFlags, TrainFlags, StudyFlags):
    """Run algorithms x envs x seeds (one compiled call per cell) and report them."""


TRAIN_FLAGS = tuple(f.name for f in dataclasses.fields(TrainFlags))
WANDB_FIELDS = tuple(f.name for f in dataclasses.fields(WandbFlags))
BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def train_flags(cmd: StudyCommand) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (booleans from true/false)."""
    from vecpg.studies.spec import BASE

    out = {}
    for name in TRAIN_FLAGS:
        value = getattr(cmd, name)
        if value is None:
            continue
        if isinstance(getattr(BASE, name), bool):
            if str(value).lower() not in BOOLS:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"invalid {flag}={value!r}: must be true or false")
            value = BOOLS[str(value).lower()]
        out[name] = value
    return out


def spec_of(cmd: StudyCommand):
    """The StudySpec of the TOML file (if any) with the command line's values winning (the
    file may leave out what the command line gives, e.g. algos and envs)."""
    from vecpg.studies.spec import parse_grid, parse_score_ranges, spec_from_dict, spec_from_toml

    over: dict[str, Any] = {}
    if cmd.algos is not None:
        over["algos"] = cmd.algos
    if cmd.envs is not None:
        over["envs"] = cmd.envs
    for key in ("seeds", "preset", "checkpoint_every"):
        if getattr(cmd, key) is not None:
            over[key] = getattr(cmd, key)
    if cmd.grid:
        over["grid"] = parse_grid(cmd.grid)
    if cmd.score_range:
        over["score_ranges"] = parse_score_ranges(cmd.score_range)
    over["flags"] = train_flags(cmd)
    if cmd.config is None:
        return spec_from_dict({}, **over)
    return spec_from_toml(cmd.config, **over)


def run_report(cmd: StudyCommand) -> int:
    from vecpg.studies.report import write_report

    if len(cmd.action) != 2 or cmd.action[0] != "report":
        raise ConfigError(
            f"unexpected argument {' '.join(cmd.action)!r} for `vecpg study`; the one action "
            "is `vecpg study report DIR`"
        )
    dest = write_report(cmd.action[1])
    print(f"vecpg study: wrote {dest}/ (report.md, report.json, report.html, PNGs)")
    return 0


def run_study_cmd(cmd: StudyCommand) -> int:
    """`vecpg study`: exit 0 done (failed cells are recorded in cells.json), 130 Ctrl-C."""
    import signal

    import vecpg
    from vecpg.run import interrupt
    from vecpg.studies.runner import load_study, parse_shard, run_study
    from vecpg.studies.spec import show_config

    if cmd.action:
        return run_report(cmd)
    shard = parse_shard(cmd.shard)
    if cmd.resume is not None:
        given = [
            f.name
            for f in dataclasses.fields(StudyCommand)
            if f.name not in ("resume", "shard", "progress", "action")
            and f.name not in WANDB_FIELDS
            and getattr(cmd, f.name) != getattr(StudyCommand(), f.name)
        ]
        if given:
            flags = ", ".join("--" + g.replace("_", "-") for g in given)
            raise ConfigError(
                f"invalid resume={cmd.resume!r}: {flags} cannot be combined with --resume "
                "(the study dir's study.json is used)"
            )
        study, out = load_study(cmd.resume), Path(cmd.resume)
    else:
        study = spec_of(cmd).resolve()
        if cmd.show_config:
            print(show_config(study), end="")
            return 0
        if cmd.out is None:
            raise ConfigError("invalid out: missing; give --out DIR (the study dir)")
        out = Path(cmd.out)
    try:
        cells = run_study(study, out, shard=shard, progress=cmd.progress, wandb=cmd.wandb_options())
    except (vecpg.TrainingInterrupted, KeyboardInterrupt):
        print(
            f"vecpg study: stopped; finished cells are kept. Continue with: "
            f"vecpg study --resume {quoted(out)}",
            flush=True,
        )
        return interrupt.exit_code(interrupt.stopped_by() or signal.SIGINT)
    counts: dict[str, int] = {}
    for c in cells.values():
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    where = f"{out}/report/" if "pending" not in counts else "`vecpg study report` when done"
    print(f"vecpg study: {len(cells)} cells: {text}; report: {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m vecpg.studies ...`: the `vecpg study` command on its own (exit 2 and one
    line for bad input)."""
    args = sys.argv[1:] if argv is None else argv
    err = io.StringIO()
    try:
        try:
            with contextlib.redirect_stderr(err):
                cmd = tyro.cli(StudyCommand, args=args, prog="vecpg study")
        except SystemExit as e:
            if e.code not in (0, None):
                raise ConfigError(
                    "cannot parse the arguments; `vecpg study --help` lists its flags"
                ) from None
            sys.stderr.write(err.getvalue())
            return 0
        return run_study_cmd(cmd)
    except ConfigError as e:
        print(f"vecpg: error: {e}", file=sys.stderr)
        return 2
