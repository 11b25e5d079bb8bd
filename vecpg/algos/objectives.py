"""The objective terms every algorithm is built from, each on a flat batch [N].

Every KL says its direction: `new` is pi_theta' (the parameters being optimised), `old`
is pi_theta (the policy that collected the batch, `b.old_dist`).

ratio            r = pi_theta'(a|s) / pi_theta(a|s)
surrogate        A_bar(theta') = E[r A]                          (the lecture's surrogate)
clipped          E[min(r A, clip(r, 1-eps, 1+eps) A)]            (PPO)
kl_old_new       E_s[KL(pi_theta(.|s) || pi_theta'(.|s))]   (old || new: what trpo
                 constrains and ppo_kl and dual penalise, as the TRPO and PPO papers do)
kl_new_old       E_s[KL(pi_theta'(.|s) || pi_theta(.|s))]   (new || old: the lecture's
                 D_KL(pi_theta' || pi_theta); logged for comparison)
mean_kl_old_new, mean_kl_new_old: the same from actor parameters instead of a distribution
entropy          E_s[H(pi_theta'(.|s))]
value_loss       0.5 E[(V(s) - target)^2]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vecpg.algos.base import Batch
from vecpg.models.networks import Agent, state_value
from vecpg.models.recurrent import replay, replay_actor


def actor_dist(agent: Agent, actor_params: Any, b: Batch) -> Any:
    """pi_theta'(.|s) on the batch: leaves [N, ...] (a recurrent agent: the actor
    replayed over the batch's [B, T] sequences from their start states, [B, T, ...])."""
    if agent.recurrent:
        assert b.reset is not None  # a recurrent batch has its resets (make_sequence_batch)
        return replay_actor(agent.actor, actor_params, b.h0.actor, b.obs, b.reset)
    return agent.actor.apply(actor_params, b.obs)


def values(agent: Agent, critic_params: Any, b: Batch) -> jax.Array:
    """V(s) on the batch, [N] (a recurrent agent: replayed, [B, T])."""
    if agent.recurrent:
        assert b.reset is not None
        return replay(agent.critic, critic_params, b.h0.critic, b.obs, b.reset)[1]
    return state_value(agent, critic_params, b.obs)


def log_ratio(agent: Agent, dist: Any, b: Batch) -> jax.Array:
    """[N] log pi_theta'(a|s) - log pi_theta(a|s), with `dist` = pi_theta'(.|s) on b.obs."""
    return agent.dist.log_prob(dist, b.action) - b.log_prob


def surrogate(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """A_bar(theta') = E[pi_theta'(a|s) / pi_theta(a|s) * A] with the batch's advantages."""
    dist = actor_dist(agent, actor_params, b)
    return jnp.mean(jnp.exp(log_ratio(agent, dist, b)) * b.advantage)


def clipped_surrogate(ratio: jax.Array, adv: jax.Array, clip_eps: ArrayLike) -> jax.Array:
    """E[min(r A, clip(r, 1-eps, 1+eps) A)]; ratio, adv [N]."""
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jnp.mean(jnp.minimum(ratio * adv, clipped * adv))


def kl_old_new(agent: Agent, dist: Any, b: Batch) -> jax.Array:
    """E_s[KL(pi_old || dist)] for distribution parameters `dist` (pi_new) on b.obs."""
    return jnp.mean(agent.dist.kl(b.old_dist, dist))


def kl_new_old(agent: Agent, dist: Any, b: Batch) -> jax.Array:
    """E_s[KL(dist || pi_old)] for distribution parameters `dist` (pi_new) on b.obs."""
    return jnp.mean(agent.dist.kl(dist, b.old_dist))


def mean_kl_old_new(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """E_s[KL(pi_theta(.|s) || pi_theta'(.|s))] over the batch, theta' = actor_params:
    old || new, the direction the TRPO paper (and its reference code) constrains and the
    PPO paper (sec. 4) penalises."""
    return kl_old_new(agent, actor_dist(agent, actor_params, b), b)


def mean_kl_new_old(agent: Agent, actor_params: Any, b: Batch) -> jax.Array:
    """E_s[KL(pi_theta'(.|s) || pi_theta(.|s))] over the batch, theta' = actor_params:
    new || old, the lecture's D_KL(pi_theta' || pi_theta)."""
    return kl_new_old(agent, actor_dist(agent, actor_params, b), b)


def entropy(agent: Agent, dist: Any) -> jax.Array:
    """E_s[H(dist)], dist leaves [N, ...]."""
    return jnp.mean(agent.dist.entropy(dist))


def value_loss(agent: Agent, critic_params: Any, b: Batch) -> jax.Array:
    """0.5 * mean (V(s) - target)^2 over the batch (targets [N], or [B, T])."""
    return 0.5 * jnp.mean((values(agent, critic_params, b) - b.target) ** 2)
