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
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecpg.analysis.stats import iqm, stratified_bootstrap_ci
from vecpg.config import TrainConfig
from vecpg.errors import ConfigError
from vecpg.run.api import plan_launch
from vecpg.run.files import check_out_dir, make_run_dir, write_json, write_text
from vecpg.run.launch import Launch, check_checkpoint_every, check_max_runs
from vecpg.run.rundir import SweepResults
from vecpg.run.tracking import WandbOptions
from vecpg.training.pbt import pbt_options
from vecpg.training.reads import check_varied_fields
from vecpg.tuning.optuna_rounds import (
    OPTUNA_SAMPLERS,
    ask_tell_rounds,
    import_optuna,
    round_sizes,
)
from vecpg.tuning.pbt_search import PBTResults, check_pbt, run_pbt
from vecpg.tuning.space import SAMPLERS, Dimension, parse_space, sample
from vecpg.tuning.stages import ARGS, read_search, run_stage

SUMMARY = "summary.json"
MAX_TRIALS = 100_000
DEFAULT_TOP = 3  # configs confirmed on fresh seeds
DEFAULT_ROUNDS = 4  # tpe / cmaes: the trials over this many ask-and-tell rounds
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
    selection: SweepResults  # trials x selection seeds (the rounds' sweeps together)
    confirmation: SweepResults  # top configs x fresh seeds
    top: list[int]  # trial indices, best first
    rounds: int = 1  # tpe / cmaes: ask-and-tell rounds (select-1/, select-2/, ...)

    def selection_scores(self) -> np.ndarray:
        """[trials] IQM of final return over the selection seeds (NaN: no score)."""
        return scores_of(self.selection)

    def best(self) -> int:
        """The trial with the best confirmed IQM among the top configs (the selection score
        picked the top; the fresh seeds pick among them)."""
        confirmed = [_finite(x) for x in scores_of(self.confirmation)]
        return self.top[int(np.argmax(confirmed))]

    def summary(self) -> dict[str, Any]:
        sel, sel_finals = self.selection_scores(), self.selection.final_returns()
        rows = []
        for rank, (i, final) in enumerate(zip(self.top, self.confirmation.final_returns(),
                                              strict=True)):  # fmt: skip
            lo, hi = stratified_bootstrap_ci(final[:, None], iqm)
            s_lo, s_hi = stratified_bootstrap_ci(sel_finals[i][:, None], iqm)
            rows.append({
                "rank": rank + 1, "trial": i, "config": self.trials[i],
                "selection_iqm": float(sel[i]), "selection_ci95": [s_lo, s_hi],
                "confirmed_iqm": iqm(final[:, None]), "confirmed_ci95": [lo, hi],
                "confirmed_mean": float(np.nanmean(final)),
            })  # fmt: skip
        chosen = self.best()
        best = self.trials[chosen]
        return {
            "space": [d.describe() for d in self.space],
            "sampler": self.sampler,
            "sample_seed": self.sample_seed,
            "rounds": self.rounds,
            "selection_seeds": self.selection.seeds,
            "confirmation_seeds": self.confirmation.seeds,
            "trials": [
                {"trial": i, "config": t, "selection_iqm": float(sel[i])}
                for i, t in enumerate(self.trials)
            ],  # fmt: skip
            "top": rows,
            "best": {
                "trial": chosen,
                "chosen_by": "confirmed IQM among the top configs",
                "config": best,
                "flags": flags_line(self.base, best),
                "toml": toml_lines(self.base, best),
            },
            "base_config": self.base.to_dict(),
        }

    def report_markdown(self, s: dict[str, Any] | None = None) -> str:
        """report.md, from `summary()` (computed here unless given)."""
        s = self.summary() if s is None else s
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
        lines += ["", f"Best config (trial {s['best']['trial']}, the best confirmed IQM of "
                  f"the top {len(self.top)}) as flags: `{s['best']['flags']}`", "",
                  "As TOML:", "", "```toml", *s["best"]["toml"], "```", "",
                  "Every trial, by selection score:", "", "| trial | config | selection IQM |",
                  "|---|---|---|"]  # fmt: skip
        for t in sorted(s["trials"], key=lambda t: -_finite(t["selection_iqm"])):
            cfg = ", ".join(f"{k}={v:.4g}" for k, v in t["config"].items())
            lines.append(f"| {t['trial']} | {cfg} | {t['selection_iqm']:.2f} |")
        return "\n".join(lines) + "\n"

    def save(self, out: Path) -> None:
        summary = self.summary()  # its bootstrap CIs, computed once for both files
        write_json(out / SUMMARY, summary)  # NaN (no score) as null
        write_text(out / REPORT, self.report_markdown(summary))


