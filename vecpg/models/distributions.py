"""Action distributions with analytic log-prob, entropy, KL and Fisher.

Distribution parameters are pytrees with a leading batch shape `[...]`:
- Categorical: logits `[..., A]`; actions `[...]` int32.
- DiagGaussian: `GaussianParams(mean [..., D], log_std [..., D])`; actions `[..., D]`.

`fisher_vp(p, v)` applies the Fisher information of the distribution *in its own
parameter space* to a tangent `v` of the same structure as `p`. Composed with a JVP and
VJP through the network, it gives the Gauss-Newton form of the policy Fisher (natural.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)  # a float: no JAX work at import (see run.distributed)


class Categorical:
    @staticmethod
    def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
        return jax.random.categorical(key, logits).astype(jnp.int32)

    @staticmethod
    def mode(logits: jax.Array) -> jax.Array:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    @staticmethod
    def log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
        logp = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    @staticmethod
    def entropy(logits: jax.Array) -> jax.Array:
        logp = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    @staticmethod
    def kl(p: jax.Array, q: jax.Array) -> jax.Array:
        """KL(p || q) for logits p, q: [..., A] -> [...]."""
        logp, logq = jax.nn.log_softmax(p), jax.nn.log_softmax(q)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

    @staticmethod
    def fisher_vp(logits: jax.Array, v: jax.Array) -> jax.Array:
        """Fisher in logit space, (diag(pi) - pi pi^T) v, per sample: [..., A]."""
        pi = jax.nn.softmax(logits)
        return pi * v - pi * jnp.sum(pi * v, axis=-1, keepdims=True)


class GaussianParams(NamedTuple):
    mean: jax.Array  # [..., D]
    log_std: jax.Array  # [..., D]


class DiagGaussian:
    @staticmethod
    def sample(key: jax.Array, p: GaussianParams) -> jax.Array:
        return p.mean + jnp.exp(p.log_std) * jax.random.normal(key, p.mean.shape)

    @staticmethod
    def mode(p: GaussianParams) -> jax.Array:
        return p.mean

    @staticmethod
    def log_prob(p: GaussianParams, action: jax.Array) -> jax.Array:
        z = (action - p.mean) * jnp.exp(-p.log_std)
        return jnp.sum(-0.5 * z**2 - p.log_std - 0.5 * _LOG_2PI, axis=-1)

    @staticmethod
    def entropy(p: GaussianParams) -> jax.Array:
        return jnp.sum(p.log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    @staticmethod
    def kl(p: GaussianParams, q: GaussianParams) -> jax.Array:
        """KL(p || q) -> [...]."""
        var_ratio = jnp.exp(2.0 * (p.log_std - q.log_std))
        mahal = ((p.mean - q.mean) * jnp.exp(-q.log_std)) ** 2
        return 0.5 * jnp.sum(var_ratio + mahal - 1.0 - 2.0 * (p.log_std - q.log_std), axis=-1)

    @staticmethod
    def fisher_vp(p: GaussianParams, v: GaussianParams) -> GaussianParams:
        """Fisher in (mean, log_std) space is diagonal: 1/sigma^2 for the mean, 2 for log_std."""
        return GaussianParams(v.mean * jnp.exp(-2.0 * p.log_std), 2.0 * v.log_std)


def distribution(discrete: bool) -> type[Categorical] | type[DiagGaussian]:
    return Categorical if discrete else DiagGaussian
