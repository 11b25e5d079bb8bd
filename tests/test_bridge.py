"""The trainer against exact values on a finite MDP (vecpg.tabular via TabularEnv)."""

import jax
import jax.numpy as jnp
import pytest

import vecpg
from vecpg import tabular as tb
from vecpg.envs import make_env
from vecpg.networks import make_agent, policy_dist


def exact_return_of_trained_policy(res, seed_index):
    env = make_env("tabular/gridworld")
    agent = make_agent(env.spec, res.config.hidden, res.config.activation)
    params = jax.tree.map(lambda x: jnp.asarray(x[seed_index]), res.params)
    obs = jnp.eye(env.spec.obs_shape[0])
    pi = jax.nn.softmax(policy_dist(agent, params, obs, res.config.normalize_obs), axis=-1)
    return float(tb.objective(env.mdp, pi.astype(env.mdp.P.dtype))), env.mdp


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
