"""Natural-gradient machinery: Fisher-vector products, conjugate gradient, the
KL-normalised step and a backtracking line search. Pure, flat-vector, jit/vmap-safe.

The Fisher is never formed. `fisher_vector_product` uses the Gauss-Newton form

    F v = (1/N) sum_i J_i^T F_dist(phi_i) J_i v,

with J_i the Jacobian of sample i's distribution parameters phi_i w.r.t. theta: one JVP
through the actor, the analytic Fisher of the distribution (distributions.py), one VJP
back. We chose it over forward-over-reverse on the mean KL because it costs one forward
and one backward pass (no second-order autodiff through the network), is exactly PSD,
and is exact (not an estimate from sampled actions) for any batch of states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

Vector = jax.Array  # [P] flat parameter vector


def fisher_vector_product(
    dist_fn: Callable[[Any], Any],
    fisher_vp: Callable[[Any, Any], Any],
    params: Any,
    v: Any,
    damping: ArrayLike,
) -> Any:
    """(F + damping I) v for pytrees `params`, `v` (same structure).

    dist_fn: params -> distribution parameters for a batch, leaves [N, ...].
    fisher_vp: the distribution's analytic Fisher, (dist, tangent) -> tangent.
    """
    dist, jv = jax.jvp(dist_fn, (params,), (v,))
    n = jax.tree.leaves(dist)[0].shape[0]
    fjv = jax.tree.map(lambda x: x / n, fisher_vp(dist, jv))
    _, vjp = jax.vjp(dist_fn, params)
    (fv,) = vjp(fjv)
    return jax.tree.map(lambda a, b: a + damping * b, fv, v)


def flat_fvp(
    dist_fn: Callable[[Any], Any],
    fisher_vp: Callable[[Any, Any], Any],
    params: Any,
    damping: ArrayLike,
) -> Callable[[Vector], Vector]:
    """The damped FVP as a map on flat [P] vectors."""
    _, unravel = ravel_pytree(params)

    def matvec(v: Vector) -> Vector:
        out = fisher_vector_product(dist_fn, fisher_vp, params, unravel(v), damping)
        return ravel_pytree(out)[0]

    return matvec


class CGResult(NamedTuple):
    x: Vector  # [P] approximate solution of A x = b
    residual_norm: jax.Array  # ||b - A x|| after the last iteration


def conjugate_gradient(matvec: Callable[[Vector], Vector], b: Vector, iters: int) -> CGResult:
    """Solve A x = b (A symmetric positive definite) with exactly `iters` CG iterations.

    A fixed count (a `lax.scan`) rather than a tolerance: under vmap a tolerance loop
    runs until the slowest lane finishes anyway, and a fixed count keeps lanes identical
    in cost. Once the residual is exactly zero the iterate stops moving.
    """
    tiny = jnp.finfo(b.dtype).tiny

    def body(carry, _):
        x, r, p, rr = carry
        ap = matvec(p)
        pap = jnp.vdot(p, ap)
        alpha = jnp.where(pap > tiny, rr / jnp.maximum(pap, tiny), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = jnp.vdot(r, r)
        beta = jnp.where(rr > tiny, rr_new / jnp.maximum(rr, tiny), 0.0)
        return (x, r, r + beta * p, rr_new), None

    x0 = jnp.zeros_like(b)
    (x, r, _, rr), _ = jax.lax.scan(body, (x0, b, b, jnp.vdot(b, b)), None, length=iters)
    return CGResult(x, jnp.sqrt(rr))


def kl_step_size(g: Vector, x: Vector, max_kl: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """alpha = sqrt(2 eps / g^T F^-1 g), with x ~ F^-1 g from CG. Returns (alpha, gFg)."""
    gfg = jnp.vdot(g, x)
    alpha = jnp.sqrt(2.0 * max_kl / jnp.maximum(gfg, 1e-12))
    return jnp.where(gfg > 0, alpha, 0.0), gfg


class LineSearch(NamedTuple):
    params: Any  # accepted parameters (the old ones if nothing was accepted)
    accepted: jax.Array  # bool
    steps: jax.Array  # backtracking steps taken: 1 = full step; num_steps if none accepted
    kl_old_new: jax.Array  # KL(old || new) at the accepted point (0 if none)
    improvement: jax.Array  # surrogate improvement at the accepted point (0 if none)


def backtracking_line_search(
    objective_and_kl_old_new: Callable[[Any], tuple[jax.Array, jax.Array]],
    params: Any,
    full_step: Any,
    max_kl: ArrayLike,
    coef: ArrayLike,
    num_steps: int,
) -> LineSearch:
    """Try params + coef^k * full_step for k = 0..num_steps-1 and accept the first with
    KL(old || new) <= max_kl and a strictly improved objective (surrogate).

    objective_and_kl_old_new: candidate params -> (objective, mean KL(pi_params ||
    pi_candidate)), the direction TRPO constrains.

    All candidates are evaluated at once (vmap): the cost is fixed, which is what a
    vmapped batch of seeds would pay anyway, and it parallelises on accelerators.
    """
    base_obj, _ = objective_and_kl_old_new(params)
    fracs = coef ** jnp.arange(num_steps, dtype=jnp.float32)

    def candidate(frac):
        return jax.tree.map(lambda p, s: p + frac * s, params, full_step)

    objs, kls = jax.vmap(lambda f: objective_and_kl_old_new(candidate(f)))(fracs)
    ok = (kls <= max_kl) & (objs > base_obj) & jnp.isfinite(objs) & jnp.isfinite(kls)
    first = jnp.argmax(ok)
    accepted = ok[first]
    new = jax.tree.map(lambda old, c: jnp.where(accepted, c, old), params, candidate(fracs[first]))
    return LineSearch(
        params=new,
        accepted=accepted,
        steps=jnp.where(accepted, first + 1, num_steps),
        kl_old_new=jnp.where(accepted, kls[first], 0.0),
        improvement=jnp.where(accepted, objs[first] - base_obj, 0.0),
    )
