"""Optuna's samplers (TPE, CMA-ES) asked for a batch of trials per compiled call.

vecpg writes no Bayesian optimiser of its own: each round asks Optuna's sampler for a
batch of configs (`study.ask` with the space's distributions), vecpg runs the batch as
lanes of one program, and the scores are told back (`study.tell`; a config with no score
is told as failed) before the next round. Needs the `search` extra (optuna, cmaes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from vecpg.errors import ConfigError
from vecpg.tuning.space import Dimension

OPTUNA_SAMPLERS = ("tpe", "cmaes")


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "invalid sampler: tpe and cmaes use Optuna; install it with pip install 'vecpg[search]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(space: Sequence[Dimension]) -> dict:
    optuna = import_optuna()
    out = {}
    for d in space:
        if d.kind == "choice":
            out[d.name] = optuna.distributions.CategoricalDistribution(list(d.values))
        else:
            out[d.name] = optuna.distributions.FloatDistribution(d.low, d.high, log=d.kind == "log")
    return out


def round_sizes(trials: int, rounds: int) -> list[int]:
    """The trials each round asks: ceil(trials / rounds) a round until none are left, so
    5 trials over 4 rounds ask 2, 2, 1 (three rounds)."""
    per_round = math.ceil(trials / rounds)
    return [min(per_round, trials - start) for start in range(0, trials, per_round)]


def ask_tell_rounds(
    space: Sequence[Dimension],
    trials: int,
    rounds: int,
    sampler: str,
    seed: int,
    evaluate: Callable[[int, list[dict[str, float]]], Sequence[float]],
) -> list[list[dict[str, float]]]:
    """`trials` configs over `rounds` rounds (as equal as can be): each round asks the
    sampler for its batch, `evaluate(round, batch)` scores it (higher is better; NaN: no
    score) and the scores are told back. Returns the batches, in order."""
    optuna = import_optuna()
    cls = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler}[sampler]
    study = optuna.create_study(direction="maximize", sampler=cls(seed=seed))
    dists = distributions(space)
    batches = []
    for r, n in enumerate(round_sizes(trials, rounds)):
        asked = [study.ask(dists) for _ in range(n)]
        batch = [{k: float(v) for k, v in t.params.items()} for t in asked]
        for t, score in zip(asked, evaluate(r, batch), strict=True):
            if np.isfinite(score):
                study.tell(t, float(score))
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
        batches.append(batch)
    return batches
