"""MuJoCo Playground as an env source: the DM Control suite through the same protocol and
wrappers, clear one-line failures offline and without the extra, eval/load_policy
unchanged, and PPO learning CartpoleBalance."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vecpg
from tests.conftest import FAST_COMPILE_CONFIG
from vecpg.analysis.evaluate import episode_keys, evaluate
from vecpg.cli import main
from vecpg.envs import make_env, reset_episode, step_episode

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mujoco_playground") is None, reason="needs vecpg[playground]"
)
CARTPOLE = "playground/CartpoleBalance"
TINY = vecpg.TrainConfig(env=CARTPOLE, num_envs=4, num_steps=16, total_steps=320, hidden=(16,),
                         **FAST_COMPILE_CONFIG)  # fmt: skip


def test_cartpole_balance_follows_the_protocol_and_truncates_at_1000():
    env = make_env(CARTPOLE)
    assert env.spec.obs_shape == (5,) and env.spec.num_actions == 1
    assert not env.spec.discrete and (env.spec.action_low, env.spec.action_high) == (-1.0, 1.0)
    assert env.spec.max_episode_steps == 1000

    def run(key):
        def body(state, _):
            out = step_episode(env, state, jnp.zeros(1))
            return out.state, (out.terminated, out.truncated, out.reward)

        return jax.lax.scan(body, reset_episode(env, key), None, length=1000)[1]

    terminated, truncated, reward = jax.jit(run)(jax.random.key(0))
    assert not np.asarray(terminated).any()  # DM Control tasks only end by the time limit
    assert np.flatnonzero(np.asarray(truncated)).tolist() == [999]
    assert np.all((np.asarray(reward) >= 0) & (np.asarray(reward) <= 1))


def test_robot_tasks_offline_fail_in_one_line(monkeypatch, tmp_path):
    from mujoco_playground._src import mjx_env

    if mjx_env.MENAGERIE_PATH.exists():
        pytest.skip("the Menagerie is installed here")
    monkeypatch.delenv("VECPG_MENAGERIE_PATH", raising=False)
    with pytest.raises(vecpg.ConfigError) as e:
        make_env("playground/Go1JoystickFlatTerrain")
    message = str(e.value)
    assert "\n" not in message and "MuJoCo Menagerie" in message
    assert "VECPG_MENAGERIE_PATH" in message and "mujoco_menagerie" in message
    assert not mjx_env.MENAGERIE_PATH.exists()  # nothing cloned, nothing half-written


def test_without_the_extra_one_line_names_it(monkeypatch):
    from vecpg.envs import playground_env

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mujoco_playground" else real(n)
    )
    with pytest.raises(vecpg.ConfigError, match=r"pip install 'vecpg\[playground\]'"):
        playground_env.require_playground(CARTPOLE)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pg") / "cartpole"
    vecpg.train(TINY, seeds=[1, 2], run_dir=run_dir)
    return run_dir


def test_eval_equals_load_policy_driven_by_hand(cartpole_run):
    res = evaluate(cartpole_run, episodes=1, seed=3)
    env = make_env(CARTPOLE)
    step = jax.jit(env.step)
    for i, seed in enumerate(res.seeds):
        policy = vecpg.load_policy(cartpole_run, seed=seed)
        s = env.reset(episode_keys(3, 1)[0])
        total = 0.0
        for _ in range(env.spec.max_episode_steps):
            s = step(s.state, policy(np.asarray(s.obs)))
            total += float(s.reward)
        np.testing.assert_allclose(res.deterministic[i, 0], total, rtol=1e-3)
    assert np.all(res.deterministic_length == 1000)


def test_render_writes_a_gif_or_says_why_not(cartpole_run, tmp_path, capsys):
    out = tmp_path / "cartpole.gif"
    code = main(["render", str(cartpole_run), "--seed", "1", "--out", str(out)])
    if code == 0:
        assert out.read_bytes()[:3] == b"GIF"
    else:
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert "MuJoCo could not open an OpenGL context" in err and "MUJOCO_GL" in err
        assert not out.exists()


def test_envs_lists_playground_spaces(capsys):
    assert main(["envs", "--source", "playground"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if "playground/CheetahRun" in ln)
    assert "Box(17,)" in row and "(6,)" in row and "1000" in row
    assert "needs the Menagerie" in next(ln for ln in out.splitlines() if "Go1Getup" in ln)


# PPO on CartpoleBalance, 1M steps per seed, 4 seeds: mean final return >= 700 (of 1000).
# learning_rate 1e-3: a sweep of lr x gamma (experiments/results/playground.md) put it first.
CARTPOLE_PPO = vecpg.TrainConfig(
    env=CARTPOLE,
    num_envs=16,
    num_steps=128,
    total_steps=1_000_000,
    learning_rate=1e-3,
    log_every=50,
)


@pytest.mark.slow
def test_ppo_learns_cartpole_balance():
    res = vecpg.train(CARTPOLE_PPO, seeds=4)
    assert res.final_returns().mean() >= 700, res.final_returns()


def test_warp_impl_is_refused_in_one_line():
    with pytest.raises(vecpg.ConfigError, match="invalid playground_impl='warp'") as e:
        make_env(CARTPOLE, playground_impl="warp")
    assert "\n" not in str(e.value) and "--playground-impl jax" in str(e.value)
