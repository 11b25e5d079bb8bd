"""Random (or Sobol) search with honest re-evaluation.

Trials (configs sampled from a space of traced fields) run with `seeds` seeds each as
lanes of one compiled program; the `top` configs by selection score are then re-run on
`confirm_seeds` fresh seeds that played no part in selecting them. A winner's score on
its selection seeds is biased upward (it was picked for being high: the winner's curse);
the confirmed score is not, and the report puts the two side by side.

Selection score: the IQM over a trial's seeds of the final return (the mean episode
return over the last 10% of iterations; a diverged seed scores as in a sweep). Seeds:
selection 0 .. seeds-1, confirmation seeds .. seeds+confirm_seeds-1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecpg.analysis.stats import iqm, stratified_bootstrap_ci
from vecpg.config import TrainConfig
from vecpg.errors import ConfigError
from vecpg.run.files import check_out_dir
from vecpg.run.rundir import SweepResults
from vecpg.tuning.space import SAMPLERS, Dimension, parse_space, sample

SUMMARY = "summary.json"
REPORT = "report.md"


@dataclasses.dataclass
class SearchResults:
    """What a search found: every trial and its selection score, the top configs with
    their selection and confirmed scores, and the two sweeps behind them."""

    base: TrainConfig
    space: tuple[Dimension, ...]
    sampler: str
    sample_seed: int
    trials: list[dict[str, float]]
    selection: SweepResults  # trials x selection seeds
    confirmation: SweepResults  # top configs x fresh seeds
    top: list[int]  # trial indices, best first

    def selection_scores(self) -> np.ndarray:
        """[trials] IQM of final return over the selection seeds (NaN: no score)."""
        return np.array([score(f) for f in self.selection.final_returns()])

    def summary(self) -> dict[str, Any]:
        sel = self.selection_scores()
        rows = []
        for rank, (i, final) in enumerate(zip(self.top, self.confirmation.final_returns(),
                                              strict=True)):  # fmt: skip
            lo, hi = stratified_bootstrap_ci(final[:, None], iqm)
            s_final = self.selection.final_returns()[i]
            s_lo, s_hi = stratified_bootstrap_ci(s_final[:, None], iqm)
            rows.append({
                "rank": rank + 1, "trial": i, "config": self.trials[i],
                "selection_iqm": float(sel[i]), "selection_ci95": [s_lo, s_hi],
                "confirmed_iqm": score(final), "confirmed_ci95": [lo, hi],
                "confirmed_mean": float(np.nanmean(final)),
            })  # fmt: skip
        best = self.trials[self.top[0]]
        return {
            "space": [d.describe() for d in self.space],
            "sampler": self.sampler,
            "sample_seed": self.sample_seed,
            "selection_seeds": self.selection.seeds,
            "confirmation_seeds": self.confirmation.seeds,
            "trials": [
                {"trial": i, "config": t, "selection_iqm": float(sel[i])}
                for i, t in enumerate(self.trials)
            ],  # fmt: skip
            "top": rows,
            "best": {"config": best, "flags": flags_line(best), "toml": toml_lines(best)},
            "base_config": self.base.to_dict(),
        }

    def report_markdown(self) -> str:
        s = self.summary()
        lines = [
            f"# Search: {self.base.algo} on {self.base.env}",
            "",
            f"Space: {', '.join(s['space'])}; {len(self.trials)} trials ({self.sampler} "
            f"sampler, seed {self.sample_seed}) x {len(s['selection_seeds'])} selection seeds "
            f"{s['selection_seeds']}; the top {len(self.top)} re-run on "
            f"{len(s['confirmation_seeds'])} fresh seeds {s['confirmation_seeds']}.",
            "",
            "Scores: IQM of the final return (mean episode return over the last 10% of "
            "iterations) over seeds, 95% stratified-bootstrap CIs. The selection score is "
            "biased upward (the configs were chosen for it); the confirmed one is not.",
            "",
            "| rank | config | selection IQM | 95% CI | confirmed IQM | 95% CI |",
            "|---|---|---|---|---|---|",
        ]
        for r in s["top"]:
            cfg = ", ".join(f"{k}={v:.4g}" for k, v in r["config"].items())
            lines.append(
                f"| {r['rank']} | {cfg} | {r['selection_iqm']:.2f} | "
                f"{_ci(r['selection_ci95'])} | {r['confirmed_iqm']:.2f} | "
                f"{_ci(r['confirmed_ci95'])} |"
            )
        lines += ["", f"Best config as flags: `{s['best']['flags']}`", "",
                  "As TOML:", "", "```toml", *s["best"]["toml"], "```", "",
                  "Every trial, by selection score:", "", "| trial | config | selection IQM |",
                  "|---|---|---|"]  # fmt: skip
        for t in sorted(s["trials"], key=lambda t: -_finite(t["selection_iqm"])):
            cfg = ", ".join(f"{k}={v:.4g}" for k, v in t["config"].items())
            lines.append(f"| {t['trial']} | {cfg} | {t['selection_iqm']:.2f} |")
        return "\n".join(lines) + "\n"

    def save(self, out: Path) -> None:
        (out / SUMMARY).write_text(json.dumps(self.summary(), indent=1, allow_nan=True))
        (out / REPORT).write_text(self.report_markdown())


def score(final: np.ndarray) -> float:
    """IQM of one config's final returns [seeds] (NaN when none is scored)."""
    if np.isnan(final).all():
        return float("nan")
    return float(iqm(final[~np.isnan(final)][:, None]))


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def _ci(ci: Sequence[float]) -> str:
    return f"{ci[0]:.2f} .. {ci[1]:.2f}"