def scores_of(sweep: SweepResults) -> np.ndarray:
    """[points] IQM of each point's final returns over its seeds (NaN: none scored)."""
    return np.array([iqm(final[:, None]) for final in sweep.final_returns()])


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def _ci(ci: Sequence[float]) -> str:
    return f"{ci[0]:.2f} .. {ci[1]:.2f}"


def best_fields(base: TrainConfig, point: dict[str, float]) -> dict[str, Any]:
    """The whole config to train: algo and env, every base field that differs from
    the algorithm's defaults, then the found values (exact: repr round-trips a float)."""
    defaults = TrainConfig.for_algo(base.algo).to_dict()
    ours = {**base.to_dict(), **point}
    fields = {"algo": base.algo, "env": base.env}
    fields |= {k: v for k, v in ours.items() if k not in fields and v != defaults.get(k)}
    return fields


def flags_line(base: TrainConfig, point: dict[str, float]) -> str:
    """`vecpg train` flags for the base config with `point`'s values."""
    out = []
    for k, v in best_fields(base, point).items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            out.append(f"{flag} {' '.join(str(x) for x in v)}")
        else:
            out.append(f"{flag} {v!r}" if isinstance(v, float) else f"{flag} {v}")
    return " ".join(out)


def toml_lines(base: TrainConfig, point: dict[str, float]) -> list[str]:
    """The same as TOML (`vecpg study --config` and `TrainConfig.from_dict` read it)."""
    return [f"{k} = {json.dumps(v)}" for k, v in best_fields(base, point).items()]


def search(
    config: TrainConfig,
    space: Sequence[str] | Sequence[Dimension],
    trials: int,
    seeds: int = 2,
    *,
    sampler: str = "random",
    sample_seed: int = 0,
    top: int = DEFAULT_TOP,
    confirm_seeds: int = 8,
    rounds: int | None = None,
    out: str | os.PathLike,
    overwrite: bool = False,
    max_runs_per_call: int | None = None,
    progress: bool = False,
    pbt_interval: int = 0,
    pbt_fraction: float = 0.25,
    pbt_resample: float = 0.25,
    checkpoint_every: int = 0,
    wandb: WandbOptions | None = None,
) -> SearchResults | PBTResults:
    """Sample `trials` configs of `space` around `config`, run each on `seeds` seeds in
    one compiled program, re-run the `top` best on `confirm_seeds` fresh seeds, and write
    summary.json and report.md in `out` (with the two sweeps in `select/` and
    `confirm/`). Every argument is checked, in one line each, before anything compiles.

    With `pbt_interval` K > 0: population-based training instead (`vecpg.tuning.
    pbt_search`): each seed's trials are one population, exploiting and exploring every
    K iterations (`pbt_fraction`: the bottom / top quantile; `pbt_resample`: the
    probability of a fresh draw), against the same configs without PBT; `top` and
    `confirm_seeds` are not used.

    `checkpoint_every` N checkpoints every sweep of the search every N iterations, and
    `resume_search(out)` continues a stopped search: finished sweeps are read back,
    an unfinished one resumes from its last checkpoint. `wandb` logs every lane of every
    sweep (one W&B run each)."""
    args = {"space": [d.describe() if isinstance(d, Dimension) else d for d in space]
            if isinstance(space, Sequence) and not isinstance(space, (str, bytes)) else space,
            "trials": trials, "seeds": seeds, "sampler": sampler, "sample_seed": sample_seed,
            "top": top, "confirm_seeds": confirm_seeds, "rounds": rounds,
            "max_runs_per_call": max_runs_per_call, "pbt_interval": pbt_interval,
            "pbt_fraction": pbt_fraction, "pbt_resample": pbt_resample,
            "checkpoint_every": checkpoint_every}  # fmt: skip
    return _search(config, args, Path(out), overwrite, progress, wandb, resuming=False)


