"""GAE against a hand-written numpy reference and the lambda=1 identity."""

import jax.numpy as jnp
import numpy as np
import pytest

from vecpg.training.advantages import batched_gae, gae


def numpy_gae(r, v, v_next, terminated, truncated, gamma, lam):
    """Plain loop over time, written independently of vecpg's formulation."""
    T = len(r)
    adv = np.zeros(T)
    next_adv = 0.0
    for t in reversed(range(T)):
        bootstrap = 0.0 if terminated[t] else gamma * v_next[t]
        delta = r[t] + bootstrap - v[t]
        ended = terminated[t] or truncated[t]
        next_adv = delta + (0.0 if ended else gamma * lam * next_adv)
        adv[t] = next_adv
    return adv


def flags(T, rng):
    terminated = rng.random(T) < 0.15
    truncated = (rng.random(T) < 0.1) & ~terminated
    terminated[3], truncated[3] = True, False  # at least one of each mid-trajectory
    terminated[7], truncated[7] = False, True
    return terminated, truncated


@pytest.mark.parametrize("lam", [0.0, 0.9, 0.95, 1.0])
def test_gae_matches_numpy_reference(lam):
    rng = np.random.default_rng(0)
    T, gamma = 20, 0.97
    r, v, v_next = rng.normal(size=(3, T))
    terminated, truncated = flags(T, rng)
    expected = numpy_gae(r, v, v_next, terminated, truncated, gamma, lam)
    got = gae(
        jnp.asarray(r),
        jnp.asarray(v),
        jnp.asarray(v_next),
        jnp.asarray(gamma * (1.0 - terminated)),
        jnp.asarray(lam * (1.0 - (terminated | truncated))),
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_gae_lambda_one_is_discounted_return_minus_value():
    """With lambda=1 and no truncation, A_t = sum_k gamma^k r_{t+k} (+ bootstrap) - V(s_t)."""
    rng = np.random.default_rng(1)
    T, gamma = 15, 0.9
    r, v = rng.normal(size=(2, T))
    v_next = np.append(v[1:], rng.normal())  # consistent successor values
    terminated = np.zeros(T, bool)
    terminated[6] = True
    v_next[6] = 123.0  # must be ignored: terminal
    # discounted return, restarting after the terminal step, bootstrapped at the end
    ret = np.zeros(T)
    acc = v_next[-1]
    for t in reversed(range(T)):
        acc = r[t] + (0.0 if terminated[t] else gamma * acc)
        ret[t] = acc
    got = gae(
        jnp.asarray(r),
        jnp.asarray(v),
        jnp.asarray(v_next),
        jnp.asarray(gamma * (1.0 - terminated)),
        jnp.asarray(1.0 - terminated),
    )
    np.testing.assert_allclose(np.asarray(got), ret - v, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_from_true_next_value():
    r = jnp.array([1.0, 1.0])
    v = jnp.array([0.0, 0.0])
    v_next = jnp.array([0.0, 10.0])  # V of the true s_2 after truncation
    got = gae(r, v, v_next, jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0]))
    # step 1 truncated: 1 + 0.5 * 10 = 6; step 0: 1 + 0.5*0 - 0 + 0.5*1*6 = 4
    np.testing.assert_allclose(np.asarray(got), [4.0, 6.0], rtol=1e-6)


def test_batched_gae_is_gae_per_column_and_checks_rank():
    rng = np.random.default_rng(2)
    T, B = 9, 3
    r, v, vn = (jnp.asarray(x) for x in rng.normal(size=(3, T, B)))
    d = jnp.full((T, B), 0.99)
    lam = jnp.full((T, B), 0.95)
    out = batched_gae(r, v, vn, d, lam)
    for b in range(B):
        np.testing.assert_allclose(out[:, b], gae(r[:, b], v[:, b], vn[:, b], d[:, b], lam[:, b]))
    with pytest.raises(AssertionError):
        gae(r, v, vn, d, lam)  # rank 2 is refused: vmap outside
