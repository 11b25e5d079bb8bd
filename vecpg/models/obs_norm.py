"""Running mean/variance of observations, merged batch-wise (Chan et al.)."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

OBS_CLIP = 10.0


@flax.struct.dataclass
class RunningStats:
    mean: jax.Array  # [*obs_shape]
    var: jax.Array  # [*obs_shape]
    count: jax.Array  # []


def init_stats(obs_shape: tuple[int, ...]) -> RunningStats:
    return RunningStats(jnp.zeros(obs_shape), jnp.ones(obs_shape), jnp.float32(1e-4))


def update_stats(stats: RunningStats, x: jax.Array) -> RunningStats:
    """Merge a batch x: [N, *obs_shape] into the running moments."""
    n = jnp.float32(x.shape[0])
    b_mean, b_var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
    total = stats.count + n
    delta = b_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + b_var * n + delta**2 * stats.count * n / total
    return RunningStats(mean, m2 / total, total)


def normalize_obs(stats: RunningStats, obs: jax.Array) -> jax.Array:
    """(obs - mean) / std, clipped to +-10. obs: [..., *obs_shape]."""
    return jnp.clip((obs - stats.mean) / jnp.sqrt(stats.var + 1e-8), -OBS_CLIP, OBS_CLIP)
