"""Orthogonal initialisation (LAPACK-free) against numpy's QR, and network shapes."""

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.envs import EnvSpec
from vecpg.models.distributions import GaussianParams
from vecpg.models.networks import gram_schmidt, init_agent_params, make_agent, orthogonal


def test_gram_schmidt_is_qr_with_positive_diagonal():
    a = np.random.default_rng(0).normal(size=(7, 4))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    np.testing.assert_allclose(gram_schmidt(jnp.asarray(a)), q, atol=1e-5)


def test_orthogonal_init_is_orthogonal_and_scaled():
    for shape in [(5, 3), (3, 5), (4, 4)]:
        w = np.asarray(orthogonal(2.0)(jax.random.key(1), shape))
        small = min(shape)
        gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-4)


def test_actor_and_critic_shapes():
    spec = EnvSpec("x", (3,), False, 2, -1.0, 1.0, 10)
    agent = make_agent(spec, (8, 8), "tanh")
    params = init_agent_params(agent, jax.random.key(0))
    dist = agent.actor.apply(params.actor, jnp.zeros((5, 3)))
    assert isinstance(dist, GaussianParams) and dist.mean.shape == (5, 2)
    assert dist.log_std.shape == (5, 2)  # state-independent, broadcast
    assert agent.critic.apply(params.critic, jnp.zeros((5, 3))).shape == (5,)


def test_patch_conv_is_flax_conv():
    """The MinAtar torso's conv (patches @ kernel, fast under vmap on the CPU) against
    flax's own nn.Conv: same parameters from the same key, same outputs."""
    import flax.linen as nn

    from vecpg.models.networks import PatchConv, orthogonal

    x = jax.random.normal(jax.random.key(0), (2, 5, 10, 10, 4))  # two leading axes
    ours = PatchConv(16, (3, 3), orthogonal(np.sqrt(2.0)))
    flax_conv = nn.Conv(16, (3, 3), padding="VALID", kernel_init=orthogonal(np.sqrt(2.0)))
    p_ours, p_flax = ours.init(jax.random.key(1), x), flax_conv.init(jax.random.key(1), x[0])
    jax.tree.map(np.testing.assert_array_equal, p_ours, p_flax)
    p_flax = jax.tree.map(lambda a: a + 0.1, p_flax)  # a non-zero bias too
    want = jax.vmap(lambda xi: flax_conv.apply(p_flax, xi))(x)
    np.testing.assert_allclose(ours.apply(p_flax, x), want, atol=1e-5)
    assert want.shape == (2, 5, 8, 8, 16)


def test_orthogonalize_draws_every_kernel_from_one_padded_batch_as_qr_would():
    """Each deferred kernel is the positive-diagonal QR of its own block of one normal
    draw [L, N, K] (numpy as the oracle), scaled; other leaves are untouched."""
    from vecpg.models.orthogonal import OrthogonalKernel, orthogonalize

    shapes = [(5, 3), (3, 5), (2, 2, 3, 4), (7, 7)]
    scales = [2.0, 0.5, 1.0, 3.0]
    tree = {
        "k": [OrthogonalKernel(jnp.zeros(s), c) for s, c in zip(shapes, scales, strict=True)],
        "bias": jnp.arange(3.0),
    }
    key = jax.random.key(4)
    out = orthogonalize(tree, key)
    draw = np.asarray(jax.random.normal(key, (4, 12, 7)))  # N = 12 (2*2*3), K = 7
    for w, shape, scale, a in zip(out["k"], shapes, scales, draw, strict=True):
        n_in, n_out = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(a[: max(n_in, n_out), : min(n_in, n_out)])
        q = q * np.sign(np.diag(r))
        want = scale * (q if n_in >= n_out else q.T).reshape(shape)
        np.testing.assert_allclose(np.asarray(w), want, atol=1e-5)
    np.testing.assert_array_equal(out["bias"], np.arange(3.0))
