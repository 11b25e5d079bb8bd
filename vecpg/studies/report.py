"""`vecpg study report DIR`: the study's report in DIR/report/ (also written when a run
finishes its last cell): report.md, report.json, report.html (one self-contained page,
PNGs embedded) and the PNGs.

Scores are each run dir's own (`vecpg.load(dir).final_returns()`: the mean return over
the last 10% of iterations, a diverged seed scoring the lowest of its cell's seeds; NaN:
no score). A cell whose seeds all diverged has no score and never ranks above anything:
P(it > any scored run) = 0. With a grid, each grid point of an algorithm is its own
entry (`ppo learning_rate=0.001`). Aggregates across tasks need comparable scores:
playground/ envs (DM Control returns share 0..1000) or a score range for every env
(`--score-range ENV=low,high`), or a single task.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import vecpg
from vecpg.analysis import stats
from vecpg.errors import ConfigError
from vecpg.run.files import dumps
from vecpg.studies.power import seeds_needed
from vecpg.studies.runner import load_study, machine, write_cells_file
from vecpg.studies.spec import Study

# Across tasks, rliable's aggregates: IQM of all runs, mean and median of per-task means.
METRICS = {"IQM": stats.iqm, "mean": stats.aggregate_mean, "median": stats.aggregate_median}


def seeds_median(scores: np.ndarray) -> float:
    """The median over one task's runs ([runs, 1], NaN left out). rliable's aggregate
    median is the median of per-task means, which for one task is just its mean."""
    return float(np.nanmedian(scores))


# Within one task: IQM, mean and median over its seeds.
TASK_METRICS = {"IQM": stats.iqm, "mean": stats.aggregate_mean, "median": seeds_median}
DMC_RANGE = (0.0, 1000.0)  # DM Control (playground/) episode returns


class Entry(NamedTuple):
    """One algorithm (or algorithm x grid point) on one task."""

    label: str
    env: str
    seeds: list[int]
    scores: np.ndarray  # [seeds] scored final returns, NaN: no score
    metrics: dict[str, np.ndarray]  # episode_return, env_steps, diverged: [seeds, iterations]
    diverged_seeds: list[int]

    @property
    def all_diverged(self) -> bool:
        return len(self.diverged_seeds) == len(self.seeds)


def point_label(algo: str, point: dict[str, float]) -> str:
    return f"{algo} " + ",".join(f"{k}={v:g}" for k, v in point.items())


def load_entries(out: Path, study: Study, cells: dict[str, dict]) -> list[Entry]:
    """Every finished cell's entries (a sweep cell: one per grid point)."""
    entries = []
    for c in study.cells:
        if cells[c.key]["status"] not in ("done", "diverged"):
            continue
        run_dir = out / c.dir
        if study.grid:
            sw = vecpg.load_sweep(run_dir)
            finals = sw.final_returns()
            for p, point in enumerate(sw.points):
                m = {k: v[p] for k, v in sw.metrics.items()}
                flag = m.get("diverged", np.zeros_like(m["episode_return"]))
                div = [s for s, f in zip(sw.seeds, flag[:, -1], strict=True) if f > 0]
                entries.append(
                    Entry(point_label(c.algo, point), c.env, sw.seeds, finals[p], m, div)
                )
        else:
            res = vecpg.load(run_dir)
            entries.append(
                Entry(
                    c.algo,
                    c.env,
                    res.seeds,
                    res.final_returns(),
                    res.metrics,
                    sorted(res.diverged()),
                )
            )
    return entries


def score_ranges(study: Study, envs: list[str]) -> dict[str, tuple[float, float]] | None:
    """Per-env (low, high) making scores comparable across tasks, or None: the study's
    --score-range where given, DM Control's 0..1000 for playground/ envs; one task alone
    needs none ({})."""
    ranges = {}
    for env in envs:
        if env in study.score_ranges:
            ranges[env] = tuple(study.score_ranges[env])
        elif env.startswith("playground/"):
            ranges[env] = DMC_RANGE
    if len(ranges) == len(envs):
        return ranges  # type: ignore[return-value]
    return {} if len(envs) == 1 else None


