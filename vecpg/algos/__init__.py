"""Algorithm registry: name -> make(static, agent) -> Updater. The config's list of
algorithm names is this registry's keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vecpg.algos import a2c, penalty, ppo, trust_region
from vecpg.algos.base import Batch, Updater
from vecpg.models.networks import Agent

if TYPE_CHECKING:
    from vecpg.config import StaticConfig

REGISTRY: dict[str, Callable[[StaticConfig, Agent], Updater]] = {
    "a2c": a2c.make,
    "ppo": ppo.make,
    "ppo_kl": penalty.make_ppo_kl,
    "dual": penalty.make_dual,
    "npg": trust_region.make_npg,
    "trpo": trust_region.make_trpo,
}


# Per-algorithm defaults: TrainConfig fields that differ from the shared defaults (which
# are PPO's). The CLI applies them unless the flag is given; `TrainConfig.for_algo` too.
DEFAULTS: dict[str, dict[str, Any]] = {"a2c": a2c.DEFAULTS}

# Algorithms whose one optimiser step per iteration takes the whole batch (`sgd_step` on
# it, no `minibatch_epochs`). Every other algorithm's `mean_grad` gets minibatches (npg
# and trpo: their critic's; the natural step itself has no reshape by devices). Read by
# `base.mean_grad_batch`, which sizes a lane's device row.
FULL_BATCH_STEP: frozenset[str] = frozenset({"a2c"})


def make_updater(static: StaticConfig, agent: Agent) -> Updater:
    """The (init, update) pair of `static.algo` (validated against REGISTRY already)."""
    return REGISTRY[static.algo](static, agent)


__all__ = ["Batch", "DEFAULTS", "FULL_BATCH_STEP", "REGISTRY", "Updater", "make_updater"]
