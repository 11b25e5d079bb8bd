"""The layers vecpg's networks are built from: orthogonal initialisation, the MLP, and
the torso that reads an observation (flattened, or a small conv net for [H, W, C])."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.errors import ConfigError
from vecpg.models.orthogonal import (  # noqa: F401  (gram_schmidt, orthogonal re-exported)
    deferred_orthogonal,
    gram_schmidt,
    orthogonal,
)

_ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
}


class MLP(nn.Module):
    """Hidden layers (orthogonal init, gain sqrt 2) then a linear head of `out_dim` (the
    kernels drawn by `vecpg.models.orthogonal.orthogonalize`)."""

    hidden: tuple[int, ...]
    activation: str
    out_dim: int
    out_gain: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=deferred_orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out_dim, kernel_init=deferred_orthogonal(self.out_gain))(x)


def resolve_torso(torso: str, obs_shape: tuple[int, ...]) -> str:
    """ "auto" -> "cnn" for image observations [H, W, C], else "mlp"; "cnn" needs them."""
    if torso == "auto":
        return "cnn" if len(obs_shape) == 3 else "mlp"
    if torso == "cnn" and len(obs_shape) != 3:
        raise ConfigError(
            f"invalid torso='cnn': needs image observations [H, W, C]; this env's are "
            f"{list(obs_shape)} (use --torso mlp or auto)"
        )
    return torso


class PatchConv(nn.Module):
    """A stride-1 VALID 2-D convolution computed as patches @ kernel: the same function
    and parameters ({kernel [kh, kw, C, F], bias [F]}) as `nn.Conv`, but under vmap over
    lanes (a kernel per seed) it stays a batched matmul. `nn.Conv` becomes a grouped
    convolution there, which XLA's CPU backend ran about 1000x slower than the env
    (MinAtar Breakout ppo: 1,158 env steps/s against a 1.34M ceiling)."""

    features: int
    kernel_size: tuple[int, int]
    kernel_init: Callable

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        c = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        h, w = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
        patches = jnp.stack(
            [x[..., i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-2
        )  # [..., h, w, kh*kw, C], in the kernel's (i, j, c) order
        patches = patches.reshape(*patches.shape[:-2], kh * kw * c)
        return patches @ kernel.reshape(kh * kw * c, self.features) + bias


class Torso(nn.Module):
    """obs [..., *obs_shape] -> features [..., F]. mlp: the observation flattened. cnn
    (MinAtar paper): Conv 16 x 3x3, stride 1, ReLU, flattened, then Dense 128, ReLU."""

    kind: str  # "mlp" | "cnn" (resolved)
    obs_rank: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        lead = obs.shape[: obs.ndim - self.obs_rank]
        if self.kind == "mlp":
            return obs.reshape(*lead, -1)
        gain = np.sqrt(2.0)
        conv = PatchConv(16, (3, 3), deferred_orthogonal(gain), name="Conv_0")  # nn.Conv's name
        x = nn.relu(conv(obs)).reshape(*lead, -1)
        return nn.relu(nn.Dense(128, kernel_init=deferred_orthogonal(gain))(x))
