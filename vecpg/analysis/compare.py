"""`vecpg compare RUN_DIR... --out report/`: aggregate metrics with stratified-bootstrap
CIs, probability of improvement, learning curves and interval plots across run dirs.

Runs are grouped by label (the algorithm, or the directory name when two runs share an
algorithm on one env) and by task (the env). Aggregates across several tasks are only
computed on normalised scores (`--score-range env=low,high` for every task): raw returns
of different envs are not comparable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vecpg.analysis import stats
from vecpg.errors import ConfigError
from vecpg.run.files import write_then_move
from vecpg.run.rundir import load

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


def collect(run_dirs: list[str]) -> tuple[dict, dict]:
    """-> finals[(label, env)] = [seeds] final returns; curves[env][label] = metrics."""
    if not run_dirs:
        raise ConfigError("invalid run_dirs=[]: give at least one run directory")
    loaded = [(Path(d), load(d)) for d in run_dirs]  # one line per unreadable run dir
    finals: dict[tuple[str, str], np.ndarray] = {}
    curves: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for path, res in loaded:
        label = res.config.algo
        if (label, res.config.env) in finals:
            label = path.name
        finals[(label, res.config.env)] = res.final_returns()
        curves.setdefault(res.config.env, {})[label] = res.metrics
    return finals, curves


def report(
    run_dirs: list[str], out: Path, score_ranges: dict[str, tuple[float, float]] | None = None
) -> str:
    """Write report.md and PNGs to `out` (each file replaced atomically, report.md last);
    return the markdown."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"invalid out={str(out)!r}: exists and is not a directory")
    finals, curves = collect(run_dirs)
    tmp = out.with_name(f".{out.name}.new")
    write = lambda d: write_report(finals, curves, d, score_ranges or {})  # noqa: E731
    return write_then_move(tmp, out, write, "report.md")


def write_report(
    finals: dict, curves: dict, out: Path, score_ranges: dict[str, tuple[float, float]]
) -> str:
    """The report's markdown and PNGs, written into `out`."""
    from vecpg.analysis.plots import plot_algorithm_curves, plot_intervals

    labels = sorted({lab for lab, _ in finals})
    envs = sorted({env for _, env in finals})
    lines = ["# vecpg comparison", "", "## Per task (final return, 95% stratified-bootstrap CI)"]
    lines += [
        "",
        "| env | run | seeds | IQM | 95% CI | mean | median |",
        "|---|---|---|---|---|---|---|",
    ]
    intervals = {}
    for env in envs:
        for lab in labels:
            if (lab, env) not in finals:
                continue
            s = finals[(lab, env)][:, None]
            lo, hi = stats.stratified_bootstrap_ci(s, stats.iqm)
            intervals[f"{lab} | {env}"] = (stats.iqm(s), lo, hi)
            lines.append(
                f"| {env} | {lab} | {s.shape[0]} | {stats.iqm(s):.2f} | {lo:.2f} .. {hi:.2f} "
                f"| {stats.aggregate_mean(s):.2f} | {stats.aggregate_median(s):.2f} |"
            )
        plot_algorithm_curves(curves[env], out / f"curves_{env.replace('/', '_')}.png", env)
    plot_intervals(intervals, out / "intervals.png", "IQM of final return, 95% CI")

    complete = [lab for lab in labels if all((lab, e) in finals for e in envs)]
    if len(envs) == 1 or all(e in score_ranges for e in envs):
        table, agg = aggregate_table(finals, complete, envs, score_ranges)
        lines += table
        plot_intervals(agg, out / "aggregate.png", "Aggregate metrics, 95% bootstrap CI")
    else:
        lines += ["", "No cross-task aggregate: give --score-range ENV=low,high for every env."]
    lines += ["", "## Probability of improvement P(row > column)", ""]
    lines += ["| | " + " | ".join(complete) + " |", "|---" * (len(complete) + 1) + "|"]
    for a in complete:
        x = np.stack([finals[(a, e)] for e in envs], axis=1)
        cells = []
        for b in complete:
            y = np.stack([finals[(b, e)] for e in envs], axis=1)
            cells.append("-" if a == b else f"{stats.probability_of_improvement(x, y):.2f}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def aggregate_table(finals, labels, envs, score_ranges) -> tuple[list[str], dict]:
    """Markdown rows and {'<metric> | <run>': (estimate, lo, hi)} for plotting."""
    norm = "normalised " if score_ranges else ""
    intervals = {}
    lines = ["", f"## Aggregate over {len(envs)} task(s), {norm}scores", ""]
    lines += ["| run | " + " | ".join(METRICS) + " | optimality gap |", "|---" * 5 + "|"]
    for lab in labels:
        scores = np.stack([finals[(lab, e)] for e in envs], axis=1)
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
