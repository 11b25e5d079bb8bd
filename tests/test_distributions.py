"""Analytic log-prob, entropy, KL and Fisher against scipy and explicit formulas.

Tolerances: the code runs in float32 (eps 1.2e-7) against scipy in float64. A log-prob,
entropy or KL of O(1) values is a handful of float32 operations: rtol 1e-5 (~84 eps)
allows that with room and is far below any formula mistake (a missing 1/2 or log 2pi,
a KL in the other direction)."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats

from vecpg.models.distributions import Categorical, DiagGaussian, GaussianParams


def test_categorical_against_scipy():
    rng = np.random.default_rng(0)
    p_logits, q_logits = rng.normal(size=(2, 5, 4))
    p, q = scipy.special.softmax(p_logits, -1), scipy.special.softmax(q_logits, -1)
    a = rng.integers(0, 4, size=5)
    np.testing.assert_allclose(
        Categorical.log_prob(jnp.asarray(p_logits), jnp.asarray(a)),
        np.log(p[np.arange(5), a]),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        Categorical.entropy(jnp.asarray(p_logits)), scipy.stats.entropy(p, axis=-1), rtol=1e-5
    )
    np.testing.assert_allclose(
        Categorical.kl(jnp.asarray(p_logits), jnp.asarray(q_logits)),
        scipy.special.rel_entr(p, q).sum(-1),
        rtol=1e-5,
    )


def test_gaussian_against_scipy_and_quadrature():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=(2, 3))
    s1, s2 = rng.uniform(-0.5, 0.5, size=(2, 3))
    a = rng.normal(size=3)
    p = GaussianParams(jnp.asarray(m1), jnp.asarray(s1))
    q = GaussianParams(jnp.asarray(m2), jnp.asarray(s2))
    np.testing.assert_allclose(
        DiagGaussian.log_prob(p, jnp.asarray(a)),
        scipy.stats.norm.logpdf(a, m1, np.exp(s1)).sum(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        DiagGaussian.entropy(p), scipy.stats.norm.entropy(m1, np.exp(s1)).sum(), rtol=1e-5
    )
    kl_quad = 0.0
    for i in range(3):
        f = lambda x: (
            scipy.stats.norm.pdf(x, m1[i], np.exp(s1[i]))
            * (  # noqa: E731
                scipy.stats.norm.logpdf(x, m1[i], np.exp(s1[i]))
                - scipy.stats.norm.logpdf(x, m2[i], np.exp(s2[i]))
            )
        )
        kl_quad += scipy.integrate.quad(f, -30, 30)[0]
    # quadrature of the integrand to ~1e-8 absolute per dimension, plus float32 rounding
    np.testing.assert_allclose(DiagGaussian.kl(p, q), kl_quad, rtol=1e-4)


def test_fisher_is_hessian_of_kl_in_distribution_parameters():
    """F(p) = d^2/dq^2 KL(p || q) at q = p, for both distributions."""
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=4))
    v = jnp.asarray(rng.normal(size=4))
    hess = jax.hessian(lambda q: Categorical.kl(logits, q))(logits)
    # float32 second-order autodiff of log_softmax: entries O(0.25), a few dozen ops each
    np.testing.assert_allclose(Categorical.fisher_vp(logits, v), hess @ v, rtol=1e-4, atol=1e-6)

    p = GaussianParams(jnp.asarray(rng.normal(size=2)), jnp.asarray(rng.normal(size=2) * 0.3))
    flat = jnp.concatenate([p.mean, p.log_std])
    kl = lambda f: DiagGaussian.kl(p, GaussianParams(f[:2], f[2:]))  # noqa: E731
    vf = jnp.asarray(rng.normal(size=4))
    got = DiagGaussian.fisher_vp(p, GaussianParams(vf[:2], vf[2:]))
    np.testing.assert_allclose(
        jnp.concatenate(got), jax.hessian(kl)(flat) @ vf, rtol=1e-4, atol=1e-6
    )


def test_gaussian_samples_have_the_right_moments():
    p = GaussianParams(jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 2.0])))
    x = DiagGaussian.sample(jax.random.key(0), jax.tree.map(lambda t: jnp.tile(t, (20000, 1)), p))
    # statistical: the sample mean's std error is sigma / sqrt(20000) <= 0.014 (0.05 is 3.5
    # of them); the sample std's relative std error is 1 / sqrt(2 * 20000) = 0.005 (0.03
    # is 6 of them)
    np.testing.assert_allclose(x.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(x.std(0), [0.5, 2.0], rtol=0.03)
