"""KL-penalised surrogates with an adapted multiplier, joint actor-critic loss:

    maximise  E[r_theta A] - c * E_s[KL(pi_old || pi_theta)] + c_ent H - c_vf 0.5 (V - R)^2

    ppo_kl: c = beta; after the epochs, beta /= 2 if d < d_targ / 1.5,
            beta *= 2 if d > 1.5 d_targ (d_targ = max_kl), kept in BETA_RANGE
            (PPO's adaptive KL penalty)
    dual:   c = lambda; K = update_epochs x num_minibatches Adam steps on theta, then
            lambda <- max(0, lambda + dual_lr (d - max_kl))   (dual gradient descent)

with d = E_s[KL(pi_old || pi_theta)] over the whole batch after the update (logged as
`kl_old_new` by the trainer). The multiplier carries across iterations and is logged as
`penalty`.

The direction is old || new for both. ppo_kl follows the PPO paper (Schulman et al.
2017, sec. 4), whose penalty and adaptive rule use KL[pi_old(.|s), pi_theta(.|s)]. dual
follows the lecture's Lagrangian L(theta', lambda) = A_bar(theta') - lambda (D_KL - eps)
except for the direction: the lecture writes D_KL(pi_theta' || pi_theta) (new || old);
we use old || new, the direction trpo constrains, so that `max_kl` bounds the same
quantity in trpo, dual and ppo_kl. The two directions agree to second order in the step
(both are 1/2 dtheta^T F dtheta), so the lecture's derivation carries over.
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

# adapt(penalty, mean KL(old || new) after the update, hparams) -> new penalty
AdaptRule = Callable[[jax.Array, jax.Array, "HParams"], jax.Array]


class PenaltyState(NamedTuple):
    opt_state: optax.OptState
    penalty: jax.Array  # lambda (dual) or beta (ppo_kl)


def penalized_loss(
    nets: Nets, agent: Agent, mb: Batch, hp: HParams, *, coef: jax.Array
) -> tuple[jax.Array, Metrics]:
    """-(E[r A] - coef * E_s[KL(pi_old || pi)]) + vf * value loss - ent * entropy, on [M]
    (advantages normalised per minibatch by the caller)."""
    dist = obj.actor_dist(agent, nets.actor, mb)
    ratio = jnp.exp(obj.log_ratio(agent, dist, mb))
    surr = jnp.mean(ratio * mb.advantage)
    kl_old_new = obj.kl_old_new(agent, dist, mb)
    entropy = obj.entropy(agent, dist)
    v_loss = obj.value_loss(agent, nets.critic, mb)
    policy_loss = -(surr - coef * kl_old_new)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": v_loss, "entropy": entropy}


def dual_ascent(penalty: jax.Array, kl_old_new: jax.Array, hp: HParams) -> jax.Array:
    """lambda <- max(0, lambda + alpha_lambda (KL(old || new) - eps))."""
    return jnp.maximum(0.0, penalty + hp.dual_lr * (kl_old_new - hp.max_kl))


BETA_RANGE = (1e-6, 1e6)  # beta halved long enough underflows to 0 and could never double


def adaptive_beta(penalty: jax.Array, kl_old_new: jax.Array, hp: HParams) -> jax.Array:
    """With d = KL(old || new): beta / 2 if d < d_targ / 1.5; beta * 2 if d > 1.5 d_targ;
    kept in BETA_RANGE (PPO paper, sec. 4)."""
    halved = jnp.where(kl_old_new < hp.max_kl / 1.5, penalty / 2.0, penalty)
    doubled = jnp.where(kl_old_new > 1.5 * hp.max_kl, penalty * 2.0, halved)
    return jnp.clip(doubled, *BETA_RANGE)


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
    """PPO's epochs x minibatches with the penalised loss, then adapt the multiplier to
    the mean KL(old || new) of the updated policy over the whole batch."""
    loss = functools.partial(penalized_loss, coef=state.penalty)
    params, opt, metrics = ppo.update(
        static, agent, key, params, OptState(state.opt_state), batch, hp, loss_fn=loss
    )
    penalty = adapt(state.penalty, obj.mean_kl_old_new(agent, params.actor, batch), hp)
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
