"""`vecpg compare RUN_DIR... --out report/`: aggregate metrics with stratified-bootstrap
CIs, probability of improvement, learning curves and interval plots across run dirs.

Runs are grouped by label (the algorithm, or the shortest unique tail of the path when
several runs share an algorithm on one env) and by task (the env); tasks may have
different seed counts (the statistics are stratified per task). Every run dir is checked
against its own spec.json and metrics, so an edited config.json is refused, not trusted.
Aggregates across several tasks are only computed on normalised scores (`--score-range
env=low,high` for every task): raw returns of different envs are not comparable.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vecpg.analysis import stats
from vecpg.errors import ConfigError, create_dir
from vecpg.run.files import write_then_move
from vecpg.run.rundir import DIVERGED_SCORING, NO_EPISODE, load

METRICS = {
    "IQM": stats.iqm,
    "mean": stats.aggregate_mean,
    "median": stats.aggregate_median,
}


def parse_score_ranges(items: list[str]) -> dict[str, tuple[float, float]]:
    """['gymnax/CartPole-v1=22,500'] -> {'gymnax/CartPole-v1': (22.0, 500.0)}."""
    refs = {}
    for item in items:
        env, sep, rng = item.rpartition("=")
        parts = rng.split(",")
        if not sep or len(parts) != 2:
            raise ConfigError(f"invalid score_range {item!r}: expected ENV=low,high")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ConfigError(
                f"invalid score_range {item!r}: low and high must be numbers"
            ) from None
        if not high > low:
            raise ConfigError(f"invalid score_range {item!r}: high must be > low")
        refs[env] = (low, high)
    return refs


def unique_labels(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell them apart ('dupA/run' and
    'dupB/run' for two dirs named run); one line if the same dir is given twice."""
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise ConfigError(f"invalid run_dirs: {str(paths[i])!r} is given twice")
    labels = []
    for p in resolved:
        for depth in range(1, len(p.parts) + 1):
            label = "/".join(p.parts[-depth:])
            if sum("/".join(q.parts[-depth:]) == label for q in resolved) == 1:
                break
        labels.append(label)
    return labels


class Collected(NamedTuple):
    """Every run's scores, keyed uniquely by (label, env)."""

    finals: dict[tuple[str, str], np.ndarray]  # [seeds] scored final returns (NaN: none)
    curves: dict[str, dict[str, dict[str, np.ndarray]]]  # env -> label -> metrics
    diverged: dict[tuple[str, str], tuple[int, int]]  # (diverged seeds, seeds)


def collect(run_dirs: list[str]) -> Collected:
    """Load every run dir (one line for each unreadable or inconsistent one). A run is
    labelled by its algorithm, or, when several runs share an algorithm on one env, by
    the shortest unique tail of its path."""
    if not run_dirs:
        raise ConfigError("invalid run_dirs=[]: give at least one run directory")
    paths = [Path(d) for d in run_dirs]
    loaded = [load(d) for d in run_dirs]  # checks config.json against spec.json and metrics
    unique = unique_labels(paths)
    shared = collections.Counter((r.config.algo, r.config.env) for r in loaded)
    out = Collected({}, {}, {})
    for name, res in zip(unique, loaded, strict=True):
        key = (res.config.algo, res.config.env)
        label = res.config.algo if shared[key] == 1 else name
        out.finals[(label, res.config.env)] = res.final_returns()
        out.curves.setdefault(res.config.env, {})[label] = res.metrics
        out.diverged[(label, res.config.env)] = (len(res.diverged()), len(res.seeds))
    return out


