"""The layers vecpg's networks are built from: orthogonal initialisation, the MLP, and
the torso that reads an observation (flattened, or a small conv net for [H, W, C])."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.errors import ConfigError

_ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
}


def gram_schmidt(a: jax.Array) -> jax.Array:
    """Orthonormalise the columns of a [n, k] matrix (n >= k), keeping their order and
    orientation: the Q of a QR factorisation with a positive diagonal R.

    Plain matmuls, no LAPACK: jaxlib 0.10's batched CPU QR (what a vmapped orthogonal
    init lowers to) can deadlock its own thread pool; this cannot.
    """
    n, k = a.shape
    cols = jnp.arange(k)

    def body(j, q):
        v = a[:, j]
        mask = (cols < j).astype(a.dtype)
        for _ in range(2):  # re-orthogonalise once: "twice is enough"
            v = v - q @ ((q.T @ v) * mask)
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, k, body, jnp.zeros_like(a))


def orthogonal(scale: float) -> Callable:
    """Orthogonal initialiser scaled by `scale`, for dense kernels [in, out] and conv
    kernels [kh, kw, in, out] (as the matrix [kh * kw * in, out])."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        n_in, n_out = int(np.prod(shape[:-1])), shape[-1]
        a = jax.random.normal(key, (max(n_in, n_out), min(n_in, n_out)), dtype)
        q = gram_schmidt(a)
        return scale * (q if n_in >= n_out else q.T).reshape(shape)

    return init


class MLP(nn.Module):
    """Hidden layers (orthogonal init, gain sqrt 2) then a linear head of `out_dim`."""

    hidden: tuple[int, ...]
    activation: str
    out_dim: int
    out_gain: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out_dim, kernel_init=orthogonal(self.out_gain))(x)


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
        conv = PatchConv(16, (3, 3), orthogonal(np.sqrt(2.0)), name="Conv_0")  # nn.Conv's name
        x = nn.relu(conv(obs)).reshape(*lead, -1)
        return nn.relu(nn.Dense(128, kernel_init=orthogonal(np.sqrt(2.0)))(x))