def resume_search(
    out: str | os.PathLike, progress: bool = False, wandb: WandbOptions | None = None
) -> SearchResults | PBTResults:
    """Continue the search in `out` with the arguments it was started with (search.json):
    its finished sweeps are read back, an unfinished one continues from its last
    checkpoint (or from the start without `checkpoint_every`), the rest run."""
    out = Path(out)
    config, args = read_search(out)
    return _search(config, args, out, False, progress, wandb, resuming=True)


def _search(config: TrainConfig, a: dict[str, Any], out: Path, overwrite: bool,
            progress: bool, wandb: WandbOptions | None,
            resuming: bool) -> SearchResults | PBTResults:  # fmt: skip
    """The search of `search` (arguments `a`, as search.json records them), every argument
    checked before anything is written; `resuming` reuses the stages already in `out`."""
    pbt_interval, sampler, top = a["pbt_interval"], a["sampler"], a["top"]
    if pbt_interval and isinstance(top, int) and isinstance(a["trials"], int):
        top = min(top, a["trials"])  # PBT confirms nothing: --top is not used
    dims = _check(config, a["space"], a["trials"], a["seeds"], sampler, a["sample_seed"], top,
                  a["confirm_seeds"])  # fmt: skip
    if pbt_interval:
        check_pbt(dims, sampler, a["trials"], pbt_interval, a["pbt_fraction"], a["pbt_resample"])
    check_checkpoint_every(a["checkpoint_every"], True)
    if not resuming:
        check_varied_fields(config.static(), config.hparams(), [d.name for d in dims], "space")
        check_out_dir(out, overwrite)
    rounds = _check_rounds(sampler, a["rounds"], a["trials"])
    if sampler in OPTUNA_SAMPLERS:
        import_optuna()  # one line without the extra, before anything is written
        points: list[dict[str, float]] = []  # asked round by round
    else:
        points = distinct(sample(dims, a["trials"], sampler, a["sample_seed"]))
        if pbt_interval and len(points) < 2:
            raise ConfigError("invalid space: it holds one config, too few for a population")
        if len(points) < top and not pbt_interval:
            raise ConfigError(
                f"invalid top={top}: the space holds only {len(points)} distinct configs"
            )
        for p in points:  # a value the base config refuses (one line), before compiling
            dataclasses.replace(config, **p)  # type: ignore[arg-type]
    check_max_runs(a["max_runs_per_call"])
    if pbt_interval:  # the populations must fit one call: refused before anything is written
        options = pbt_options(dims, pbt_interval, a["pbt_fraction"], a["pbt_resample"],
                              a["sample_seed"])  # fmt: skip
        launch = Launch("sweep", list(range(a["seeds"])), points, a["max_runs_per_call"],
                        pbt=options)  # fmt: skip
        plan_launch(config, launch)
    if not resuming:
        make_run_dir(out, overwrite)  # marked: a later --overwrite may replace it whole
        write_json(out / ARGS, {"config": config.to_dict(), "args": a})
    seeds = a["seeds"]
    stage = functools.partial(run_stage, config, max_runs_per_call=a["max_runs_per_call"],
                              checkpoint_every=a["checkpoint_every"], progress=progress,
                              wandb=wandb, resuming=resuming)  # fmt: skip
    if pbt_interval:
        return run_pbt(config, dims, points, seeds, sampler, a["sample_seed"], out, options,
                       stage)  # fmt: skip
    selection_seeds = list(range(seeds))
    if sampler in OPTUNA_SAMPLERS:
        sweeps: list[SweepResults] = []

        def evaluate(r: int, batch: list[dict[str, float]]) -> list[float]:
            sweeps.append(stage(out / f"select-{r + 1}", batch, selection_seeds))
            return list(scores_of(sweeps[-1]))

        batches = ask_tell_rounds(dims, a["trials"], rounds, sampler, a["sample_seed"], evaluate)
        points = [p for b in batches for p in b]
        selection = concat_sweeps(sweeps)
    else:
        selection = stage(out / "select", points, selection_seeds)
    scores = np.array([_finite(x) for x in scores_of(selection)])
    best = top_distinct(points, scores, top)
    fresh = list(range(seeds, seeds + a["confirm_seeds"]))
    confirmation = stage(out / "confirm", [points[i] for i in best], fresh)
    res = SearchResults(config, dims, sampler, a["sample_seed"], points, selection, confirmation,
                        best, rounds)  # fmt: skip
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
    if sampler not in (*SAMPLERS, *OPTUNA_SAMPLERS):
        allowed = ", ".join((*SAMPLERS, *OPTUNA_SAMPLERS))
        raise ConfigError(f"invalid sampler={sampler!r}: allowed: {allowed}")
    if trials > MAX_TRIALS:
        raise ConfigError(f"invalid trials={trials}: must be at most {MAX_TRIALS}")
    if isinstance(space, (str, bytes)) or not isinstance(space, Sequence):
        raise ConfigError(
            f"invalid space={space!r}: must be a list of specs such as ['lr=log:1e-5:1e-2']"
        )
    # Dimensions are read back from their exact spec, so they are checked as strings are
    return parse_space([d.describe() if isinstance(d, Dimension) else str(d) for d in space])


