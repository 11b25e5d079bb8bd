"""A2C as vecpg runs it: synchronous advantage actor-critic, one full-batch step per
iteration. Each iteration collects num_envs x num_steps transitions, computes GAE
advantages (gae_lambda) and value targets, normalises the advantages over the whole
batch (zero mean, unit std), and takes ONE Adam step (eps 1e-5, global-norm gradient
clipping at max_grad_norm, linear LR annealing with `anneal_lr`) on

    minimise  -E[log pi(a|s) A_norm] + vf_coef * 0.5 E[(V(s) - target)^2] - ent_coef E[H]

with separate actor and critic networks updated by the one joint loss.

What differs from stable-baselines3's A2C, whose rollout length (5 steps) and learning
rate (7e-4) DEFAULTS copies: sb3 steps with RMSprop (alpha 0.99, eps 1e-5) where vecpg
uses Adam; sb3 does not normalise advantages by default (`normalize_advantage=False`)
where vecpg always does; sb3's value loss is the MSE without the 0.5; and the shared
defaults here are gae_lambda 0.95 and ent_coef 0.01 where sb3 uses 1.0 (n-step
returns) and 0.0. So this is "A2C with Adam and normalised advantages", not a
reproduction of sb3's numbers.

A2C's own defaults (DEFAULTS, as sb3's A2C): many small batches, 16 envs x 5 steps, at
learning rate 7e-4. PPO's 8 x 128 batch gave a2c one step per 1024 samples, 488 updates
in 500k steps: CartPole IQM 131 and inverted_pendulum 14.
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
    """-E[log pi(a|s) A] + vf_coef * 0.5 E[(V - target)^2] - ent_coef * E[H], on the
    whole batch [N] (advantages normalised over the batch by the caller, `update`)."""
    dist = obj.actor_dist(agent, nets.actor, b)
    logp = agent.dist.log_prob(dist, b.action)
    policy_loss = -jnp.mean(logp * b.advantage)
    entropy = obj.entropy(agent, dist)
    v_loss = obj.value_loss(agent, nets.critic, b)
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
