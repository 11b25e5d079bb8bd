"""The updater interface every algorithm implements, and the optimisation loop pieces
they share (the loss terms are in `objectives`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from vecpg.models.networks import Agent, AgentParams
from vecpg.training.sharding import env_shards, split_envs, whole_on_each

if TYPE_CHECKING:
    from vecpg.config import HParams, StaticConfig


class Batch(NamedTuple):
    """One iteration's data, flattened to [N] (N = num_envs * num_steps); for a recurrent
    agent, env-major sequences [B, T] instead (B = num_envs, T = num_steps), so that
    shuffling, minibatches and device shares take whole env sequences."""

    obs: jax.Array  # [N, *obs_shape] normalised with the rollout's statistics
    action: jax.Array  # [N] or [N, D]
    log_prob: jax.Array  # [N] log pi_old(a|s)
    advantage: jax.Array  # [N] GAE, not normalised
    target: jax.Array  # [N] value target = advantage + V_old(s)
    value: jax.Array  # [N] V_old(s)
    old_dist: Any  # distribution parameters of pi_old, leaves [N, ...]
    h0: Any = None  # recurrent: Memory, the cores' states [B, H] at the sequences' start
    reset: jax.Array | None = None  # recurrent: [B, T], s_t starts an episode


def normalize_advantage(adv: jax.Array) -> jax.Array:
    """[N] -> zero mean, unit std."""
    return (adv - adv.mean()) / (adv.std() + 1e-8)


Metrics = dict[str, jax.Array]
# loss(params, agent, minibatch, hparams) -> (loss, metrics). Loss and metrics must be
# means over the minibatch of per-sample terms (advantages arrive normalised), so that
# the mean of equal shards' results is the whole minibatch's (`mean_grad`).
LossFn = Callable[[Any, Agent, Batch, "HParams"], tuple[jax.Array, Metrics]]


class Updater(NamedTuple):
    """An (init, update) pair, static settings already bound:

    init(params, hparams) -> state
    update(key, params, state, batch, hparams) -> (params, state, metrics)
    """

    init: Callable[[AgentParams, HParams], Any]
    update: Callable[
        [jax.Array, AgentParams, Any, Batch, HParams], tuple[AgentParams, Any, Metrics]
    ]


class Nets(NamedTuple):
    """The trainable part of AgentParams."""

    actor: Any
    critic: Any


class OptState(NamedTuple):
    """The state of an algorithm whose only state is one optax optimiser (a2c, ppo)."""

    opt_state: optax.OptState


def adam(hp: HParams, total_updates: int, anneal: bool) -> optax.GradientTransformation:
    """Global-norm clipping then Adam, with a (traced) learning rate, linearly annealed
    to zero over `total_updates` optimiser steps when `anneal`.

    Both act on the parameters raveled into one vector (`optax.flatten`): per leaf, the
    norm and Adam's moments are a kernel each for XLA to compile (about 50 for a 64 x 64
    actor-critic), raveled a handful. The same arithmetic per parameter; only the global
    norm sums in another order."""

    def lr(count: jax.Array) -> ArrayLike:
        frac = 1.0 - count / total_updates if anneal else 1.0
        return hp.learning_rate * frac

    clip = optax.clip_by_global_norm(hp.max_grad_norm)
    return optax.flatten(optax.chain(clip, optax.adam(lr, eps=1e-5)))


def minibatch_adam(static: StaticConfig, hp: HParams) -> optax.GradientTransformation:
    """Adam over epochs x minibatches steps per iteration (ppo, ppo_kl, dual, the critic
    of npg/trpo): with `anneal_lr`, the learning rate anneals over all of them."""
    updates = static.num_iterations * static.update_epochs * static.num_minibatches
    return adam(hp, updates, static.anneal_lr)


def sgd_step(
    agent: Agent,
    opt: optax.GradientTransformation,
    hp: HParams,
    loss_fn: LossFn,
    carry: tuple[Any, optax.OptState],
    mb: Batch,
) -> tuple[tuple[Any, optax.OptState], Metrics]:
    """One optimiser step on a minibatch; carry = (params, opt_state). `grad_norm`
    (before clipping) is added to the loss's metrics."""
    params, opt_state = carry
    grads, metrics = mean_grad(loss_fn, params, agent, mb, hp)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), {
        **metrics,
        "grad_norm": jnp.linalg.norm(ravel_pytree(grads)[0]),  # clipping's norm, as it sums
    }


