"""Natural policy gradient and TRPO: theta' = theta + alpha F^-1 g, with the critic fitted
by its own Adam optimiser (epochs x minibatches).

    npg:  alpha = sqrt(2 max_kl / g^T F^-1 g)     (or natural_lr with npg_fixed_step)
    trpo: the same full step, then backtracking by backtrack_coef^k, k < linesearch_steps,
          accepting the first point with mean KL(pi_old || pi_new) <= max_kl (old || new,
          as in the TRPO paper) and a strictly improved surrogate; if none is accepted
          theta is kept and it is counted. The trainer logs that constrained KL as
          `kl_old_new` (policy_change_metrics, for every algorithm).

The surrogate uses the GAE advantages centred over the batch (a constant shift of A
moves g along E[grad log pi], which is zero only in expectation) but not rescaled: the
KL-normalised step is invariant to their scale, and the predicted improvement
alpha g^T F^-1 g then reads in (scaled) reward units. The Fisher-vector products use a
fresh random subset of round(fvp_fraction * N) samples each iteration.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from vecpg.algos import objectives as obj
from vecpg.algos.base import Batch, Metrics, Updater, minibatch_adam, minibatch_epochs, sgd_step
from vecpg.algos.natural import (
    backtracking_line_search,
    conjugate_gradient,
    flat_fvp,
    kl_step_size,
)
from vecpg.models.networks import Agent, AgentParams

if TYPE_CHECKING:
    from vecpg.config import HParams, StaticConfig


class TrustRegionState(NamedTuple):
    opt_state: optax.OptState  # the critic's Adam
    iteration: jax.Array  # for the KL-budget schedule


def kl_budget(static: StaticConfig, hp: HParams, iteration: jax.Array) -> ArrayLike:
    """max_kl, linearly annealed towards 0 over training when `anneal_kl`. Without it a
    converged policy keeps taking full max_kl steps along noise (alpha grows as g -> 0)."""
    if not static.anneal_kl:
        return hp.max_kl
    return hp.max_kl * (1.0 - iteration / static.num_iterations)


def fvp_subsample(key: jax.Array, data: Any, fraction: float) -> Any:
    """data (leaves [N, ...]: observations, or a whole Batch) -> the part for
    Fisher-vector products: all of it when `fraction` is 1, else a uniformly random
    subset of exactly max(1, round(f N)) distinct entries of the leading axis (fresh for
    each key; a recurrent batch's leading axis is its env sequences, so whole sequences
    are picked)."""
    n = jax.tree.leaves(data)[0].shape[0]
    size = max(1, round(fraction * n))
    if size >= n:
        return data
    pick = jax.random.choice(key, n, (size,), replace=False)
    return jax.tree.map(lambda x: x[pick], data)


def flat_samples(dist: Any) -> Any:
    """Distribution parameters [B, T, ...] -> [B * T, ...]: one sample per state, as
    the Fisher-vector product averages over its leading axis."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), dist)


class NaturalDirection(NamedTuple):
    g: jax.Array  # [P] policy gradient (of the surrogate at theta)
    x: jax.Array  # [P] CG solution of (F + damping I) x = g
    alpha: jax.Array  # step size
    gfg: jax.Array  # g^T F^-1 g (as g^T x)
    cg_residual: jax.Array


def natural_direction(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    actor_params: Any,
    batch: Batch,
    hp: HParams,
    max_kl: ArrayLike,
) -> NaturalDirection:
    """g, the CG solution x of (F + damping I) x = g on the FVP sub-sample (drawn with
    `key`), and the step size alpha (KL-normalised, or natural_lr with npg_fixed_step).
    P = actor params."""
    g_tree = jax.grad(lambda p: obj.surrogate(agent, p, batch))(actor_params)
    g, _ = ravel_pytree(g_tree)
    if agent.recurrent:  # whole env sequences, replayed from their start states
        sub = fvp_subsample(key, batch, static.fvp_fraction)
        dist_fn = lambda p: flat_samples(obj.actor_dist(agent, p, sub))  # noqa: E731
    else:
        obs = fvp_subsample(key, batch.obs, static.fvp_fraction)
        dist_fn = lambda p: agent.actor.apply(p, obs)  # noqa: E731
    matvec = flat_fvp(dist_fn, agent.dist.fisher_vp, actor_params, hp.damping)
    cg = conjugate_gradient(matvec, g, static.cg_iters)
    alpha, gfg = kl_step_size(g, cg.x, max_kl)
    if static.npg_fixed_step:
        alpha = jnp.asarray(hp.natural_lr)
    return NaturalDirection(g, cg.x, alpha, gfg, cg.residual_norm)