def improvement(a: Entry | list[Entry], b: Entry | list[Entry]) -> float:
    """P(a > b) over the tasks a and b share; an entry (or, over several tasks, an
    algorithm) whose every seed diverged never beats anything (0; 1/2 against another)."""
    a_list, b_list = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
    div_a, div_b = all(e.all_diverged for e in a_list), all(e.all_diverged for e in b_list)
    if div_a or div_b:
        return 0.5 if div_a and div_b else float(div_b)
    x = stats.stack_ragged([e.scores for e in a_list])
    y = stats.stack_ragged([e.scores for e in b_list])
    return stats.probability_of_improvement(x, y)


def num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def task_stats(e: Entry) -> dict[str, Any]:
    """IQM, mean and median of one entry's seeds, each with a 95% bootstrap CI."""
    row: dict[str, Any] = {"all_diverged": e.all_diverged, "diverged_seeds": e.diverged_seeds}
    s = e.scores[:, None]
    for name, fn in TASK_METRICS.items():
        if e.all_diverged or np.isnan(e.scores).all():
            row[name], row[f"{name}_ci95"] = None, [None, None]
            continue
        lo, hi = stats.stratified_bootstrap_ci(s, fn)
        row[name], row[f"{name}_ci95"] = num(fn(s)), [num(lo), num(hi)]
    return row


