"""The trainer against exact values on a finite MDP (vecpg.tabular via TabularEnv)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vecpg
from vecpg import tabular as tb
from vecpg.envs import make_env
from vecpg.models.networks import make_agent, policy_dist


def exact_return_of_trained_policy(res, seed_index):
    env = make_env("tabular/gridworld")
    agent = make_agent(env.spec, res.config.hidden, res.config.activation)
    params = jax.tree.map(lambda x: jnp.asarray(x[seed_index]), res.params)
    obs = jnp.eye(env.spec.obs_shape[0])
    pi = jax.nn.softmax(
        policy_dist(agent, params, obs, normalize_obs=res.config.normalize_obs), axis=-1
    )
    return float(tb.objective(env.mdp, pi.astype(env.mdp.P.dtype))), env.mdp


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["npg", "trpo"])
def test_natural_methods_reach_the_exact_optimum(algo):
    cfg = vecpg.TrainConfig(
        algo=algo,
        env="tabular/gridworld",
        gamma=0.9,
        num_envs=16,
        num_steps=32,
        total_steps=200_000,
        reward_scale=1.0,
        max_kl=0.02,
        hidden=(32,),
    )
    res = vecpg.train(cfg, seeds=2)
    for i in range(2):
        j, mdp = exact_return_of_trained_policy(res, i)
        j_star = float(mdp.p0 @ tb.optimal_values(mdp))
        j_uniform = float(tb.objective(mdp, tb.policy(jnp.zeros(mdp.r.shape))))
        # stated tolerance: within 5% of the gap between the uniform policy and optimum
        assert j >= j_star - 0.05 * (j_star - j_uniform), (algo, i, j, j_star, j_uniform)


def test_gae_lambda_one_with_true_values_is_unbiased_for_exact_advantages():
    """Sampled GAE(lambda=1) with the true V, averaged per (s0, a0), matches A^pi exactly
    within 4 standard errors."""
    from vecpg.training.advantages import gae

    with jax.enable_x64(True):
        mdp = tb.random_mdp(jax.random.key(0), 4, 2, 0.8)
        pi = tb.policy(jax.random.normal(jax.random.key(1), (4, 2)))
        V, A = tb.state_values(mdp, pi), tb.advantages(mdp, pi)
        n, T = 20_000, 40

        def episode(key):
            k0, k1, key = jax.random.split(key, 3)
            s0 = jax.random.choice(k0, 4, p=mdp.p0)

            def step(s, k):
                ka, ks = jax.random.split(k)
                a = jax.random.choice(ka, 2, p=pi[s])
                s_next = jax.random.choice(ks, 4, p=mdp.P[s, a])
                return s_next, (s, a, mdp.r[s, a], s_next)

            _, (s, a, r, s_next) = jax.lax.scan(step, s0, jax.random.split(key, T))
            adv = gae(r, V[s], V[s_next], jnp.full(T, mdp.gamma), jnp.ones(T))
            return s[0], a[0], adv[0]

        s0, a0, adv0 = jax.vmap(episode)(jax.random.split(jax.random.key(2), n))
        s0, a0, adv0 = map(np.asarray, (s0, a0, adv0))
        for s in range(4):
            for a in range(2):
                x = adv0[(s0 == s) & (a0 == a)]
                if len(x) < 200:
                    continue
                se = x.std() / np.sqrt(len(x))
                assert abs(x.mean() - float(A[s, a])) <= 4 * se + 1e-9, (s, a)


def test_sampled_fvp_converges_to_exact_fisher_like_one_over_sqrt_n():
    """The trainer's FVP on states drawn from d^pi converges to the exact F v."""
    from vecpg.algos.natural import flat_fvp
    from vecpg.models.distributions import Categorical

    with jax.enable_x64(True):
        mdp = tb.random_mdp(jax.random.key(3), 5, 3, 0.9)
        theta = jax.random.normal(jax.random.key(4), (5, 3))
        d = tb.discounted_visitation(mdp, tb.policy(theta))
        exact = tb.fisher(mdp, theta)
        v = jax.random.normal(jax.random.key(5), (15,))
        want = exact @ v
        errors = []
        sizes = (100, 1600, 25_600)
        for n in sizes:
            errs = []
            for rep in range(8):
                s = jax.random.choice(jax.random.key(100 * n + rep), 5, (n,), p=d)
                obs = jax.nn.one_hot(s, 5, dtype=theta.dtype)
                mv = flat_fvp(lambda th: obs @ th, Categorical.fisher_vp, theta, 0.0)
                errs.append(float(jnp.linalg.norm(mv(v) - want)))
            errors.append(np.sqrt(np.mean(np.square(errs))))
        ratios = np.array(errors[:-1]) / np.array(errors[1:])
        assert np.all((ratios > 2.5) & (ratios < 6.5)), ratios  # sqrt(16) = 4 per step
