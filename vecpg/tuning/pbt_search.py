"""`vecpg search --pbt`: population-based training against the best fixed config.

The trials (configs sampled from the space) are one population per seed, trained by PBT
in one compiled program (`vecpg.training.pbt`; `pbt/`). The same configs on the same
seeds are then trained without PBT (`fixed/`: a plain sweep), so both sides spend the
same env steps: population size x steps per member.

Score of a population: the best final return among its members (mean episode return
over the last 10% of iterations; a member diverged at the end has none). For the fixed
side it is the best of the sampled configs on that seed: both sides take a maximum over
the same number of members, so neither gets a selection advantage the other lacks.
Reported over the populations: IQM with 95% stratified-bootstrap CIs, and P(PBT > fixed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vecpg.analysis.stats import iqm, probability_of_improvement, stratified_bootstrap_ci
from vecpg.config import TrainConfig
from vecpg.errors import ConfigError
from vecpg.run.files import write_json, write_text
from vecpg.run.rundir import SweepResults, final_returns
from vecpg.training.pbt import ONLY_AT_START, PERTURB_FACTORS, pbt_spec
from vecpg.tuning.space import SAMPLERS, Dimension

SUMMARY = "summary.json"
REPORT = "report.md"
CURVES = "pbt_vs_fixed.png"
SCHEDULES = "pbt_schedules.png"


@dataclasses.dataclass
class PBTResults:
    """A PBT search: the populations (`pbt`: [members, populations, iterations] metrics)
    and the same configs and seeds without PBT (`fixed`)."""

    base: TrainConfig
    space: tuple[Dimension, ...]
    sampler: str
    sample_seed: int
    trials: list[dict[str, float]]
    options: dict[str, Any]  # `pbt_options`
    pbt: SweepResults
    fixed: SweepResults

    def population_scores(self, sweep: SweepResults) -> np.ndarray:
        """[populations] the best member's final return (NaN: no member has one)."""
        finals = member_finals(sweep)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(finals).any(axis=0)
            return np.where(ok, np.nanmax(np.where(ok, finals, 0.0), axis=0), np.nan)

    def summary(self) -> dict[str, Any]:
        pbt, fixed = self.population_scores(self.pbt), self.population_scores(self.fixed)
        members = member_finals(self.pbt)
        best_member = [int(np.nanargmax(c)) if np.isfinite(c).any() else None
                       for c in members.T]  # fmt: skip
        schedules = {d.name: self.pbt.metrics[f"hp_{d.name}"] for d in self.space}
        copies = self.pbt.metrics["pbt_copied"] >= 0
        steps = self.base.num_iterations * self.base.batch_size
        fixed_finals = member_finals(self.fixed)  # [trials, seeds]
        both = np.isfinite(pbt) & np.isfinite(fixed)
        cut = pbt_spec(self.options, len(self.pbt.seeds), len(self.trials)).cut
        return {
            "space": [d.describe() for d in self.space],
            "sampler": self.sampler,
            "sample_seed": self.sample_seed,
            "pbt": {**self.options, "perturb_factors": list(PERTURB_FACTORS)},
            "population_size": len(self.trials),
            "populations": self.pbt.seeds,
            "env_steps_per_member": steps,
            "env_steps_per_population": steps * len(self.trials),
            "trials": [
                {
                    "trial": i,
                    "config": t,
                    "fixed_iqm": iqm(fixed_finals[i][:, None]),
                    "fixed_final_per_seed": _floats(fixed_finals[i]),
                }
                for i, t in enumerate(self.trials)
            ],  # fmt: skip
            "replaced_per_exploit": cut,
            "copies": int(copies.sum()),
            "pbt_scores": _floats(pbt),
            "fixed_scores": _floats(fixed),
            "pbt_iqm": iqm(pbt[:, None]),
            "pbt_ci95": list(stratified_bootstrap_ci(pbt[:, None], iqm)),
            "fixed_iqm": iqm(fixed[:, None]),
            "fixed_ci95": list(stratified_bootstrap_ci(fixed[:, None], iqm)),
            "p_pbt_better": probability_of_improvement(pbt[:, None], fixed[:, None]),
            "pbt_wins": int(np.sum(pbt[both] > fixed[both])),
            "paired_populations": int(both.sum()),
            "best_fixed_trial": [
                None if not np.isfinite(c).any() else int(np.nanargmax(c)) for c in fixed_finals.T
            ],  # fmt: skip
            "best_member_final_hparams": [
                None if m is None else {k: float(v[m, p, -1]) for k, v in schedules.items()}
                for p, m in enumerate(best_member)
            ],
            "base_config": self.base.to_dict(),
        }

    def report_markdown(self, s: dict[str, Any] | None = None) -> str:
        s = self.summary() if s is None else s
        o = s["pbt"]
        lines = [
            f"# PBT search: {self.base.algo} on {self.base.env}",
            "",
            f"Space: {', '.join(s['space'])}. {len(s['populations'])} populations (seeds "
            f"{s['populations']}) of {s['population_size']} members, the initial members "
            f"sampled by {self.sampler} (seed {self.sample_seed}). Every {o['interval']} "
            f"iterations the bottom {s['replaced_per_exploit']} ranked member(s) of each "
            f"population (fraction {o['fraction']:g}) and every diverged one copy the state "
            f"of one of the top {s['replaced_per_exploit']} and perturb its hyperparameters "
            f"(x{PERTURB_FACTORS[0]:g} / x{PERTURB_FACTORS[1]:g}, or a choice's neighbour; "
            f"resampled with probability {o['resample_prob']:g}); {s['copies']} copies made.",
            "",
            f"Fixed: the same {s['population_size']} configs on the same seeds without PBT. "
            f"Both sides spend {s['env_steps_per_population']:,} env steps per population "
            f"({s['env_steps_per_member']:,} per member).",
            "",
            "Score of a population: its best member's final return (mean episode return over "
            "the last 10% of iterations); on the fixed side, the best of the configs on that "
            "seed. Both are maxima over the same number of members on the seeds they trained "
            "on (no fresh-seed confirmation: a PBT schedule belongs to its population). IQM "
            "over populations, 95% stratified-bootstrap CIs.",
            "",
            "| | IQM | 95% CI |",
            "|---|---|---|",
            f"| PBT | {s['pbt_iqm']:.2f} | {_ci(s['pbt_ci95'])} |",
            f"| fixed configs (best per seed) | {s['fixed_iqm']:.2f} | {_ci(s['fixed_ci95'])} |",
            "",
            f"P(PBT > fixed) = {s['p_pbt_better']:.2f} over the populations; PBT scored higher "
            f"on {s['pbt_wins']} of {s['paired_populations']} seeds.",
            "",
            f"![best return over env steps]({CURVES})",
            "",
            f"![PBT's hyperparameter schedules]({SCHEDULES})",
            "",
            "| population | PBT | fixed | best fixed trial | PBT best member's final "
            "hyperparameters |",
            "|---|---|---|---|---|",
        ]
        for p, seed in enumerate(s["populations"]):
            hp = s["best_member_final_hparams"][p]
            shown = ", ".join(f"{k}={v:.4g}" for k, v in hp.items()) if hp else "-"
            lines.append(
                f"| {seed} | {_num(s['pbt_scores'][p])} | {_num(s['fixed_scores'][p])} | "
                f"{s['best_fixed_trial'][p]} | {shown} |"
            )
        lines += ["", "Every trial trained fixed, IQM of its final return over the seeds:", "",
                  "| trial | config | fixed IQM |", "|---|---|---|"]  # fmt: skip
        for t in s["trials"]:
            cfg = ", ".join(f"{k}={v:.4g}" for k, v in t["config"].items())
            lines.append(f"| {t['trial']} | {cfg} | {_num(t['fixed_iqm'])} |")
        return "\n".join(lines) + "\n"

    def save(self, out: Path) -> None:
        summary = self.summary()
        write_json(out / SUMMARY, summary)
        write_text(out / REPORT, self.report_markdown(summary))
        plot_best_curves(self, out / CURVES)
        plot_schedules(self, out / SCHEDULES)


