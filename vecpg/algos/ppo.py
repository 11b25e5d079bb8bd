"""PPO with the clipped surrogate (Schulman et al. 2017), joint actor-critic loss."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vecpg.algos.base import (
    Batch,
    Metrics,
    Nets,
    Updater,
    adam,
    minibatch_epochs,
    normalize_advantage,
    sgd_step,
    total_minibatch_updates,
    value_loss,
)
from vecpg.config import HParams, StaticConfig
from vecpg.networks import Agent, AgentParams


class PPOState(NamedTuple):
    opt_state: optax.OptState


def clipped_loss(nets: Nets, agent: Agent, mb: Batch, hp: HParams) -> tuple[jax.Array, Metrics]:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] + vf * value loss - ent * entropy, on [M]."""
    dist = agent.actor.apply(nets.actor, mb.obs)
    log_ratio = agent.dist.log_prob(dist, mb.action) - mb.log_prob
    ratio = jnp.exp(log_ratio)
    adv = normalize_advantage(mb.advantage)
    clipped = jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))
    entropy = jnp.mean(agent.dist.entropy(dist))
    v_loss = value_loss(agent, nets.critic, mb.obs, mb.target)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > hp.clip_eps).astype(jnp.float32))
    return loss, {
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        "clip_frac": clip_frac,
    }


def init(static: StaticConfig, agent: Agent, params: AgentParams, hp: HParams) -> PPOState:
    opt = adam(hp, total_minibatch_updates(static), static.anneal_lr)
    return PPOState(opt.init(Nets(params.actor, params.critic)))


def update(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    params: AgentParams,
    state: PPOState,
    batch: Batch,
    hp: HParams,
    loss_fn: Any = clipped_loss,
) -> tuple[AgentParams, PPOState, Metrics]:
    opt = adam(hp, total_minibatch_updates(static), static.anneal_lr)
    step = functools.partial(sgd_step, agent, opt, hp, loss_fn)
    (nets, opt_state), metrics = minibatch_epochs(
        key,
        (Nets(params.actor, params.critic), state.opt_state),
        batch,
        static.update_epochs,
        static.num_minibatches,
        step,
    )
    return params.replace(actor=nets.actor, critic=nets.critic), PPOState(opt_state), metrics


def make(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(functools.partial(init, static, agent), functools.partial(update, static, agent))
