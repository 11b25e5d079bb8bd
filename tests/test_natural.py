"""Fisher-vector products, CG and the natural step against explicit matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from vecpg.algos.base import Batch
from vecpg.algos.natural import backtracking_line_search, conjugate_gradient, flat_fvp
from vecpg.algos.objectives import mean_kl, surrogate
from vecpg.algos.trust_region import natural_direction
from vecpg.config import TrainConfig
from vecpg.envs import EnvSpec
from vecpg.models.distributions import distribution
from vecpg.models.networks import init_agent_params, make_agent


def tiny_problem(discrete: bool, n: int = 32, seed: int = 0):
    spec = EnvSpec("t", (3,), discrete, 3 if discrete else 2, -1.0, 1.0, 10)
    agent = make_agent(spec, (4,), "tanh")
    params = init_agent_params(agent, jax.random.key(seed)).actor
    # move away from the symmetric init so the Fisher is generic
    flat, unravel = ravel_pytree(params)
    noise = jax.random.normal(jax.random.key(seed + 1), flat.shape, flat.dtype)
    params = unravel(flat + 0.3 * noise)
    obs = jax.random.normal(jax.random.key(seed + 2), (n, 3), flat.dtype)
    return agent, params, obs


def explicit_fisher(agent, params, obs):
    """Hessian of the mean KL(pi_theta || pi_theta') in theta' at theta': built without the
    Gauss-Newton path (second-order autodiff of the KL itself)."""
    flat, unravel = ravel_pytree(params)
    dist = distribution(agent.spec.discrete)
    old = agent.actor.apply(params, obs)

    def kl(f):
        return jnp.mean(dist.kl(old, agent.actor.apply(unravel(f), obs)))

    return jax.hessian(kl)(flat)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fvp_equals_explicit_fisher_times_v(discrete, damping):
    with jax.enable_x64(True):
        agent, params, obs = tiny_problem(discrete)
        params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
        obs = obs.astype(jnp.float64)
        flat, _ = ravel_pytree(params)
        F = explicit_fisher(agent, params, obs) + damping * jnp.eye(flat.size)
        dist = distribution(discrete)
        matvec = flat_fvp(lambda p: agent.actor.apply(p, obs), dist.fisher_vp, params, damping)
        for k in range(3):
            v = jax.random.normal(jax.random.key(10 + k), flat.shape, jnp.float64)
            got, want = matvec(v), F @ v
            rel = jnp.linalg.norm(got - want) / jnp.linalg.norm(want)
            assert rel <= 1e-5, rel


def test_cg_matches_solve_within_its_convergence_bound():
    with jax.enable_x64(True):
        agent, params, obs = tiny_problem(True, n=64)
        params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
        flat, _ = ravel_pytree(params)
        F = explicit_fisher(agent, params, obs.astype(jnp.float64)) + 0.1 * jnp.eye(flat.size)
        b = jax.random.normal(jax.random.key(3), flat.shape, jnp.float64)
        x_star = jnp.linalg.solve(F, b)
        eig = jnp.linalg.eigvalsh(F)
        kappa = eig[-1] / eig[0]
        rate = (jnp.sqrt(kappa) - 1) / (jnp.sqrt(kappa) + 1)
        a_norm = lambda e: jnp.sqrt(e @ F @ e)  # noqa: E731
        prev = np.inf
        for iters in (1, 3, 10, 25):
            res = conjugate_gradient(lambda v: F @ v, b, iters)
            err = a_norm(res.x - x_star)
            assert err <= 2 * rate**iters * a_norm(x_star) * (1 + 1e-6), iters
            assert err <= prev * (1 + 1e-9)  # the A-norm error never grows
            prev = err
            true_res = jnp.linalg.norm(b - F @ res.x)
            np.testing.assert_allclose(res.residual_norm, true_res, rtol=1e-6, atol=1e-10)
        # enough iterations: the solve itself
        res = conjugate_gradient(lambda v: F @ v, b, 4 * flat.size)
        np.testing.assert_allclose(res.x, x_star, rtol=1e-6, atol=1e-8)


def fixed_batch(discrete: bool, n: int = 256):
    agent, params, obs = tiny_problem(discrete, n=n, seed=5)
    dist = agent.actor.apply(params, obs)
    action = agent.dist.sample(jax.random.key(7), dist)
    adv = jax.random.normal(jax.random.key(8), (n,))
    batch = Batch(
        obs=obs,
        action=action,
        log_prob=agent.dist.log_prob(dist, action),
        advantage=adv,
        target=adv,
        value=jnp.zeros(n),
        old_dist=dist,
    )
    return agent, params, batch


@pytest.mark.parametrize("discrete", [True, False])
def test_npg_step_respects_the_kl_budget_to_second_order(discrete):
    eps = 1e-4
    agent, params, batch = fixed_batch(discrete)
    cfg = TrainConfig(max_kl=eps, damping=1e-3, cg_iters=50)
    hp = cfg.hparams()
    d = natural_direction(cfg.static(), agent, params, batch, hp, hp.max_kl)
    _, unravel = ravel_pytree(params)
    new = jax.tree.map(jnp.add, params, unravel(d.alpha * d.x))
    kl = float(mean_kl(agent, new, batch))
    assert 0.5 * eps <= kl <= 2 * eps, kl
    assert float(surrogate(agent, new, batch)) > float(surrogate(agent, params, batch))


def test_line_search_accepts_first_point_inside_the_budget():
    # objective: -(x-3)^2 ; "kl": x^2 / 2. From x=0, full step 10, coef 0.5, max_kl 2:
    # candidates 10 (kl 50), 5 (kl 12.5), 2.5 (kl 3.125), 1.25 (kl 0.78) -> accept 1.25.
    f = lambda x: (-((x - 3.0) ** 2), 0.5 * x**2)  # noqa: E731
    ls = backtracking_line_search(f, jnp.float32(0.0), jnp.float32(10.0), 2.0, 0.5, 6)
    assert bool(ls.accepted) and int(ls.steps) == 4
    np.testing.assert_allclose(ls.params, 1.25)
    # nothing improves: keep the old point and report it
    ls = backtracking_line_search(f, jnp.float32(3.0), jnp.float32(1.0), 2.0, 0.5, 6)
    assert not bool(ls.accepted) and int(ls.steps) == 6
    np.testing.assert_allclose(ls.params, 3.0)


def test_fixed_step_mode_and_fvp_subsampling():
    from vecpg.algos.trust_region import fvp_subsample

    agent, params, batch = fixed_batch(True, n=100)
    cfg = TrainConfig(npg_fixed_step=True, natural_lr=0.05, fvp_fraction=0.1)
    hp = cfg.hparams()
    d = natural_direction(cfg.static(), agent, params, batch, hp, hp.max_kl)
    np.testing.assert_allclose(d.alpha, 0.05)
    sub = fvp_subsample(batch, 0.1)
    np.testing.assert_array_equal(sub, batch.obs[::10])
    # the direction is CG on the Fisher of those 10 states, with the full-batch gradient
    matvec = flat_fvp(lambda p: agent.actor.apply(p, sub), agent.dist.fisher_vp, params, 0.1)
    want = conjugate_gradient(matvec, d.g, cfg.cg_iters).x
    np.testing.assert_allclose(d.x, want, rtol=1e-5, atol=1e-6)
