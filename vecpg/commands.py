"""The CLI's tool commands (compare, envs, bench, eval, render) and the W&B flags that
train, sweep and render share; `vecpg.cli` parses and dispatches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import tyro

from vecpg.bench.plan import BenchPlan
from vecpg.errors import ConfigError, check_output_dir, create_dir

COMPARE_FILES = ("report.md", "*.png")  # what `vecpg compare` writes (and may replace)


@dataclasses.dataclass(frozen=True)
class WandbFlags:
    """Weights & Biases options shared by train and sweep."""

    wandb: str = "disabled"
    """W&B logging: disabled | offline | online (online without a key or network: offline)."""
    wandb_project: str = "vecpg"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (user or team); default: yours."""
    wandb_group: str | None = None
    """W&B group (default: the run dir's name); one W&B run per seed inside it."""
    wandb_tags: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable W&B tag."""

    def wandb_options(self):
        from vecpg.run.tracking import WandbOptions

        return WandbOptions(
            self.wandb, self.wandb_project, self.wandb_entity, self.wandb_group, self.wandb_tags
        )


@dataclasses.dataclass(frozen=True)
class CompareCommand:
    """Compare run directories: aggregate metrics with CIs, probability of improvement,
    learning curves."""

    run_dirs: tyro.conf.Positional[tuple[str, ...]] = ()
    """Run directories written by `vecpg train`."""
    out: str = "report"
    """Directory for report.md and the PNGs."""
    score_range: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable ENV=low,high: scores are mapped to (r - low) / (high - low), needed to
    aggregate across several envs."""


@dataclasses.dataclass(frozen=True)
class EnvsCommand:
    """List the environments with their observation and action spaces."""

    source: str = "all"
    """Which source to list: all | brax | gymnax | playground | tabular."""
    backend: str = "generalized"
    """Brax backend used to build brax envs for their spaces."""
    playground_impl: str = "jax"
    """Playground physics used to build playground envs for their spaces."""


@dataclasses.dataclass(frozen=True)
class EvalCommand:
    """Per-seed deterministic and stochastic returns of a run's policies, with 95% CIs."""

    run_dir: tyro.conf.Positional[str]
    """Run directory written by `vecpg train`."""
    episodes: int = 10
    """Episodes per seed and mode."""
    seed: int = 0
    """Evaluation seed: episode e resets with jax.random.split(key(seed), episodes)[e]."""


@dataclasses.dataclass(frozen=True)
class RenderCommand(WandbFlags):
    """Write one deterministic episode of a trained policy: brax HTML viewer, gymnax GIF."""

    run_dir: tyro.conf.Positional[str] = ""
    """Run directory written by `vecpg train`."""
    seed: int = 0
    """Which trained seed's policy to show."""
    out: Annotated[
        str | None,
        tyro.conf.arg(help_behavior_hint="(default: rollout.html or rollout.gif)"),
    ] = None
    """Output file: .html for brax envs, .gif for gymnax and Playground envs."""
    overwrite: bool = False
    """Replace --out if the file exists."""


def run_eval(cmd: EvalCommand) -> int:
    from rich.console import Console
    from rich.table import Table

    from vecpg.analysis.evaluate import evaluate

    res = evaluate(cmd.run_dir, cmd.episodes, cmd.seed)
    title = f"{cmd.run_dir}: return over {cmd.episodes} episodes (95% bootstrap CI)"
    table = Table(title=title)
    for col in ("seed", "deterministic", "stochastic"):
        table.add_column(col, justify="right")
    for row in res.table():
        if row.get("all_diverged"):
            table.add_row(str(row["seed"]), "all seeds diverged", "all seeds diverged")
            continue
        cells = [
            f"{row[m]:.2f}  ({row[m + '_ci95'][0]:.2f} .. {row[m + '_ci95'][1]:.2f})"
            for m in ("deterministic", "stochastic")
        ]
        seed = str(row["seed"])
        if row.get("diverged_at") is not None:
            seed += f" (diverged at it {row['diverged_at']})"
        table.add_row(seed, *cells)
    Console(width=120).print(table)
    return 0


