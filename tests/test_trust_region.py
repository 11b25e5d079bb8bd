"""The trust-region family on real runs: learning, KL guarantees, the dual variable, and
one compilation for a multi-seed run."""

import logging

import numpy as np
import pytest

import vecpg
from tests.conftest import BRAX_PENDULUM, PENDULUM_THRESHOLD
from vecpg.algos.penalty import BETA_RANGE

CARTPOLE = dict(env="gymnax/CartPole-v1", total_steps=500_000)


@pytest.fixture(scope="module")
def runs():
    return {}


def run(runs, algo):
    if algo not in runs:
        runs[algo] = vecpg.train(vecpg.TrainConfig(algo=algo, **CARTPOLE), seeds=4)
    return runs[algo]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["npg", "trpo", "dual", "ppo_kl"])
def test_solves_cartpole(runs, algo):
    res = run(runs, algo)
    assert res.metrics["env_steps"][0, -1] <= 500_000
    assert res.final_returns().mean() >= 475.0, res.final_returns()


def test_trpo_never_accepts_a_step_outside_the_trust_region(runs):
    res = run(runs, "trpo")
    m, delta = res.metrics, res.config.max_kl
    accepted = m["linesearch_accepted"] > 0
    assert accepted.mean() > 0.5  # it does take steps
    # every iteration of every seed: the constrained KL(old || new) is within delta
    kl = m["kl_old_new"]
    assert np.all(kl[accepted] <= delta * (1 + 1e-5)), kl[accepted].max()
    assert np.all(m["kl"][~accepted] <= 1e-7)  # rejected: theta kept
    assert np.all(m["surrogate_improvement"][accepted] > 0)
    assert np.all((m["linesearch_steps"] >= 1) & (m["linesearch_steps"] <= 10))
    for key in ("step_size", "gFg", "cg_residual", "predicted_improvement", "max_ratio"):
        assert np.all(np.isfinite(m[key])), key


def test_dual_variable_follows_the_constraint(runs):
    res = run(runs, "dual")
    lam = res.metrics["penalty"]  # lambda after each iteration's update
    kl = res.metrics["kl"]
    eps = res.config.max_kl
    prev = np.concatenate([np.full((lam.shape[0], 1), res.config.init_penalty), lam[:, :-1]], 1)
    above, below = kl > eps, kl < eps
    assert above.any() and below.any()
    assert np.all(lam[above] > prev[above])  # constraint violated: lambda rises
    assert np.all(lam[below] <= prev[below])  # satisfied: lambda falls ...
    assert np.all(lam >= 0)  # ... toward 0, never below
    np.testing.assert_allclose(
        lam, np.maximum(0, prev + res.config.dual_lr * (kl - eps)), rtol=1e-4, atol=1e-6
    )


def test_ppo_kl_beta_doubles_and_halves(runs):
    res = run(runs, "ppo_kl")
    beta, kl, d = res.metrics["penalty"], res.metrics["kl"], res.config.max_kl
    prev = np.concatenate([np.full((4, 1), res.config.init_penalty), beta[:, :-1]], 1)
    lo, hi = BETA_RANGE
    up, down = kl > 1.5 * d, kl < d / 1.5
    assert up.any() and down.any()
    np.testing.assert_allclose(beta[up], np.clip(2 * prev[up], lo, hi), rtol=1e-6)
    np.testing.assert_allclose(beta[down], np.clip(prev[down] / 2, lo, hi), rtol=1e-6)
    same = ~up & ~down
    np.testing.assert_allclose(beta[same], prev[same], rtol=1e-6)


@pytest.mark.slow
def test_trpo_learns_brax_inverted_pendulum():
    """Same documented threshold as PPO: mean final return >= 900 over 4 seeds. With a
    constant KL budget one seed of four reached 1000 and then random-walked back to 12
    (full-size steps along noise once g -> 0), so the budget is annealed here."""
    cfg = vecpg.TrainConfig(algo="trpo", anneal_kl=True, **BRAX_PENDULUM)
    res = vecpg.train(cfg, seeds=4)
    assert res.final_returns().mean() >= PENDULUM_THRESHOLD, res.final_returns()


def test_multi_seed_trpo_run_compiles_once(caplog):
    import jax

    cfg = vecpg.TrainConfig(algo="trpo", num_envs=4, num_steps=16, total_steps=320, hidden=(8,))
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            res = vecpg.train(cfg, seeds=3)
    finally:
        jax.config.update("jax_log_compiles", False)
    compiles = [
        r.getMessage()
        for r in caplog.records
        if "Compiling jit(whole_run_from_key_data)" in r.getMessage()
    ]
    assert len(compiles) == 1, compiles
    assert res.metrics["kl"].shape == (3, 5)
