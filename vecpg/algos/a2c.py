"""A2C: the vanilla policy gradient with a GAE baseline, one full-batch step per batch:

minimise  -E[log pi(a|s) A] + vf_coef (V - R)^2 - ent_coef H

A2C's own defaults (DEFAULTS, as stable-baselines3's A2C): many small batches, 16 envs x 5
steps, at learning rate 7e-4. PPO's 8 x 128 batch gave a2c one step per 1024 samples,
488 updates in 500k steps: CartPole IQM 131 and inverted_pendulum 14.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax

from vecpg.algos import objectives as obj
from vecpg.algos.base import (
    Batch,
    Metrics,
    Nets,
    OptState,
    Updater,
    adam,
    normalize_advantage,
    sgd_step,
)
from vecpg.models.networks import Agent, AgentParams

if TYPE_CHECKING:
    from vecpg.config import HParams, StaticConfig


DEFAULTS: dict[str, Any] = {"num_envs": 16, "num_steps": 5, "learning_rate": 7e-4}


def pg_loss(nets: Nets, agent: Agent, b: Batch, hp: HParams) -> tuple[jax.Array, Metrics]:
    """-E[log pi(a|s) A] + vf * value loss - ent * entropy, on the whole batch [N]
    (advantages normalised by the caller)."""
    dist = agent.actor.apply(nets.actor, b.obs)
    logp = agent.dist.log_prob(dist, b.action)
    policy_loss = -jnp.mean(logp * b.advantage)
    entropy = obj.entropy(agent, dist)
    v_loss = obj.value_loss(agent, nets.critic, b.obs, b.target)
    loss = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": v_loss, "entropy": entropy}


def optimizer(static: StaticConfig, hp: HParams) -> optax.GradientTransformation:
    """One Adam step per iteration (with `anneal_lr`, annealed over num_iterations)."""
    return adam(hp, static.num_iterations, static.anneal_lr)


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
) -> tuple[AgentParams, OptState, Metrics]:
    del key  # full-batch step: nothing to shuffle
    (nets, opt_state), metrics = sgd_step(
        agent,
        optimizer(static, hp),
        hp,
        pg_loss,
        (Nets(params.actor, params.critic), state.opt_state),
        batch._replace(advantage=normalize_advantage(batch.advantage)),
    )
    return (
        dataclasses.replace(params, actor=nets.actor, critic=nets.critic),
        OptState(opt_state),
        metrics,
    )


def make(static: StaticConfig, agent: Agent) -> Updater:
    return Updater(functools.partial(init, static, agent), functools.partial(update, static, agent))