def _check_rounds(sampler: str, rounds: int | None, trials: int) -> int:
    """The rounds that run (`round_sizes`: 5 trials over 4 rounds run in 3): a search
    records its rounds, and reading it back opens each round's sweep."""
    if rounds is None:
        if sampler not in OPTUNA_SAMPLERS:
            return 1
        rounds = min(DEFAULT_ROUNDS, trials)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ConfigError(f"invalid rounds={rounds!r}: must be an integer >= 1")
    if rounds > trials:
        raise ConfigError(f"invalid rounds={rounds}: must be at most trials={trials}")
    if rounds > 1 and sampler not in OPTUNA_SAMPLERS:
        raise ConfigError(
            f"invalid rounds={rounds}: {sampler} samples every trial at once; rounds are for "
            f"{' and '.join(OPTUNA_SAMPLERS)}"
        )
    return len(round_sizes(trials, rounds))


def top_distinct(points: list[dict[str, float]], scores: np.ndarray, k: int) -> list[int]:
    """The indices of the k best-scoring points, best first (ties: the earlier), a config
    asked twice counted once."""
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(points[int(i)] != points[j] for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    if len(chosen) < k:
        raise ConfigError(f"invalid top={k}: the search found only {len(chosen)} distinct configs")
    return chosen


def concat_sweeps(sweeps: list[SweepResults]) -> SweepResults:
    """Sweeps of the same base and seeds as one: their points and metrics in order."""
    first = sweeps[0]
    return dataclasses.replace(
        first,
        points=[p for s in sweeps for p in s.points],
        metrics={k: np.concatenate([s.metrics[k] for s in sweeps]) for k in first.metrics},
        compile_s=sum(s.compile_s for s in sweeps),
        run_s=sum(s.run_s for s in sweeps),
        num_calls=sum(s.num_calls for s in sweeps),
    )


def distinct(points: list[dict[str, float]]) -> list[dict[str, float]]:
    """`points` without repeats (a space of choices holds few configs), in order."""
    seen: set[tuple] = set()
    out = []
    for p in points:
        key = tuple(sorted(p.items()))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def load_search(out: str | os.PathLike) -> SearchResults | PBTResults:
    """A finished search rebuilt from its directory (summary.json and the two sweeps),
    e.g. to write its report again with `save`."""
    from vecpg.run.files import read_json
    from vecpg.run.rundir import load_sweep
    from vecpg.tuning.pbt_search import load_pbt_search

    out = Path(out)
    s = read_json(out, SUMMARY)
    if "pbt" in s:
        return load_pbt_search(out)
    rounds = int(s.get("rounds", 1))
    if s["sampler"] in OPTUNA_SAMPLERS:
        selection = concat_sweeps([load_sweep(out / f"select-{r + 1}") for r in range(rounds)])
    else:
        selection = load_sweep(out / "select")
    confirmation = load_sweep(out / "confirm")
    trials = selection.points
    top = [trials.index(p) for p in confirmation.points]
    space = parse_space(s["space"])
    return SearchResults(selection.base, space, s["sampler"], s["sample_seed"], trials,
                         selection, confirmation, top, rounds)  # fmt: skip