def flags_line(config: dict[str, float]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v:.6g}" for k, v in config.items())


def toml_lines(config: dict[str, float]) -> list[str]:
    return [f"{k} = {v:.6g}" for k, v in config.items()]


def search(
    config: TrainConfig,
    space: Sequence[str] | Sequence[Dimension],
    trials: int,
    seeds: int = 2,
    *,
    sampler: str = "random",
    sample_seed: int = 0,
    top: int = 3,
    confirm_seeds: int = 8,
    out: str | os.PathLike,
    overwrite: bool = False,
    max_runs_per_call: int | None = None,
    progress: bool = False,
) -> SearchResults:
    """Sample `trials` configs of `space` around `config`, run each on `seeds` seeds in
    one compiled program, re-run the `top` best on `confirm_seeds` fresh seeds, and write
    summary.json and report.md in `out` (with the two sweeps in `select/` and
    `confirm/`). Every argument is checked, in one line each, before anything compiles."""
    from vecpg.run.api import sweep_points

    dims = _check(config, space, trials, seeds, sampler, sample_seed, top, confirm_seeds)
    out = Path(out)
    check_out_dir(out, overwrite)
    points = sample(dims, trials, sampler, sample_seed)
    for p in points:  # a value the base config refuses (one line), before compiling
        dataclasses.replace(config, **p)  # type: ignore[arg-type]
    selection = sweep_points(config, points, list(range(seeds)), max_runs_per_call, progress,
                             out=out / "select", overwrite=overwrite)  # fmt: skip
    scores = np.array([_finite(score(f)) for f in selection.final_returns()])
    best = [int(i) for i in np.argsort(-scores, kind="stable")[:top]]
    fresh = list(range(seeds, seeds + confirm_seeds))
    confirmation = sweep_points(config, [points[i] for i in best], fresh, max_runs_per_call,
                                progress, out=out / "confirm", overwrite=overwrite)  # fmt: skip
    res = SearchResults(config, dims, sampler, sample_seed, points, selection, confirmation, best)
    res.save(out)
    return res


def _check(config, space, trials, seeds, sampler, sample_seed, top, confirm_seeds):
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"invalid config={type(config).__name__}: must be a vecpg.TrainConfig")
    for name, value, low in (("trials", trials, 1), ("seeds", seeds, 1), ("top", top, 1),
                             ("confirm_seeds", confirm_seeds, 1),
                             ("sample_seed", sample_seed, 0)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"invalid {name}={value!r}: must be an integer >= {low}")
    if top > trials:
        raise ConfigError(f"invalid top={top}: must be at most trials={trials}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"invalid sampler={sampler!r}: allowed: {', '.join(SAMPLERS)}")
    if all(isinstance(d, Dimension) for d in space) and space:
        return tuple(space)
    return parse_space([str(d) for d in space])
