"""A2C: the vanilla policy gradient with a GAE baseline, one step per batch."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vecpg.algos import ppo
from vecpg.algos.base import (
    Batch,
    Metrics,
    Nets,
    Updater,
    adam,
    normalize_advantage,
    sgd_step,
    value_loss,
)
from vecpg.config import HParams, StaticConfig
from vecpg.networks import Agent, AgentParams


def pg_loss(nets: Nets, agent: Agent, b: Batch, hp: HParams) -> tuple[jax.Array, Metrics]:
    """-E[log pi(a|s) A] + vf * value loss - ent * entropy, on the whole batch [N]."""
    dist = agent.actor.apply(nets.actor, b.obs)
    logp = agent.dist.log_prob(dist, b.action)
    policy_loss = -jnp.mean(logp * normalize_advantage(b.advantage))
    entropy = jnp.mean(agent.dist.entropy(dist))
    v_loss = value_loss(agent, nets.critic, b.obs, b.target)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": v_loss, "entropy": entropy}


def init(static: StaticConfig, agent: Agent, params: AgentParams, hp: HParams) -> ppo.PPOState:
    opt = adam(hp, static.num_iterations, static.anneal_lr)
    return ppo.PPOState(opt.init(Nets(params.actor, params.critic)))


def update(
    static: StaticConfig,
    agent: Agent,
    key: jax.Array,
    params: AgentParams,
    state: ppo.PPOState,
    batch: Batch,
    hp: HParams,
) -> tuple[AgentParams, ppo.PPOState, Metrics]:
    del key  # full-batch step: nothing to shuffle
    opt = adam(hp, static.num_iterations, static.anneal_lr)
    (nets, opt_state), metrics = sgd_step(
        agent, opt, hp, pg_loss, (Nets(params.actor, params.critic), state.opt_state), batch
    )
    return params.replace(actor=nets.actor, critic=nets.critic), ppo.PPOState(opt_state), metrics


def make(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(functools.partial(init, static, agent), functools.partial(update, static, agent))