def run_render(cmd: RenderCommand) -> int:
    from vecpg.analysis.evaluate import render

    if not cmd.run_dir:
        raise ConfigError("invalid run_dir='': give the run directory to render")
    out = render(cmd.run_dir, cmd.seed, cmd.out, overwrite=cmd.overwrite)
    print(f"wrote {out}")
    options = cmd.wandb_options()
    if options.mode != "disabled" and out.suffix == ".html":
        from vecpg.run.tracking import log_html

        log_html(options, Path(cmd.run_dir), f"render-seed{cmd.seed}", out)
    return 0


def run_bench_cmd(cmd: BenchPlan) -> int:
    from vecpg.bench import report
    from vecpg.bench.runner import run_bench

    plan = cmd.resolved()  # --out too: checked before any work
    plan.base()  # the config's own checks, before the directory exists
    create_dir(Path(plan.out), "out")
    result = run_bench(plan, saved=lambda r: report.save(r, Path(plan.out)))
    report.check_result(result)
    report.save(result, Path(plan.out))
    print(report.to_markdown(result))
    print(f"wrote {plan.out}/bench.json and bench.md")
    return 0


def run_compare(cmd: CompareCommand) -> int:
    from vecpg.analysis.compare import parse_score_ranges, report

    check_output_dir(Path(cmd.out), "out", COMPARE_FILES, "vecpg compare")
    ranges = parse_score_ranges(list(cmd.score_range))
    text = report(list(cmd.run_dirs), Path(cmd.out), ranges)
    from rich.console import Console
    from rich.markdown import Markdown

    Console(width=120).print(Markdown(text))
    print(f"wrote {cmd.out}/report.md and PNGs")
    return 0


def run_envs(cmd: EnvsCommand) -> int:
    from rich.console import Console
    from rich.table import Table

    from vecpg.config import StaticFields, bound_of
    from vecpg.envs import env_names, make_env
    from vecpg.envs.catalog import recorded_specs
    from vecpg.envs.registry import PLAYGROUND_ROBOTS, SOURCES

    if cmd.source not in ("all", *SOURCES):
        raise ConfigError(f"invalid source={cmd.source!r}: allowed: all, {', '.join(SOURCES)}")
    for field in dataclasses.fields(StaticFields):  # as train checks them
        if field.name in ("backend", "playground_impl"):
            bound_of(field).check(field.name, getattr(cmd, field.name))
    table = Table(title="vecpg environments")
    for col in ("name", "observation", "action", "max steps"):
        table.add_column(col)
    for name in env_names():
        if cmd.source != "all" and not name.startswith(cmd.source + "/"):
            continue
        if name.removeprefix("playground/") in PLAYGROUND_ROBOTS:
            table.add_row(name, "-", "needs the Menagerie assets ($VECPG_MENAGERIE_PATH)", "-")
            continue
        spec = recorded_specs().get(name)
        try:
            if name.startswith("playground/"):  # recorded, but is it installed here?
                from vecpg.envs.playground_env import require_playground

                require_playground(name)
            if spec is None:  # not recorded (see vecpg.envs.catalog): build it
                spec = make_env(name, cmd.backend, cmd.playground_impl).spec
        except ConfigError as e:  # e.g. the playground extra is not installed
            table.add_row(name, "-", f"unavailable: {str(e).split(': ', 1)[-1]}", "-")
            continue
        except Exception as e:  # an env that cannot be built here is listed, not fatal
            table.add_row(name, "-", f"unavailable: {type(e).__name__}", "-")
            continue
        if spec.discrete:
            action = f"Discrete({spec.num_actions})"
        else:
            action = f"Box({spec.action_low:g}, {spec.action_high:g}, ({spec.num_actions},))"
        table.add_row(name, f"Box{spec.obs_shape}", action, str(spec.max_episode_steps))
    Console(width=110).print(table)
    return 0