def mean_grad(
    loss_fn: LossFn, params: Any, agent: Agent, mb: Batch, hp: HParams
) -> tuple[Any, Metrics]:
    """(gradient of the loss, its metrics) on minibatch mb [M].

    With one lane's envs split over D > 1 devices, each device differentiates its M/D
    share apart and the D results are averaged through ONE all-reduce of one flat
    vector: left to GSPMD, the gradient's leaves and the metrics are reduced as a tuple,
    which XLA's CPU runtime runs leaf by leaf (~0.3 ms for a small MLP's gradient, where
    one flat vector takes ~0.02 ms; 2 host devices).

    M must divide by D for that split (`mean_grad_batch` says which M an algorithm
    gives, and `vecpg.training.execute.env_devices_for` picks a D that divides it). When
    it does not, every device of the row differentiates the whole minibatch: the same
    gradient, without the speed-up, rather than a failed reshape."""
    grad_fn = jax.grad(loss_fn, has_aux=True)
    shards = env_shards()
    if shards <= 1:
        return grad_fn(params, agent, mb, hp)
    if jax.tree.leaves(mb)[0].shape[0] % shards:
        return grad_fn(params, agent, whole_on_each(mb), hp)
    split = jax.tree.map(lambda x: x.reshape(shards, x.shape[0] // shards, *x.shape[1:]), mb)
    per_shard = jax.vmap(grad_fn, in_axes=(None, None, 0, None))(
        params, agent, split_envs(split, axis=0), hp
    )
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])(per_shard)  # [D, P]
    return ravel_pytree(jax.tree.map(lambda x: x[0], per_shard))[1](jnp.mean(flat, axis=0))


def mean_grad_batch(static: StaticConfig) -> int:
    """M, the leading size of every batch `mean_grad` gets under `static`: the whole batch
    num_envs * num_steps for a full-batch algorithm, else a minibatch of it,
    batch_size // num_minibatches (a recurrent agent's batch: num_envs sequences). A
    lane's envs split over D devices differentiate M/D
    samples each when D divides M."""
    from vecpg.algos import FULL_BATCH_STEP  # per-algorithm data, beside DEFAULTS

    whole = static.num_envs if static.memory != "none" else static.batch_size  # sequences
    if static.algo in FULL_BATCH_STEP:
        return whole
    return whole // static.num_minibatches


def minibatch_epochs(
    key: jax.Array,
    carry: Any,
    batch: Batch,
    num_epochs: int,
    num_minibatches: int,
    step_fn: Callable[[Any, Batch], tuple[Any, Metrics]],
    *,
    normalized_advantages: bool = False,
) -> tuple[Any, Metrics]:
    """Run `step_fn(carry, minibatch)` over shuffled minibatches for `num_epochs`.

    batch leaves: [N, ...]. Returns the final carry and each metric averaged over steps.
    With `normalized_advantages`, each minibatch's advantages are normalised to zero mean
    and unit std before `step_fn` sees them.

    The steps' metrics are stacked as one vector: stacked and averaged one by one, each
    was a kernel or two for XLA to compile (12 fewer in the CartPole demo's program).
    """
    n = jax.tree.leaves(batch)[0].shape[0]

    def packed_step(c, mb):
        c, metrics = step_fn(c, mb)
        names = sorted(metrics)
        stacked = jnp.stack([metrics[k] for k in names]) if names else jnp.zeros(0)
        return c, (names, stacked)

    def epoch(c, k):
        perm = jax.random.permutation(k, n)
        mbs = jax.tree.map(
            lambda x: x[perm].reshape(num_minibatches, n // num_minibatches, *x.shape[1:]), batch
        )
        if normalized_advantages:  # here, where every device holds whole minibatches:
            # no collective per step, unlike statistics taken over the split below
            adv = jax.vmap(normalize_advantage)(whole_on_each(mbs.advantage))
            mbs = mbs._replace(advantage=whole_on_each(adv))
        # each device takes its share of every minibatch (`mean_grad` averages them)
        return scan_with_names(packed_step, c, split_envs(mbs, axis=1))

    carry, (names, stacked) = scan_with_names(epoch, carry, jax.random.split(key, num_epochs))
    means = jnp.mean(stacked, axis=(0, 1))  # [epochs, minibatches, metrics] -> [metrics]
    return carry, {name: means[i] for i, name in enumerate(names)}


def scan_with_names(
    f: Callable[[Any, Any], tuple[Any, tuple[list[str], jax.Array]]], carry: Any, xs: Any
) -> tuple[Any, tuple[list[str], jax.Array]]:
    """`lax.scan` of `f(carry, x) -> (carry, (names, y))`: the static `names` (str) ride
    beside the stacked `y` [len(xs), ...]."""
    names: list[list[str]] = []

    def body(c, x):
        c, (ns, y) = f(c, x)
        names.append(ns)
        return c, y

    carry, ys = jax.lax.scan(body, carry, xs)
    return carry, (names[0], ys)