def centred(batch: Batch) -> Batch:
    """The batch with its advantages [N] minus their mean."""
    return batch._replace(advantage=batch.advantage - jnp.mean(batch.advantage))


def critic_loss(
    critic_params: Any, agent: Agent, mb: Batch, hp: HParams
) -> tuple[jax.Array, Metrics]:
    """0.5 (V - target)^2 on a minibatch, in the (params, agent, mb, hp) loss signature."""
    loss = obj.value_loss(agent, critic_params, mb)
    return loss, {"value_loss": loss}


def fit_critic(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    critic_params: Any,
    opt_state: optax.OptState,
    batch: Batch,
    hp: HParams,
) -> tuple[Any, optax.OptState, Metrics]:
    """update_epochs x num_minibatches Adam steps on 0.5 (V - target)^2."""
    step = functools.partial(sgd_step, agent, critic_optimizer(static, hp), hp, critic_loss)
    (critic_params, opt_state), metrics = minibatch_epochs(
        key,
        (critic_params, opt_state),
        batch,
        static.update_epochs,
        static.num_minibatches,
        step,
    )
    return critic_params, opt_state, metrics


def critic_optimizer(static: StaticConfig, hp: HParams) -> optax.GradientTransformation:
    """The critic's Adam (the actor moves by the natural step), for init and update."""
    return minibatch_adam(static, hp)


def init(static: StaticConfig, agent: Agent, params: AgentParams, hp: HParams) -> TrustRegionState:
    del agent
    return TrustRegionState(critic_optimizer(static, hp).init(params.critic), jnp.int32(0))


def update(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    params: AgentParams,
    state: TrustRegionState,
    batch: Batch,
    hp: HParams,
    *,
    line_search: bool,
) -> tuple[AgentParams, TrustRegionState, Metrics]:
    """One natural step of the actor (with trpo's line search when `line_search`), then
    the critic's epochs x minibatches."""
    max_kl = kl_budget(static, hp, state.iteration)
    batch = centred(batch)  # the critic reads only obs and targets
    k_fvp = key
    if static.fvp_fraction < 1.0:  # split only then: full-batch runs keep their numbers
        k_fvp, key = jax.random.split(key)
    d = natural_direction(static, agent, k_fvp, params.actor, batch, hp, max_kl)
    _, unravel = ravel_pytree(params.actor)
    full_step = unravel(d.alpha * d.x)
    if line_search:
        ls = backtracking_line_search(
            lambda p: (obj.surrogate(agent, p, batch), obj.mean_kl_old_new(agent, p, batch)),
            params.actor,
            full_step,
            max_kl,
            hp.backtrack_coef,
            static.linesearch_steps,
        )
        actor = ls.params
        extra: Metrics = {
            "linesearch_steps": ls.steps.astype(jnp.float32),
            "linesearch_accepted": ls.accepted.astype(jnp.float32),
            "surrogate_improvement": ls.improvement,
        }
        taken = jnp.where(ls.accepted, hp.backtrack_coef ** (ls.steps - 1), 0.0)
    else:
        actor = jax.tree.map(jnp.add, params.actor, full_step)
        extra = {
            "surrogate_improvement": obj.surrogate(agent, actor, batch)
            - obj.surrogate(agent, params.actor, batch)
        }
        taken = jnp.asarray(1.0, jnp.float32)
    critic, opt_state, critic_metrics = fit_critic(
        static, agent, key, params.critic, state.opt_state, batch, hp
    )
    entropy = obj.entropy(agent, obj.actor_dist(agent, actor, batch))
    metrics: Metrics = {
        "policy_loss": -obj.surrogate(agent, actor, batch),
        "entropy": entropy,
        "step_size": d.alpha * taken,
        "max_kl": jnp.asarray(max_kl),
        "gFg": d.gfg,
        "cg_residual": d.cg_residual,
        # first-order model of the surrogate gain: (alpha * taken) * g^T x
        "predicted_improvement": d.alpha * taken * jnp.vdot(d.g, d.x),
        **extra,
        **critic_metrics,
    }
    new_state = TrustRegionState(opt_state, state.iteration + 1)
    return dataclasses.replace(params, actor=actor, critic=critic), new_state, metrics


def make_npg(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(
        functools.partial(init, static, agent),
        functools.partial(update, static, agent, line_search=False),
    )


def make_trpo(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(
        functools.partial(init, static, agent),
        functools.partial(update, static, agent, line_search=True),
    )