def member_finals(sweep: SweepResults) -> np.ndarray:
    """[members, populations] each lane's final return, NaN where it ended diverged."""
    finals = final_returns(sweep.metrics["episode_return"])
    return np.where(sweep.metrics["diverged"][..., -1] > 0, np.nan, finals)


def best_curve(sweep: SweepResults) -> np.ndarray:
    """[populations, iterations] the best member's return at each iteration (NaN
    before any member finished an episode, or where the member is diverged)."""
    ret = np.where(sweep.metrics["diverged"] > 0, np.nan, sweep.metrics["episode_return"])
    seen = np.isfinite(ret).any(axis=0)
    return np.where(seen, np.nanmax(np.where(np.isfinite(ret), ret, -np.inf), axis=0), np.nan)


def plot_best_curves(res: PBTResults, path: Path) -> None:
    from vecpg.analysis.plots import BAND, pyplot
    from vecpg.analysis.stats import mean_bootstrap_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    steps = res.pbt.metrics["env_steps"][0, 0] * len(res.trials)
    for name, sweep in (("PBT", res.pbt), ("fixed configs", res.fixed)):
        mean, lo, hi = mean_bootstrap_curve(best_curve(sweep))
        ax.plot(steps, mean, lw=2, label=f"{name}: best member, mean of populations")
        ax.fill_between(steps, lo, hi, alpha=0.25)
    ax.set_xlabel("env steps per population (all members)")
    ax.set_ylabel("episode return")
    ax.set_title(f"{res.base.algo} on {res.base.env}: PBT vs fixed ({BAND})", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_schedules(res: PBTResults, path: Path) -> None:
    """Each searched field over env steps, every member of the first population."""
    from vecpg.analysis.plots import pyplot

    plt = pyplot()
    n = len(res.space)
    fig, axes = plt.subplots(n, 1, figsize=(6, 2.2 * n + 0.6), dpi=100, squeeze=False)
    steps = res.pbt.metrics["env_steps"][0, 0]
    finals = member_finals(res.pbt)[:, 0]
    best = int(np.nanargmax(finals)) if np.isfinite(finals).any() else -1
    for ax, dim in zip(axes[:, 0], res.space, strict=True):
        values = res.pbt.metrics[f"hp_{dim.name}"][:, 0]
        for m, v in enumerate(values):
            ax.plot(steps, v, lw=2.2 if m == best else 0.8, alpha=1.0 if m == best else 0.5,
                    label="best member" if m == best else None)  # fmt: skip
        if dim.kind == "log":
            ax.set_yscale("log")
        ax.set_ylabel(dim.name, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"PBT schedules, population seed {res.pbt.seeds[0]}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("env steps (per member)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_pbt(space: tuple[Dimension, ...], sampler: str, trials: int, interval: int,
              fraction: float, resample_prob: float) -> None:  # fmt: skip
    """One line for each PBT setting it cannot run with, before anything is written."""
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ConfigError(f"invalid pbt_interval={interval!r}: must be an integer >= 1")
    if sampler not in SAMPLERS:
        raise ConfigError(
            f"invalid sampler={sampler!r}: PBT samples its initial population at once: "
            f"allowed: {', '.join(SAMPLERS)}"
        )
    if trials < 2:
        raise ConfigError(f"invalid trials={trials}: a PBT population needs at least 2 members")
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 0.5:
        raise ConfigError(
            f"invalid pbt_fraction={fraction!r}: must be in (0, 0.5] (the bottom and top "
            "quantiles must not overlap)"
        )
    if not isinstance(resample_prob, (int, float)) or not 0 <= resample_prob <= 1:
        raise ConfigError(f"invalid pbt_resample={resample_prob!r}: must be in [0, 1]")
    for d in space:
        if d.name in ONLY_AT_START:
            raise ConfigError(
                f"invalid space {d.describe()!r}: {d.name} is read once, when training "
                "starts, so PBT has no schedule of it to find; search it without --pbt"
            )


def run_pbt(config: TrainConfig, dims: tuple[Dimension, ...], points: list[dict[str, float]],
            seeds: int, sampler: str, sample_seed: int, out: Path, options: dict[str, Any],
            stage: Callable[..., SweepResults]) -> PBTResults:  # fmt: skip
    """The populations (`out/pbt`, PBT's `options`: `pbt_options`), then the same configs
    without PBT (`out/fixed`), each run (or read back, or resumed) by `stage(path,
    points, seeds, pbt options)`."""
    seed_ids = list(range(seeds))
    pbt = stage(out / "pbt", points, seed_ids, options)
    fixed = stage(out / "fixed", points, seed_ids)
    res = PBTResults(config, dims, sampler, sample_seed, points, options, pbt, fixed)
    res.save(out)
    return res


def load_pbt_search(out: Path) -> PBTResults:
    from vecpg.run.files import read_json
    from vecpg.run.rundir import load_sweep
    from vecpg.tuning.space import parse_space

    s = read_json(out, SUMMARY)
    pbt, fixed = load_sweep(out / "pbt"), load_sweep(out / "fixed")
    options = {k: v for k, v in s["pbt"].items() if k != "perturb_factors"}
    return PBTResults(pbt.base, parse_space(s["space"]), s["sampler"], s["sample_seed"],
                      pbt.points, options, pbt, fixed)  # fmt: skip


def _floats(x: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in x]


def _num(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"


def _ci(ci: Any) -> str:
    return f"{ci[0]:.2f} .. {ci[1]:.2f}"
