"""Orthogonal initialisation without LAPACK, drawn for every layer of a network at once.

A network's modules declare their orthogonal kernels with `deferred_orthogonal(scale)`:
flax's init then holds each as an `OrthogonalKernel` box (zeros, and the scale), and
`orthogonalize` fills all of them from ONE normal draw and ONE Gram-Schmidt loop over a
padded [L, N, K] batch. A draw and a loop per layer were about 27 kernels each for XLA to
compile (hopper's 64 x 64 actor-critic: 6 layers, 160 of its init program's 220).
`orthogonal(scale)` is the same initialiser for one kernel on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta


def gram_schmidt(a: jax.Array) -> jax.Array:
    """Orthonormalise the columns of a [n, k] matrix (n >= k), keeping their order and
    orientation: the Q of a QR factorisation with a positive diagonal R. A zero column
    stays zero (the padding of `orthogonalize`'s batch).

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
        norm = jnp.linalg.norm(v)
        return q.at[:, j].set(v / jnp.where(norm > 0, norm, 1.0))

    return jax.lax.fori_loop(0, k, body, jnp.zeros_like(a))


def _as_matrix(shape: tuple[int, ...]) -> tuple[int, int]:
    """A kernel [..., in, out] as the matrix [prod(...) * in, out] it orthogonalises."""
    return int(np.prod(shape[:-1])), shape[-1]


def _from_q(q: jax.Array, shape: tuple[int, ...], scale: float) -> jax.Array:
    """q [max(in, out), min(in, out)] with orthonormal columns -> the kernel `shape`."""
    n_in, n_out = _as_matrix(shape)
    return scale * (q if n_in >= n_out else q.T).reshape(shape)


def orthogonal(scale: float) -> Callable:
    """Orthogonal initialiser scaled by `scale`, for dense kernels [in, out] and conv
    kernels [kh, kw, in, out] (as the matrix [kh * kw * in, out])."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        n_in, n_out = _as_matrix(shape)
        a = jax.random.normal(key, (max(n_in, n_out), min(n_in, n_out)), dtype)
        return _from_q(gram_schmidt(a), shape, scale)

    return init


class OrthogonalKernel(flax.struct.PyTreeNode, meta.AxisMetadata):
    """A kernel awaiting `orthogonalize`: zeros of its shape, and its scale."""

    value: Any
    scale: float = flax.struct.field(pytree_node=False)

    def unbox(self) -> Any:
        return self.value

    def replace_boxed(self, val: Any) -> OrthogonalKernel:
        return self.replace(value=val)

    def add_axis(self, index: int, params: dict[Any, Any]) -> OrthogonalKernel:
        return self

    def remove_axis(self, index: int, params: dict[Any, Any]) -> OrthogonalKernel:
        return self


def deferred_orthogonal(scale: float) -> Callable:
    """`orthogonal(scale)` for a module's kernel, drawn later with every other kernel of
    the network by `orthogonalize` (until then an `OrthogonalKernel` of zeros)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> OrthogonalKernel:
        del key  # drawn by orthogonalize
        return OrthogonalKernel(jnp.zeros(shape, dtype), float(scale))

    return init


def _is_box(x: Any) -> bool:
    return isinstance(x, OrthogonalKernel)


def orthogonalize(tree: Any, key: jax.Array) -> Any:
    """`tree` (flax variables) with every `OrthogonalKernel` replaced by an orthogonal
    kernel of its shape and scale. All L of them come from one normal draw [L, N, K]
    (N, K: the largest matrix sides; each kernel's entries outside its own [n, k] are
    zero) and one Gram-Schmidt loop over the batch, so each kernel is a Q of iid normal
    entries as `orthogonal` draws it, from a shared key."""
    boxes = [x for x in jax.tree.leaves(tree, is_leaf=_is_box) if _is_box(x)]
    if not boxes:
        return tree
    sides = [_as_matrix(b.value.shape) for b in boxes]
    rows = np.array([max(s) for s in sides])
    cols = np.array([min(s) for s in sides])
    n, k = int(rows.max()), int(cols.max())
    # traced, not numpy: under eval_shape (the memory estimate) a huge network's mask
    # would otherwise be allocated on the host
    inside = (jnp.arange(n)[None, :, None] < rows[:, None, None]) & (
        jnp.arange(k)[None, None, :] < cols[:, None, None]
    )  # [L, N, K]
    a = jax.random.normal(key, (len(boxes), n, k), jnp.float32) * inside
    q = jax.vmap(gram_schmidt)(a)
    kernels = iter(
        _from_q(q[i, : rows[i], : cols[i]], b.value.shape, b.scale).astype(b.value.dtype)
        for i, b in enumerate(boxes)
    )
    return jax.tree.map(lambda x: next(kernels) if _is_box(x) else x, tree, is_leaf=_is_box)
