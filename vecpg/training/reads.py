"""Which traced hyperparameters a config's program reads.

A sweep or search over a field the algorithm never reads (`clip_eps` for trpo,
`natural_lr` for ppo) trains every point alike and ranks noise; `check_varied_fields`
refuses it in one line before anything runs. The answer comes from the program itself
(its jaxpr), so no table of fields per algorithm has to be kept in step with the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import jax
import jax.extend.core
import jax.numpy as jnp

from vecpg.config import HParams, StaticConfig
from vecpg.errors import ConfigError

# What every algorithm reads (tests/test_reads.py checks it against hparams_read): a
# sweep over these alone needs no trace (brax hopper's took 5.7 s in a fresh process)
ALWAYS_READ = frozenset({"learning_rate", "gamma", "gae_lambda", "max_grad_norm", "reward_scale"})


def hparams_read(static: StaticConfig, hp: HParams) -> set[str]:
    """The HParams fields that one lane's init and one training iteration take as an
    input of some operation (a field only passed through counts too: the answer errs
    towards "read"). Traces the program once; compiles nothing."""
    from vecpg.training.trainer import init_train_state, make_pieces, train_iteration

    p = make_pieces(static)

    def one_iteration(key: jax.Array, hp: HParams):
        return train_iteration(p, init_train_state(p, key, hp), hp, jnp.int32(0))

    key = jax.random.key(0)
    jaxpr = jax.make_jaxpr(one_iteration)(key, hp).jaxpr
    taken = {v for eqn in jaxpr.eqns for v in eqn.invars if isinstance(v, jax.extend.core.Var)}
    taken |= {v for v in jaxpr.outvars if isinstance(v, jax.extend.core.Var)}
    named = jax.tree_util.tree_flatten_with_path(hp)[0]
    hp_vars = jaxpr.invars[len(jax.tree.leaves(key)) :]
    return {path[0].name for (path, _), var in zip(named, hp_vars, strict=True) if var in taken}


def check_varied_fields(static: StaticConfig, hp: HParams, names: Iterable[str], what: str) -> None:
    """One line if `static`'s program reads none of some of `names` (the fields a sweep
    or search varies; `what` names the argument, e.g. "grid")."""
    fields = {f.name for f in dataclasses.fields(hp)}  # other names get their own line later
    names = sorted((set(names) & fields) - ALWAYS_READ)
    if not names:
        return
    unread = [n for n in names if n not in hparams_read(static, hp)]
    if unread:
        listed = ", ".join(unread)
        raise ConfigError(
            f"invalid {what}: {static.algo} never reads {listed}, so every value would train "
            "alike; vary a field it uses"
        )
