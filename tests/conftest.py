"""Shared fixtures. Compiled runs are cached per static config (vecpg.api.compiled_train),
so tests that share a config share one compilation."""

from __future__ import annotations

import pytest

import vecpg

# PPO on CartPole: the README demo's settings, 4 seeds. Trained once per test session.
CARTPOLE_PPO = vecpg.TrainConfig(env="gymnax/CartPole-v1", algo="ppo", total_steps=500_000)


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory):
    res = vecpg.train(CARTPOLE_PPO, seeds=4)
    run_dir = tmp_path_factory.mktemp("runs") / "cartpole"
    res.save(run_dir)
    return res, run_dir
