"""Algorithm registry: name -> make(static, agent) -> Updater."""

from __future__ import annotations

from collections.abc import Callable

from vecpg.algos import a2c, penalty, ppo, trust_region
from vecpg.algos.base import Batch, Updater
from vecpg.config import StaticConfig
from vecpg.networks import Agent

REGISTRY: dict[str, Callable[[StaticConfig, Agent], Updater]] = {
    "a2c": a2c.make,
    "ppo": ppo.make,
    "ppo_kl": penalty.make_ppo_kl,
    "dual": penalty.make_dual,
    "npg": trust_region.make_npg,
    "trpo": trust_region.make_trpo,
}


def make_updater(static: StaticConfig, agent: Agent) -> Updater:
    if static.algo not in REGISTRY:
        raise NotImplementedError(f"algo={static.algo!r} is not implemented yet")
    return REGISTRY[static.algo](static, agent)


__all__ = ["Batch", "REGISTRY", "Updater", "make_updater"]
