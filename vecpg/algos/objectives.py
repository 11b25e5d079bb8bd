"""The objective terms every algorithm is built from, each on a flat batch [N].

ratio        r = pi_theta'(a|s) / pi_theta(a|s)
surrogate    A_bar(theta') = E[r A]                      (the lecture's surrogate)
clipped      E[min(r A, clip(r, 1-eps, 1+eps) A)]        (PPO)
mean_kl      E_s[KL(pi_theta'(.|s) || pi_theta(.|s))]    (new || old, as logged)
mean_kl_from_old  E_s[KL(pi_theta(.|s) || pi_theta'(.|s))]  (old || new: TRPO's constraint)
entropy      E_s[H(pi_theta'(.|s))]
value_loss   0.5 E[(V(s) - target)^2]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vecpg.algos.base import Batch
from vecpg.models.networks import Agent, state_value


def log_ratio(agent: Agent, dist: Any, b: Batch) -> jax.Array:
    """[N] log pi_theta'(a|s) - log pi_theta(a|s), with `dist` = pi_theta'(.|s) on b.obs."""
    return agent.dist.log_prob(dist, b.action) - b.log_prob


def surrogate(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """A_bar(theta') = E[pi_theta'(a|s) / pi_theta(a|s) * A] with the batch's advantages."""
    dist = agent.actor.apply(actor_params, b.obs)
    return jnp.mean(jnp.exp(log_ratio(agent, dist, b)) * b.advantage)


def clipped_surrogate(ratio: jax.Array, adv: jax.Array, clip_eps: ArrayLike) -> jax.Array:
    """E[min(r A, clip(r, 1-eps, 1+eps) A)]; ratio, adv [N]."""
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jnp.mean(jnp.minimum(ratio * adv, clipped * adv))


def kl_to_old(agent: Agent, dist: Any, b: Batch) -> jax.Array:
    """E_s[KL(dist || pi_old)] for distribution parameters `dist` on b.obs."""
    return jnp.mean(agent.dist.kl(dist, b.old_dist))


def mean_kl(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """E_s[KL(pi_theta'(.|s) || pi_theta(.|s))] over the batch."""
    return kl_to_old(agent, agent.actor.apply(actor_params, b.obs), b)


def mean_kl_from_old(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """E_s[KL(pi_theta(.|s) || pi_theta'(.|s))] over the batch: old || new, the direction
    the TRPO paper (and its reference code) constrains."""
    return jnp.mean(agent.dist.kl(b.old_dist, agent.actor.apply(actor_params, b.obs)))


def entropy(agent: Agent, dist: Any) -> jax.Array:
    """E_s[H(dist)], dist leaves [N, ...]."""
    return jnp.mean(agent.dist.entropy(dist))


def value_loss(agent: Agent, critic_params: Any, obs: jax.Array, target: jax.Array) -> jax.Array:
    """0.5 * mean (V(s) - target)^2; obs [N, ...], target [N]."""
    v = state_value(agent, critic_params, obs)
    return 0.5 * jnp.mean((v - target) ** 2)
