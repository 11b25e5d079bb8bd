"""Shared fixtures. Compiled runs are cached per static config
(vecpg.training.execute.compiled_train), so tests that share a config share one compilation."""

from __future__ import annotations

import pytest

import vecpg
import vecpg.training.execute

# Tiny runs whose training takes no time compile about 3x faster at XLA CPU's LLVM level 0
# with its IR emitters (the CartPole demo's programs: 2.1-3.0 s against 6.9-7.6 s, 2026-12-01,
# 2-core AMD EPYC), and run slower: for tests of behaviour, not of learning or speed.
FAST_COMPILE = ["--cpu-opt-level", "0", "--no-cpu-fusion-emitters"]
FAST_COMPILE_CONFIG = dict(cpu_opt_level=0, cpu_fusion_emitters=False)

# PPO on CartPole: the README demo's settings, 4 seeds. Trained once per test session.
CARTPOLE_PPO = vecpg.TrainConfig(env="gymnax/CartPole-v1", algo="ppo", total_steps=500_000)


# brax inverted_pendulum (generalized backend, the default): PPO and TRPO must reach a
# mean final return >= 900 (of 1000) over 4 seeds within 150k steps.
BRAX_PENDULUM = dict(
    env="brax/inverted_pendulum",
    num_envs=16,
    num_steps=64,
    total_steps=150_000,
    learning_rate=3e-4,
)
PENDULUM_THRESHOLD = 900.0


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory):
    res = vecpg.train(CARTPOLE_PPO, seeds=4)
    run_dir = tmp_path_factory.mktemp("runs") / "cartpole"
    res.save(run_dir)
    return res, run_dir


@pytest.fixture
def no_compile(monkeypatch):
    """Any compilation fails the test: bad input must be refused before compiling."""

    def boom(*a, **k):
        raise AssertionError("compiled despite bad input")

    # the bench binds compiled_train by name when first imported: import it unpatched, or
    # a first import under this fixture would keep `boom` for the rest of the worker
    import vecpg.bench.runner  # noqa: F401

    monkeypatch.setattr(vecpg.training.execute, "compiled_train", boom)
    monkeypatch.setattr(vecpg.training.execute, "compiled_chunk", boom)
