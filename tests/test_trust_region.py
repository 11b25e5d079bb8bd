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


def penalty_update(algo: str, learning_rate: float, max_kl: float, init_penalty: float):
    """One real dual / ppo_kl update on a fixed categorical batch -> (new multiplier, the
    KL(new || old) of the update recomputed in numpy from the old and new parameters)."""
    import jax

    from tests.test_natural import fixed_batch, softmax_np
    from vecpg.algos import penalty
    from vecpg.models.networks import AgentParams, init_agent_params

    agent, actor, batch = fixed_batch(True)
    full = init_agent_params(agent, jax.random.key(11))
    params = AgentParams(actor, full.critic, full.obs_stats)
    cfg = vecpg.TrainConfig(algo=algo, max_kl=max_kl, init_penalty=init_penalty, dual_lr=0.5,
                            num_envs=16, num_steps=16, anneal_lr=False)  # fmt: skip
    static = cfg.static()
    hp = cfg.hparams().replace(learning_rate=learning_rate)  # 0: the policy cannot move
    rule = penalty.dual_ascent if algo == "dual" else penalty.adaptive_beta
    state = penalty.init(static, agent, params, hp)
    new, state, _ = penalty.update(
        static, agent, jax.random.key(1), params, state, batch, hp, adapt=rule
    )
    p = softmax_np(np.asarray(agent.actor.apply(new.actor, batch.obs), np.float64))
    q = softmax_np(np.asarray(agent.actor.apply(actor, batch.obs), np.float64))
    return float(state.penalty), float(np.mean(np.sum(p * np.log(p / q), -1)))


def test_dual_variable_moves_with_a_kl_we_control():
    """lr 0: the policy cannot move, KL = 0 < eps, so lambda falls by dual_lr * eps (and
    stops at 0); a big step with a tiny eps: KL > eps, so lambda rises by dual_lr (KL -
    eps), KL recomputed in numpy."""
    lam, kl = penalty_update("dual", 0.0, 0.01, 0.3)
    assert kl == 0.0 and lam == pytest.approx(0.3 - 0.5 * 0.01)
    lam, kl = penalty_update("dual", 0.0, 0.01, 0.001)
    assert lam == 0.0  # never below 0
    lam, kl = penalty_update("dual", 0.05, 1e-6, 0.3)
    assert kl > 1e-3 and lam == pytest.approx(0.3 + 0.5 * (kl - 1e-6), rel=1e-3)


def test_ppo_kl_beta_halves_and_doubles_with_a_kl_we_control():
    beta, kl = penalty_update("ppo_kl", 0.0, 0.01, 1.0)
    assert kl == 0.0 and beta == 0.5  # KL < d_targ / 1.5
    beta, kl = penalty_update("ppo_kl", 0.05, 1e-6, 1.0)
    assert kl > 1.5e-6 and beta == 2.0  # KL > 1.5 d_targ
    beta, kl = penalty_update("ppo_kl", 0.0, 0.01, BETA_RANGE[0])
    assert beta == pytest.approx(BETA_RANGE[0], rel=1e-6)  # halving stops at the floor


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
