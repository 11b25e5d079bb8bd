"""PPO with the clipped surrogate (Schulman et al. 2017), joint actor-critic loss:

    minimise  -E[min(r A, clip(r, 1-eps, 1+eps) A)] + vf_coef 0.5 (V - R)^2 - ent_coef H

over update_epochs x num_minibatches Adam steps, advantages normalised per minibatch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

from vecpg.algos import objectives as obj
from vecpg.algos.base import (
    Batch,
    LossFn,
    Metrics,
    Nets,
    OptState,
    Updater,
    minibatch_adam,
    minibatch_epochs,
    sgd_step,
)
from vecpg.models.networks import Agent, AgentParams

if TYPE_CHECKING:
    from vecpg.config import HParams, StaticConfig


def clipped_loss(nets: Nets, agent: Agent, mb: Batch, hp: HParams) -> tuple[jax.Array, Metrics]:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] + vf * value loss - ent * entropy, on [M]."""
    dist = obj.actor_dist(agent, nets.actor, mb)
    ratio = jnp.exp(obj.log_ratio(agent, dist, mb))
    policy_loss = -obj.clipped_surrogate(ratio, mb.advantage, hp.clip_eps)
    entropy = obj.entropy(agent, dist)
    v_loss = obj.value_loss(agent, nets.critic, mb)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > hp.clip_eps).astype(jnp.float32))
    return loss, {
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        "clip_frac": clip_frac,
    }


def optimizer(static: StaticConfig, hp: HParams) -> optax.GradientTransformation:
    """The one optimiser of actor and critic, built here for both init and update."""
    return minibatch_adam(static, hp)


def init(static: StaticConfig, agent: Agent, params: AgentParams, hp: HParams) -> OptState:
    del agent
    return OptState(optimizer(static, hp).init(Nets(params.actor, params.critic)))


def update(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    params: AgentParams,
    state: OptState,
    batch: Batch,
    hp: HParams,
    *,
    loss_fn: LossFn = clipped_loss,
) -> tuple[AgentParams, OptState, Metrics]:
    """update_epochs x num_minibatches steps of `loss_fn` on shuffled minibatches."""
    step = functools.partial(sgd_step, agent, optimizer(static, hp), hp, loss_fn)
    (nets, opt_state), metrics = minibatch_epochs(
        key,
        (Nets(params.actor, params.critic), state.opt_state),
        batch,
        static.update_epochs,
        static.num_minibatches,
        step,
        normalized_advantages=True,
    )
    return (
        dataclasses.replace(params, actor=nets.actor, critic=nets.critic),
        OptState(opt_state),
        metrics,
    )


def make(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(functools.partial(init, static, agent), functools.partial(update, static, agent))
