"""KL-penalised surrogates with an adapted multiplier, joint actor-critic loss:

    maximise  E[r_theta A] - c * E[KL(pi_theta || pi_old)] + c_ent H - c_vf (V - R)^2

    dual:   c = lambda; K = update_epochs x num_minibatches Adam steps on theta, then
            lambda <- max(0, lambda + dual_lr (KL - max_kl))   (dual gradient descent)
    ppo_kl: c = beta; after the epochs, beta /= 2 if KL < max_kl / 1.5,
            beta *= 2 if KL > 1.5 max_kl, kept in [1e-6, 1e6]  (PPO's adaptive KL)

KL is the mean over the whole batch after the update; the multiplier carries across
iterations and is logged as `penalty`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vecpg.algos import objectives as obj
from vecpg.algos import ppo
from vecpg.algos.base import Batch, Metrics, Nets, OptState, Updater
from vecpg.models.networks import Agent, AgentParams

if TYPE_CHECKING:
    from vecpg.config import HParams, StaticConfig

# adapt(penalty, kl after the update, hparams) -> new penalty
AdaptRule = Callable[[jax.Array, jax.Array, "HParams"], jax.Array]


class PenaltyState(NamedTuple):
    opt_state: optax.OptState
    penalty: jax.Array  # lambda (dual) or beta (ppo_kl)


def penalized_loss(
    nets: Nets, agent: Agent, mb: Batch, hp: HParams, *, coef: jax.Array
) -> tuple[jax.Array, Metrics]:
    """-(E[r A] - coef * E[KL(pi || pi_old)]) + vf * value loss - ent * entropy, on [M]."""
    dist = agent.actor.apply(nets.actor, mb.obs)
    ratio = jnp.exp(obj.log_ratio(agent, dist, mb))
    surr = jnp.mean(ratio * mb.advantage)
    kl = obj.kl_to_old(agent, dist, mb)
    entropy = obj.entropy(agent, dist)
    v_loss = obj.value_loss(agent, nets.critic, mb.obs, mb.target)
    policy_loss = -(surr - coef * kl)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": v_loss, "entropy": entropy}


def dual_ascent(penalty: jax.Array, kl: jax.Array, hp: HParams) -> jax.Array:
    """lambda <- max(0, lambda + alpha_lambda (KL - eps))."""
    return jnp.maximum(0.0, penalty + hp.dual_lr * (kl - hp.max_kl))


BETA_RANGE = (1e-6, 1e6)  # beta halved long enough underflows to 0 and could never double


def adaptive_beta(penalty: jax.Array, kl: jax.Array, hp: HParams) -> jax.Array:
    """beta / 2 if KL < d_targ / 1.5; beta * 2 if KL > 1.5 d_targ; kept in BETA_RANGE."""
    halved = jnp.where(kl < hp.max_kl / 1.5, penalty / 2.0, penalty)
    return jnp.clip(jnp.where(kl > 1.5 * hp.max_kl, penalty * 2.0, halved), *BETA_RANGE)


def init(static: StaticConfig, agent: Agent, params: AgentParams, hp: HParams) -> PenaltyState:
    state = ppo.init(static, agent, params, hp)  # the same optimiser as ppo's
    return PenaltyState(state.opt_state, jnp.asarray(hp.init_penalty))


def update(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    params: AgentParams,
    state: PenaltyState,
    batch: Batch,
    hp: HParams,
    *,
    adapt: AdaptRule,
) -> tuple[AgentParams, PenaltyState, Metrics]:
    """PPO's epochs x minibatches with the penalised loss, then adapt the multiplier."""
    loss = functools.partial(penalized_loss, coef=state.penalty)
    params, opt, metrics = ppo.update(
        static, agent, key, params, OptState(state.opt_state), batch, hp, loss_fn=loss
    )
    penalty = adapt(state.penalty, obj.mean_kl(agent, params.actor, batch), hp)
    return params, PenaltyState(opt.opt_state, penalty), {**metrics, "penalty": penalty}


def make_dual(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(
        functools.partial(init, static, agent),
        functools.partial(update, static, agent, adapt=dual_ascent),
    )


def make_ppo_kl(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(
        functools.partial(init, static, agent),
        functools.partial(update, static, agent, adapt=adaptive_beta),
    )
