"""The lecture's claims, checked exactly on finite MDPs (float64).

Tolerances: float64 eps is 2.2e-16; values here are at most |r|max / (1 - gamma) ~ 30,
computed by linear solves of at most 18 x 18 systems with condition ~ 1 / (1 - gamma)
= 10, so rounding stays below ~1e-13. The 1e-10 / 1e-12 bounds leave 100x or more for
that and are still 1e6 below any formula mistake (a missing 1 / (1 - gamma), a wrong
distribution)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vecpg import tabular as tb


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def mdp_and_thetas(seed, S=6, A=3, gamma=0.9, scale=1.0):
    k = jax.random.split(jax.random.key(seed), 3)
    mdp = tb.random_mdp(k[0], S, A, gamma)
    return mdp, scale * jax.random.normal(k[1], (S, A)), scale * jax.random.normal(k[2], (S, A))


def test_values_against_monte_carlo_free_identities():
    mdp, theta, _ = mdp_and_thetas(0)
    pi = tb.policy(theta)
    V, Q = tb.state_values(mdp, pi), tb.q_values(mdp, pi)
    np.testing.assert_allclose(jnp.sum(pi * Q, axis=1), V, atol=1e-10)  # V = E_a Q
    np.testing.assert_allclose(jnp.sum(pi * tb.advantages(mdp, pi), axis=1), 0.0, atol=1e-10)
    d = tb.discounted_visitation(mdp, pi)
    np.testing.assert_allclose(d.sum(), 1.0, atol=1e-12)
    ps = tb.state_marginals(mdp, pi, 400)  # sum_t gamma^t p_t ~ d / (1 - gamma)
    disc = (mdp.gamma ** jnp.arange(401))[:, None] * ps
    np.testing.assert_allclose((1 - mdp.gamma) * disc.sum(0), d, atol=1e-10)


def test_exact_policy_gradient_equals_autodiff_of_J():
    mdp, theta, _ = mdp_and_thetas(1)
    auto = jax.grad(lambda t: tb.objective(mdp, tb.policy(t)))(theta)
    np.testing.assert_allclose(tb.policy_gradient(mdp, theta), auto, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_claim1_performance_difference_identity(seed):
    """J(theta') - J(theta) = E_{tau ~ p_theta'}[sum_t gamma^t A^{pi_theta}(s_t, a_t)]."""
    mdp, theta, theta_new = mdp_and_thetas(seed, scale=2.0)
    pi, pi_new = tb.policy(theta), tb.policy(theta_new)
    lhs = tb.objective(mdp, pi_new) - tb.objective(mdp, pi)
    d_new = tb.discounted_visitation(mdp, pi_new)
    rhs = jnp.sum(d_new[:, None] * pi_new * tb.advantages(mdp, pi)) / (1 - mdp.gamma)
    assert abs(float(lhs - rhs)) <= 1e-10  # an identity: float64 rounding only


def test_claim2_state_marginal_bound():
    """||p_theta'(s_t) - p_theta(s_t)||_1 <= 2 eps t, eps = max_s TV(pi', pi)."""
    worst = 0.0
    for seed in range(50):
        mdp, theta, _ = mdp_and_thetas(seed, S=5, A=3)
        delta = jax.random.normal(jax.random.key(1000 + seed), theta.shape) * (seed % 5 + 1) * 0.1
        pi, pi_new = tb.policy(theta), tb.policy(theta + delta)
        eps = tb.policy_tv(pi_new, pi).max()
        diff = jnp.abs(tb.state_marginals(mdp, pi_new, 30) - tb.state_marginals(mdp, pi, 30))
        l1 = diff.sum(axis=1)
        t = jnp.arange(31)
        assert jnp.all(l1 <= 2 * eps * t + 1e-12)
        worst = max(worst, float(jnp.max(l1[1:] / (2 * eps * t[1:]))))
    assert worst > 0.3  # the bound is not vacuous on these pairs


def test_claim4_kl_second_order_model():
    """E_{s~d}[KL(pi_{theta+delta} || pi_theta)] = 1/2 delta^T F delta + O(|delta|^3)."""
    mdp, theta, direction = mdp_and_thetas(3)
    F = tb.fisher(mdp, theta)
    d = tb.discounted_visitation(mdp, tb.policy(theta))
    errors = []
    for h in (0.1, 0.05, 0.025, 0.0125):
        delta = h * direction
        kl = d @ tb.policy_kl(tb.policy(theta + delta), tb.policy(theta))
        quad = 0.5 * delta.ravel() @ F @ delta.ravel()
        errors.append(float(abs(kl - quad)))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 6.0) & (ratios < 10.0)), ratios  # halving h divides by ~2^3


def test_claim5_natural_gradient_is_the_advantage():
    """Kakade: for tabular softmax, F w = g with w = A^pi / (1 - gamma)."""
    mdp, theta, _ = mdp_and_thetas(4)
    pi = tb.policy(theta)
    w = tb.advantages(mdp, pi) / (1 - mdp.gamma)
    g = tb.policy_gradient(mdp, theta)
    np.testing.assert_allclose(tb.fisher(mdp, theta) @ w.ravel(), g.ravel(), atol=1e-10)


def test_gridworld_by_hand():
    """2 x 2 grid (states 0 1 / 2 3, goal 3), actions up/right/down/left.

    Transitions with slip 0.1, from state 0: `right` reaches 1 with 0.9 + 0.1/4, stays
    with 0.1/4 + 0.1/4 (a slip up or left hits a wall) and reaches 2 with 0.1/4; `up`
    stays with 0.9 + 0.1/4 + 0.1/4 and reaches 1 or 2 with 0.1/4 each. The goal restarts
    at 0 whatever the action. Without slip, the policy right, down, (anything at the
    goal) loops 0 -> 1 -> 3 -> 0 with reward 1 at t = 2, 5, 8, ...:
    J = gamma^2 / (1 - gamma^3) = 0.81 / 0.271."""
    mdp = tb.gridworld(2, gamma=0.9, slip=0.1)
    np.testing.assert_allclose(mdp.P.sum(-1), 1.0, atol=1e-12)  # float64 sums of 4 terms
    np.testing.assert_allclose(mdp.P[0, 1], [0.05, 0.925, 0.025, 0.0], atol=1e-12)
    np.testing.assert_allclose(mdp.P[0, 0], [0.95, 0.025, 0.025, 0.0], atol=1e-12)
    np.testing.assert_allclose(mdp.P[3], np.tile([1.0, 0, 0, 0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(mdp.r, [[0.0] * 4] * 3 + [[1.0] * 4], atol=0)
    right, down = jnp.eye(4)[1], jnp.eye(4)[2]
    pi = jnp.stack([right, down, right, right])  # state 2 is never visited
    det = tb.gridworld(2, gamma=0.9, slip=0.0)
    # float64 linear solve of a 4 x 4 system: rounding ~1e-15 relative
    np.testing.assert_allclose(tb.objective(det, pi), 0.81 / 0.271, rtol=1e-12)


def test_claim3_surrogate_error_within_bound_and_second_order():
    """|J' - J - A_bar| <= the lecture's bound everywhere; the error is O(eps^2)."""
    orders = []
    for seed in range(20):
        mdp, theta, direction = mdp_and_thetas(seed)
        errs, epss = [], []
        for h in (1.6, 0.8, 0.4, 0.2, 0.1, 0.05, 0.025, 0.0125):
            new = theta + h * direction
            pi, pi_new = tb.policy(theta), tb.policy(new)
            err = abs(
                tb.objective(mdp, pi_new) - tb.objective(mdp, pi) - tb.surrogate(mdp, theta, new)
            )
            eps = tb.policy_tv(pi_new, pi).max()
            assert err <= tb.surrogate_error_bound(mdp, theta, eps)
            errs.append(float(err))
            epss.append(float(eps))
        orders.append(np.polyfit(np.log(epss[-4:]), np.log(errs[-4:]), 1)[0])
    # first-order terms cancel: the error is (at least) second order in eps
    assert min(orders) > 1.8, orders
    assert 1.9 < np.median(orders) < 2.1, orders


def test_claim6_natural_beats_vanilla_under_the_same_kl_budget():
    wins = 0
    for seed in range(40):
        mdp, theta, _ = mdp_and_thetas(seed, scale=1.5)
        F, g = tb.fisher(mdp, theta), tb.policy_gradient(mdp, theta)
        nat = tb.advantages(mdp, tb.policy(theta))  # F^+ g up to per-state shifts
        j0 = tb.objective(mdp, tb.policy(theta))
        gain = {}
        for name, direction in (("vanilla", g), ("natural", nat)):
            step = tb.kl_normalised_step(direction, F, 1e-3)
            gain[name] = tb.objective(mdp, tb.policy(theta + step)) - j0
        wins += int(gain["natural"] > gain["vanilla"])
    assert wins >= 32, wins  # >= 80% of random worlds


def test_value_iteration_dominates_every_policy():
    mdp, theta, _ = mdp_and_thetas(7)
    v_star = tb.optimal_values(mdp)
    assert np.all(v_star >= tb.state_values(mdp, tb.policy(theta)) - 1e-9)
    greedy = jax.nn.one_hot(jnp.argmax(mdp.r + mdp.gamma * mdp.P @ v_star, 1), 3)
    # 2000 sweeps of value iteration at gamma 0.9 converge to float64 rounding (0.9^2000)
    np.testing.assert_allclose(tb.state_values(mdp, greedy), v_star, atol=1e-10)
