"""Population-based training (Jaderberg et al. 2017) inside the compiled program.

A population is a set of lanes that train side by side; their hyperparameters are
carried state (`PBTState.hparams`), not inputs. Every `interval` iterations, inside the
program, each population ranks its healthy members by their recent return: the mean,
over the iterations since the last exploit step in which episodes finished, of those
episodes' mean return (with none finished, the lane's latest return). Then:

- exploit: each ranked member in the bottom `cut` (a `fraction` of the population, at
  least one, never one of the top `cut`), and every diverged member (non-finite state),
  copies the whole training state of a member drawn uniformly from the top `cut`
  ranked ones (a healthy member with no return yet is left as it is): the
  parameters, the optimiser's state, the observation normaliser, the penalty or beta,
  the envs and recurrent states. Its PRNG key is its own folded with its lane id (the
  members of a population share a seed, hence a key stream), so the copy then samples
  its own actions and minibatches;
- explore: the copier's hyperparameters are the source's, perturbed per searched field:
  with probability `resample_prob` a fresh draw from the field's space, else a log or
  uniform field times 0.8 or 1.2 (even odds; clipped to its range) or a choice field's
  neighbouring value (even odds; clipped to the ends).

Lanes are laid out as a sweep's (point-major, then seed): lane id = member * populations
+ population, so population p is seed p's lanes, one member per sampled config. Padding
lanes (id -1) belong to no population. The draws come from `jax.random.key(seed)` folded
with the iteration and the lane id, so they do not depend on the device count or the
padding. With `interval` longer than the run, nothing is ever copied and the program
gives a plain sweep's numbers bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from vecpg.config import HParams
from vecpg.tuning.space import Dimension, parse_space

PERTURB_FACTORS = (0.8, 1.2)
ONLY_AT_START = ("init_penalty",)  # read once, by the algorithm's init: no schedule to find


@dataclasses.dataclass(frozen=True)
class PBTSpec:
    """The static half of PBT (hashable: part of the compiled program's key)."""

    dims: tuple[Dimension, ...]  # the searched fields (explore's perturbations)
    interval: int  # iterations between exploit steps
    populations: int  # independent populations (one per seed)
    size: int  # members per population (one per sampled config)
    fraction: float = 0.25  # the bottom / top quantile
    resample_prob: float = 0.25
    seed: int = 0

    @property
    def cut(self) -> int:
        """Members replaced (and sources drawn from) per population."""
        return max(1, int(self.fraction * self.size))


def pbt_options(
    space: tuple[Dimension, ...],
    interval: int,
    fraction: float = 0.25,
    resample_prob: float = 0.25,
    seed: int = 0,
) -> dict[str, Any]:
    """PBT's settings as run.json records them (`pbt_spec` reads them back)."""
    return {
        "space": [d.describe() for d in space],
        "interval": interval,
        "fraction": fraction,
        "resample_prob": resample_prob,
        "seed": seed,
    }


def pbt_spec(options: dict[str, Any], populations: int, size: int) -> PBTSpec:
    return PBTSpec(
        dims=parse_space(options["space"]),
        interval=int(options["interval"]),
        populations=populations,
        size=size,
        fraction=float(options["fraction"]),
        resample_prob=float(options["resample_prob"]),
        seed=int(options["seed"]),
    )


@flax.struct.dataclass
class PBTState:
    """One lane's PBT state: its current hyperparameters, and the sum and count of its
    returns since the last exploit step."""

    hparams: HParams
    return_sum: jax.Array  # float32 scalar
    return_count: jax.Array  # float32 scalar


def init_pbt_state(hp: HParams) -> PBTState:
    zero = jnp.float32(0.0)
    return PBTState(hp, zero, zero)


def record_return(
    state: PBTState, episode_return: jax.Array, episodes_finished: jax.Array
) -> PBTState:
    """Add this iteration's mean return [R] where episodes finished in it (the
    `episode_return` metric carries the last one forward otherwise)."""
    seen = jnp.isfinite(episode_return) & (episodes_finished > 0)
    return dataclasses.replace(
        state,
        return_sum=state.return_sum + jnp.where(seen, episode_return, 0.0),
        return_count=state.return_count + seen.astype(jnp.float32),
    )


def recent_return(state: PBTState, last_return: jax.Array) -> jax.Array:
    """[R] mean return of the episodes finished since the last exploit step; where none
    finished, `last_return` [R] (the latest, NaN before a first episode ends)."""
    count = jnp.maximum(state.return_count, 1.0)
    return jnp.where(state.return_count > 0, state.return_sum / count, last_return)


def exploit_sources(
    spec: PBTSpec, score: jax.Array, healthy: jax.Array, lanes: jax.Array, u: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Which lane each lane copies. score [R] (recent return), healthy [R] bool (not
    diverged), lanes [R] int32 lane ids (-1: padding), u [R] uniforms in [0, 1) (each
    copier's draw). Returns (source [R] int32 positions, itself where it copies nothing;
    replaced [R] bool).

    Within a population, the healthy members with a finite score are ranked (ties: the
    lower position first). Replaced, when the population has a ranked member: every
    diverged member, and the ranked members of rank >= max(cut, ranked - cut) (the
    bottom `cut`, never one of the top `cut`); a healthy member without a score is left
    as it is. Source: the member of rank floor(u * n), n = min(cut, ranked members)."""
    assert score.ndim == healthy.ndim == lanes.ndim == u.ndim == 1, "[R] inputs"
    idx = jnp.arange(score.shape[0])
    valid = lanes >= 0
    population = jnp.where(valid, lanes % spec.populations, -1)
    ranked = valid & healthy & jnp.isfinite(score)
    s = jnp.where(ranked, score, -jnp.inf)
    same = (population[:, None] == population[None, :]) & valid[:, None] & valid[None, :]
    ahead = (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None]) & (idx[None, :] < idx[:, None]))
    rank = jnp.sum(same & ahead, axis=1)  # 0: the best of its population
    n_ranked = jnp.sum(same & ranked[None, :], axis=1)
    n_src = jnp.minimum(spec.cut, n_ranked)
    bottom = ranked & (rank >= jnp.maximum(spec.cut, n_ranked - spec.cut))
    replaced = valid & (n_src > 0) & (bottom | ~healthy)
    pick = jnp.minimum((u * n_src).astype(jnp.int32), jnp.maximum(n_src - 1, 0))
    chosen = jnp.argmax(same & (rank[None, :] == pick[:, None]), axis=1)
    return jnp.where(replaced, chosen, idx).astype(jnp.int32), replaced


def _at(dim: Dimension, u: jax.Array) -> jax.Array:
    """`Dimension.at` in jnp: the values at unit-interval points u [R]."""
    if dim.kind == "uniform":
        return dim.low + u * (dim.high - dim.low)
    if dim.kind == "log":
        lo, hi = jnp.log(jnp.float32(dim.low)), jnp.log(jnp.float32(dim.high))
        return jnp.exp(lo + u * (hi - lo))
    values = jnp.asarray(dim.values, jnp.float32)
    return values[jnp.minimum((u * len(dim.values)).astype(jnp.int32), len(dim.values) - 1)]


def perturb(dim: Dimension, value: jax.Array, down: jax.Array) -> jax.Array:
    """value [R] of `dim` moved one step, down [R] bool: a log or uniform field times 0.8
    (down) or 1.2, clipped to its range; a choice field to the value before (down) or
    after, clipped to the ends."""
    if dim.kind == "choice":
        values = jnp.asarray(dim.values, jnp.float32)
        i = jnp.argmin(jnp.abs(value[:, None] - values[None, :]), axis=1)
        moved = values[jnp.clip(i + jnp.where(down, -1, 1), 0, len(dim.values) - 1)]
    else:
        factor = jnp.where(down, PERTURB_FACTORS[0], PERTURB_FACTORS[1])
        moved = jnp.clip(value * factor, dim.low, dim.high)
    return moved.astype(value.dtype)


def explore(spec: PBTSpec, hp: HParams, replaced: jax.Array, u: jax.Array) -> HParams:
    """hp [R] with every searched field of the replaced lanes explored; u [R, dims, 3]
    uniforms, one row per lane and field: u[.., 0] < resample_prob -> a fresh draw at
    u[.., 2], else `perturb`, down when u[.., 1] < 0.5."""
    changes = {}
    for j, dim in enumerate(spec.dims):
        value = getattr(hp, dim.name)
        moved = perturb(dim, value, u[:, j, 1] < 0.5)
        fresh = _at(dim, u[:, j, 2]).astype(value.dtype)
        new = jnp.where(u[:, j, 0] < spec.resample_prob, fresh, moved)
        changes[dim.name] = jnp.where(replaced, new, value)
    return dataclasses.replace(hp, **changes)


def lane_uniforms(spec: PBTSpec, lanes: jax.Array, iteration: jax.Array) -> jax.Array:
    """[R, 1 + 3 * dims] uniforms per lane from key(seed), the iteration and the lane id
    (not its position, so the draws do not depend on padding or devices)."""
    key = jax.random.fold_in(jax.random.key(spec.seed), iteration)
    draw = lambda lane: jax.random.uniform(jax.random.fold_in(key, lane), (1 + 3 * len(spec.dims),))  # noqa: E731
    return jax.vmap(draw)(lanes)


def exploit_explore(
    spec: PBTSpec, state: Any, lanes: jax.Array, iteration: jax.Array
) -> tuple[Any, jax.Array]:
    """One PBT step on the lanes' `TrainState` (leaves [R, ...], `state.pbt` set; lanes
    [R] lane ids, -1: padding): returns (the new state, source [R] int32, the position
    each lane copied, itself if none). Every lane starts a new window of returns."""
    pbt: PBTState = state.pbt
    u = lane_uniforms(spec, lanes, iteration)
    score = recent_return(pbt, state.last_return)
    source, replaced = exploit_sources(spec, score, ~state.diverged, lanes, u[:, 0])
    copied = jax.tree.map(lambda x: x[source], state)
    hp = explore(spec, copied.pbt.hparams, replaced, u[:, 1:].reshape(-1, len(spec.dims), 3))
    zero = jnp.zeros_like(pbt.return_sum)
    # Members of a population share their seed, so the source's key stream equals the
    # copier's: a copier's key is folded with its lane id to sample on its own from here.
    own = jax.random.key_data(state.key)
    folded = jax.random.key_data(jax.vmap(jax.random.fold_in)(state.key, lanes))
    kept = jnp.where(replaced.reshape(-1, *([1] * (own.ndim - 1))), folded, own)
    key = jax.random.wrap_key_data(kept, impl=jax.random.key_impl(state.key))
    new = dataclasses.replace(copied, key=key, pbt=PBTState(hp, zero, zero))
    return new, source


def pbt_metrics(spec: PBTSpec, hp: HParams, source: jax.Array, lanes: jax.Array) -> dict:
    """Per lane [R]: each searched field's value in this iteration (`hp_<name>`), and
    `pbt_copied`, the lane id copied at the end of it (-1: none)."""
    idx = jnp.arange(source.shape[0])
    copied = jnp.where(source == idx, -1, lanes[source]).astype(jnp.float32)
    return {f"hp_{d.name}": getattr(hp, d.name) for d in spec.dims} | {"pbt_copied": copied}