def report(
    run_dirs: list[str], out: Path, score_ranges: dict[str, tuple[float, float]] | None = None
) -> str:
    """Write report.md and PNGs to `out` (each file replaced atomically, report.md last);
    return the markdown."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"invalid out={str(out)!r}: exists and is not a directory")
    runs = collect(run_dirs)
    create_dir(out, "out")  # one line where nothing can be made (a permission check can pass)
    tmp = out.with_name(f".{out.name}.new")
    write = lambda d: write_report(runs, d, score_ranges or {})  # noqa: E731
    return write_then_move(tmp, out, write, "report.md")


def all_diverged(runs: Collected, label: str, envs: list[str]) -> bool:
    """Every seed of this label diverged on every env it ran: no score anywhere."""
    counts = [runs.diverged[(label, e)] for e in envs if (label, e) in runs.diverged]
    return all(d == n for d, n in counts)


def scores_of(runs: Collected, label: str, envs: list[str]) -> np.ndarray:
    """[seeds, tasks] of one label, NaN-padded where tasks have unequal seed counts."""
    return stats.stack_ragged([runs.finals[(label, e)] for e in envs])


def improvement(runs: Collected, a: str, b: str, envs: list[str]) -> float:
    """P(a > b); a label whose every seed diverged never beats anything (0 against a
    scored run, 1/2 against another all-diverged one)."""
    div_a, div_b = all_diverged(runs, a, envs), all_diverged(runs, b, envs)
    if div_a or div_b:
        return 0.5 if div_a and div_b else float(div_b)
    return stats.probability_of_improvement(scores_of(runs, a, envs), scores_of(runs, b, envs))


def write_report(runs: Collected, out: Path, score_ranges: dict[str, tuple[float, float]]) -> str:
    """The report's markdown and PNGs, written into `out`."""
    from vecpg.analysis.plots import plot_algorithm_curves, plot_intervals

    finals = runs.finals
    labels = sorted({lab for lab, _ in finals})
    envs = sorted({env for _, env in finals})
    lines = ["# vecpg comparison", "", "## Per task (final return, 95% stratified-bootstrap CI)"]
    lines += [
        "",
        "| env | run | seeds | IQM | 95% CI | mean | median | diverged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    intervals = {}
    for env in envs:
        for lab in labels:
            if (lab, env) not in finals:
                continue
            s = finals[(lab, env)][:, None]
            div, n = runs.diverged[(lab, env)]
            if div == n:
                lines.append(f"| {env} | {lab} | {n} | diverged | - | - | - | all {n} |")
                continue
            lo, hi = stats.stratified_bootstrap_ci(s, stats.iqm)
            intervals[f"{lab} | {env}"] = (stats.iqm(s), lo, hi)
            lines.append(
                f"| {env} | {lab} | {n} | {stats.iqm(s):.2f} | {lo:.2f} .. {hi:.2f} "
                f"| {stats.aggregate_mean(s):.2f} | {stats.aggregate_median(s):.2f} | {div} |"
            )
        plot_algorithm_curves(runs.curves[env], out / f"curves_{env.replace('/', '_')}.png", env)
    plot_intervals(intervals, out / "intervals.png", "IQM of final return, 95% CI")
    lines += ["", f"Scores: {DIVERGED_SCORING}; {NO_EPISODE}."]

    complete = [lab for lab in labels if all((lab, e) in finals for e in envs)]
    if len(envs) == 1 or all(e in score_ranges for e in envs):
        table, agg = aggregate_table(runs, complete, envs, score_ranges)
        lines += table
        plot_intervals(agg, out / "aggregate.png", "Aggregate metrics, 95% bootstrap CI")
    else:
        lines += ["", "No cross-task aggregate: give --score-range ENV=low,high for every env."]
    lines += ["", "## Probability of improvement P(row > column)", ""]
    lines += ["| | " + " | ".join(complete) + " |", "|---" * (len(complete) + 1) + "|"]
    for a in complete:
        cells = ["-" if a == b else f"{improvement(runs, a, b, envs):.2f}" for b in complete]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    if any(all_diverged(runs, lab, envs) for lab in complete):
        lines += ["", "A run whose every seed diverged has no score: P(it > any run) = 0."]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def aggregate_table(runs: Collected, labels, envs, score_ranges) -> tuple[list[str], dict]:
    """Markdown rows and {'<metric> | <run>': (estimate, lo, hi)} for plotting."""
    norm = "normalised " if score_ranges else ""
    intervals = {}
    lines = ["", f"## Aggregate over {len(envs)} task(s), {norm}scores", ""]
    lines += ["| run | " + " | ".join(METRICS) + " | optimality gap |", "|---" * 5 + "|"]
    for lab in labels:
        if all_diverged(runs, lab, envs):
            lines.append(f"| {lab} | " + " | ".join("diverged" for _ in METRICS) + " | - |")
            continue
        scores = scores_of(runs, lab, envs)
        if score_ranges:
            low = np.array([score_ranges[e][0] for e in envs])
            high = np.array([score_ranges[e][1] for e in envs])
            scores = stats.normalize_scores(scores, low, high)
        cells = []
        for name, fn in METRICS.items():
            lo, hi = stats.stratified_bootstrap_ci(scores, fn)
            cells.append(f"{fn(scores):.3f} ({lo:.3f} .. {hi:.3f})")
            intervals[f"{name} | {lab}"] = (fn(scores), lo, hi)
        gap = stats.optimality_gap(scores) if score_ranges else float("nan")
        lines.append(f"| {lab} | " + " | ".join(cells) + f" | {gap:.3f} |")
    return lines, intervals