def cell_timing(out: Path, study: Study, cells: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Per cell: status, error, diverged seeds, wall/compile/run time, env steps/s."""
    rows = {}
    for c in study.cells:
        st = cells[c.key]
        row = {k: st.get(k) for k in ("status", "error", "diverged_seeds", "wall_s", "dir")}
        try:
            summary = json.loads((out / c.dir / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        row["compile_s"], row["run_s"] = summary.get("compile_s"), summary.get("run_s")
        lanes = study.seeds * max(1, int(np.prod([len(v) for v in study.grid.values()])))
        steps = c.config.num_iterations * c.config.batch_size * lanes
        run_s = row["run_s"]
        row["env_steps_per_s"] = summary.get("env_steps_per_s") or (
            steps / run_s if run_s else None
        )
        row["machine"] = st.get("machine")
        rows[c.key] = row
    return rows


def build_report(out: Path) -> tuple[dict[str, Any], list[Entry]]:
    """report.json's content (see the module docstring) and the entries it was made of."""
    study = load_study(out)
    cells = write_cells_file(out, study)
    entries = load_entries(out, study, cells)
    envs = sorted({e.env for e in entries})
    labels = sorted({e.label for e in entries})
    by = {(e.label, e.env): e for e in entries}
    rep: dict[str, Any] = {
        "cells": cell_timing(out, study, cells),
        "tasks": envs,
        "labels": labels,
        "scores": {},
        "per_task": {},
    }
    for (label, env), e in sorted(by.items()):
        rep["scores"].setdefault(env, {})[label] = {
            "seeds": e.seeds,
            "final_return": [num(x) for x in e.scores],
        }
        rep["per_task"].setdefault(env, {})[label] = task_stats(e)
    pairs = [(a, b) for a, b in itertools.permutations(labels, 2)]
    poi: dict[str, dict[str, float | None]] = {}
    power: dict[str, dict[str, Any]] = {}
    for env in envs:
        for a, b in pairs:
            if (a, env) in by and (b, env) in by:
                poi.setdefault(env, {})[f"{a} vs {b}"] = num(improvement(by[a, env], by[b, env]))
                if a < b:
                    sn = seeds_needed(by[a, env].scores, by[b, env].scores)
                    power.setdefault(env, {})[f"{a} vs {b}"] = {
                        "seeds": sn.seeds,
                        "answer": sn.describe(),
                        "power": sn.power,
                    }
    ranges = score_ranges(study, envs)
    complete = [lab for lab in labels if all((lab, e) in by for e in envs)]
    agg: dict[str, Any] | None = None
    if ranges is not None and envs:
        agg = {"score_ranges": {k: list(v) for k, v in ranges.items()}, "by_label": {}}
        for lab in complete:
            agg["by_label"][lab] = aggregate_of([by[lab, e] for e in envs], ranges)
        poi["aggregate"] = {
            f"{a} vs {b}": num(improvement([by[a, e] for e in envs], [by[b, e] for e in envs]))
            for a, b in pairs
            if a in complete and b in complete
        }
    rep.update(aggregate=agg, probability_of_improvement=poi, seeds_needed=power)
    rep["machines"] = sorted(
        {json.dumps(r["machine"], sort_keys=True) for r in rep["cells"].values() if r["machine"]}
    )
    rep["machines"] = [json.loads(m) for m in rep["machines"]]
    rep["report_machine"] = machine()
    return rep, entries


def normalised(entries: list[Entry], ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    scores = stats.stack_ragged([e.scores for e in entries])
    if not ranges:
        return scores
    low = np.array([ranges[e.env][0] for e in entries])
    high = np.array([ranges[e.env][1] for e in entries])
    return stats.normalize_scores(scores, low, high)


def aggregate_of(entries: list[Entry], ranges: dict[str, tuple[float, float]]) -> dict:
    """Aggregate IQM/mean/median (and optimality gap) of one label over the tasks."""
    if all(e.all_diverged for e in entries):
        return {"all_diverged": True}
    s = normalised(entries, ranges)
    row: dict[str, Any] = {"all_diverged": False}
    for name, fn in METRICS.items():
        lo, hi = stats.stratified_bootstrap_ci(s, fn)
        row[name], row[f"{name}_ci95"] = num(fn(s)), [num(lo), num(hi)]
    row["optimality_gap"] = num(stats.optimality_gap(s)) if ranges else None
    return row


def markdown(rep: dict[str, Any]) -> str:
    lines = [
        "# vecpg study report",
        "",
        "## Cells",
        "",
        "| cell | status | diverged seeds | wall s | compile s | run s | env steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in rep["cells"].items():
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        lines.append(
            f"| {key} | {status} | {r.get('diverged_seeds') or '-'} | {fmt(r['wall_s'], 1)}"
            f" | {fmt(r['compile_s'], 1)} | {fmt(r['run_s'], 1)} "
            f"| {fmt(r['env_steps_per_s'], 0)} |"
        )
    lines += [
        "",
        "## Per task: final return (95% stratified-bootstrap CIs)",
        "",
        "| task | algorithm | seeds | IQM | 95% CI | mean | 95% CI | median | diverged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env, rows in rep["per_task"].items():
        for lab, r in rows.items():
            n = len(rep["scores"][env][lab]["seeds"])
            if r["all_diverged"]:
                lines.append(f"| {env} | {lab} | {n} | diverged | - | - | - | - | all {n} |")
                continue
            ci = {k: " .. ".join(fmt(v) for v in r[f"{k}_ci95"]) for k in ("IQM", "mean")}
            lines.append(
                f"| {env} | {lab} | {n} | {fmt(r['IQM'])} | {ci['IQM']} | "
                f"{fmt(r['mean'])} | {ci['mean']} | {fmt(r['median'])} "
                f"| {len(r['diverged_seeds'])} |"
            )
    lines += [
        "",
        "Scores: each seed's mean return over the last 10% of iterations; a diverged "
        "seed scores the lowest of its cell's seeds; a cell whose seeds all diverged has "
        "no score and P(it > any scored run) = 0.",
    ]
    agg = rep["aggregate"]
    if agg is None:
        lines += [
            "",
            "No cross-task aggregate: returns of these envs are not on one scale; "
            "give --score-range ENV=low,high for every env.",
        ]
    else:
        ranges = ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in agg["score_ranges"].items())
        lines += [
            "",
            f"## Aggregate over tasks ({'normalised: ' + ranges if ranges else 'raw'})",
            "",
            "| algorithm | IQM | mean | median | optimality gap |",
            "|---|---|---|---|---|",
        ]
        for lab, r in agg["by_label"].items():
            if r["all_diverged"]:
                lines.append(f"| {lab} | diverged | diverged | diverged | - |")
                continue
            cells = [
                f"{fmt(r[k], 3)} ({' .. '.join(fmt(v, 3) for v in r[f'{k}_ci95'])})"
                for k in METRICS
            ]
            lines.append(f"| {lab} | " + " | ".join(cells) + f" | {fmt(r['optimality_gap'], 3)} |")
    lines += [
        "",
        "## Probability of improvement P(a > b)",
        "",
        "| scope | a vs b | P(a > b) |",
        "|---|---|---|",
    ]
    for scope, pairs in rep["probability_of_improvement"].items():
        lines += [f"| {scope} | {pair} | {fmt(p)} |" for pair, p in pairs.items()]
    lines += [
        "",
        "## How many seeds are enough",
        "",
        "For each pair on each task: resample n scores from each algorithm's observed "
        "scores 2000 times; power(n) = the fraction of those synthetic experiments in "
        "which a two-sided Welch t-test at alpha 0.05 rejects equal means. Seeds needed "
        "= the smallest n in 2..64 with power >= 0.8 (`vecpg.studies.power`).",
        "",
        "| task | pair | seeds per algorithm |",
        "|---|---|---|",
    ]
    for env, pairs in rep["seeds_needed"].items():
        lines += [f"| {env} | {pair} | {r['answer']} |" for pair, r in pairs.items()]
    lines += ["", "## Machines", ""]
    lines += [f"- cells ran on: {m}" for m in rep["machines"]]
    lines += [f"- report made on: {rep['report_machine']}"]
    return "\n".join(lines) + "\n"


def figures(out: Path, rep: dict[str, Any], entries: list[Entry]) -> list[str]:
    """Write the PNGs into `out`; return their names in page order."""
    from vecpg.analysis.plots import plot_intervals
    from vecpg.studies import figures as fig

    names = []
    for env in rep["tasks"]:
        name = f"curves_{env.replace('/', '_')}.png"
        curves = {e.label: e.metrics for e in entries if e.env == env}
        fig.plot_iqm_curves(curves, out / name, f"{env}: IQM over seeds")
        names.append(name)
    intervals = {
        f"{lab} | {env}": (r["IQM"], *r["IQM_ci95"])
        for env, rows in rep["per_task"].items()
        for lab, r in rows.items()
        if r["IQM"] is not None
    }
    plot_intervals(intervals, out / "intervals.png", "IQM of final return, 95% CI")
    names.append("intervals.png")
    panels = {
        env: {e.label: e.scores[:, None] for e in entries if e.env == env} for env in rep["tasks"]
    }
    agg = rep["aggregate"]
    if agg is not None and agg["by_label"]:
        ranges = {k: tuple(v) for k, v in agg["score_ranges"].items()}
        by = {(e.label, e.env): e for e in entries}
        panels["aggregate (normalised)" if ranges else "aggregate"] = {
            lab: normalised([by[lab, env] for env in rep["tasks"]], ranges)  # type: ignore[arg-type]
            for lab in agg["by_label"]
        }
        agg_iv = {
            f"{k} | {lab}": (r[k], *r[f"{k}_ci95"])
            for lab, r in agg["by_label"].items()
            if not r["all_diverged"]
            for k in METRICS
        }
        plot_intervals(agg_iv, out / "aggregate.png", "Aggregate metrics, 95% bootstrap CI")
        names.append("aggregate.png")
    fig.plot_profiles(panels, out / "profiles.png")
    names.append("profiles.png")
    if len(rep["labels"]) > 1:
        fig.plot_improvement(
            rep["probability_of_improvement"], rep["labels"], out / "improvement.png"
        )
        names.append("improvement.png")
    return names


def to_html(text: str, out: Path, images: list[str]) -> str:
    """report.md as one self-contained HTML page with every PNG embedded (base64)."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r) <= set("|-")]
            cells = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            rest = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]
            )
            body.append(f"<table><tr>{head}</tr>{rest}</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    body.append("<h2>Figures</h2>")
    for name in images:
        data = base64.b64encode((out / name).read_bytes()).decode()
        body.append(f'<h3>{name}</h3><img alt="{name}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vecpg study</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(study_dir: str | os.PathLike) -> Path:
    """Write DIR/report/ (report.md, report.json, report.html, PNGs); return it. Files
    go to a temporary dir first, then replace the old report whole."""
    out = Path(study_dir)
    if not (out / "study.json").exists():
        raise ConfigError(f"invalid study dir={str(out)!r}: no study.json (not a study dir)")
    rep, entries = build_report(out)
    dest, tmp = out / "report", out / f".report.{os.getpid()}.new"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    images = figures(tmp, rep, entries)
    text = markdown(rep)
    (tmp / "report.md").write_text(text)
    (tmp / "report.json").write_text(dumps(rep))  # NaN (no score) as null, as every vecpg file
    (tmp / "report.html").write_text(to_html(text, tmp, images))
    old = out / f".report.{os.getpid()}.old"
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest
