"""Generalized advantage estimation on one trajectory (vmap over envs outside)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae(
    r_t: jax.Array,
    v_t: jax.Array,
    v_tp1: jax.Array,
    discount_t: jax.Array,
    lambda_t: jax.Array,
) -> jax.Array:
    """GAE for one trajectory of length T, computed by a reverse `lax.scan`.

    A_t = delta_t + discount_t * lambda_t * A_{t+1},  delta_t = r_t + discount_t v_tp1 - v_t.

    Args:
      r_t: [T] rewards.
      v_t: [T] V(s_t).
      v_tp1: [T] V(s_{t+1}) of the true next state (before any auto-reset), so a
        truncated step bootstraps from it.
      discount_t: [T] gamma, or 0 where s_{t+1} is terminal (never bootstrap there).
      lambda_t: [T] lambda, or 0 where the episode ended (terminated or truncated) so the
        trace does not leak into the next episode.

    Returns:
      [T] advantages.
    """
    chex.assert_rank([r_t, v_t, v_tp1, discount_t, lambda_t], 1)
    chex.assert_equal_shape([r_t, v_t, v_tp1, discount_t, lambda_t])
    delta_t = r_t + discount_t * v_tp1 - v_t

    def backward(acc, xs):
        delta, disc, lam = xs
        acc = delta + disc * lam * acc
        return acc, acc

    _, adv = jax.lax.scan(
        backward, jnp.zeros_like(r_t[0]), (delta_t, discount_t, lambda_t), reverse=True
    )
    return adv


def batched_gae(
    r_t: jax.Array, v_t: jax.Array, v_tp1: jax.Array, discount_t: jax.Array, lambda_t: jax.Array
) -> jax.Array:
    """`gae` over a [T, B] batch, time-major."""
    return jax.vmap(gae, in_axes=1, out_axes=1)(r_t, v_t, v_tp1, discount_t, lambda_t)
