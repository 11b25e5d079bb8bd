"""`vecpg eval` against `load_policy` driven by hand; `vecpg render` for brax (HTML
holding the trajectory) and gymnax (GIF, or a clear message without pygame)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import zlib

import jax
import numpy as np
import pytest

import vecpg
from tests.conftest import FAST_COMPILE_CONFIG
from vecpg.analysis.evaluate import episode_keys, evaluate
from vecpg.cli import main
from vecpg.envs import make_env

# Pendulum: continuous returns (no ties at a cap), 200 steps, cheap to compile.
PENDULUM = vecpg.TrainConfig(
    env="gymnax/Pendulum-v1", num_envs=4, num_steps=16, total_steps=320, hidden=(16,)
)


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "pendulum"
    vecpg.train(PENDULUM, seeds=[3, 5], run_dir=run_dir)
    return run_dir


def returns_by_hand(run_dir, seed: int, keys) -> list[float]:
    policy = vecpg.load_policy(run_dir, seed=seed)
    env = make_env(PENDULUM.env)
    step = jax.jit(env.step)
    out = []
    for key in keys:
        s = env.reset(key)
        total = 0.0
        for _ in range(env.spec.max_episode_steps):
            s = step(s.state, policy(np.asarray(s.obs)))
            total += float(s.reward)
            if bool(s.terminated):
                break
        out.append(total)
    return out


def test_eval_matches_load_policy_by_hand(pendulum_run, capsys):
    res = evaluate(pendulum_run, episodes=3, seed=11)
    assert res.deterministic.shape == res.stochastic.shape == (2, 3)
    keys = episode_keys(11, 3)
    for i, seed in enumerate(res.seeds):
        np.testing.assert_allclose(
            res.deterministic[i], returns_by_hand(pendulum_run, seed, keys), rtol=1e-4
        )
    assert np.all(res.deterministic_length == 200)  # Pendulum only truncates
    assert not np.allclose(res.deterministic, res.stochastic)  # sampling does act
    assert len(set(np.round(res.deterministic.ravel(), 3))) == 6  # distinct episodes
    assert main(["eval", str(pendulum_run), "--episodes", "3", "--seed", "11"]) == 0
    out = capsys.readouterr().out
    assert f"{res.deterministic[0].mean():.2f}" in out and "mean over seeds" in out


def test_eval_rejects_bad_episodes(pendulum_run, capsys):
    assert main(["eval", str(pendulum_run), "--episodes", "0"]) == 2
    assert "invalid episodes=0: must be an integer >= 1" in capsys.readouterr().err


def test_render_gymnax_gif_or_clear_message(pendulum_run, tmp_path, capsys):
    out = tmp_path / "pendulum.gif"
    code = main(["render", str(pendulum_run), "--seed", "5", "--out", str(out)])
    if importlib.util.find_spec("pygame") is None:
        assert code == 2
        err = capsys.readouterr().err
        assert "invalid env='gymnax/Pendulum-v1'" in err and "pygame" in err
        assert not out.exists()
    else:
        assert code == 0 and out.read_bytes()[:3] == b"GIF"


def test_render_brax_html_holds_the_trajectory(tmp_path):
    cfg = vecpg.TrainConfig(
        env="brax/inverted_pendulum", num_envs=2, num_steps=8, total_steps=16, hidden=(8,),
        **FAST_COMPILE_CONFIG,
    )  # fmt: skip
    run_dir = tmp_path / "ip"
    vecpg.train(cfg, seeds=[0], run_dir=run_dir)
    html_file = tmp_path / "rollout.html"
    assert main(["render", str(run_dir), "--seed", "0", "--out", str(html_file)]) == 0
    html = html_file.read_text()
    blob = re.search(r'var system = "([A-Za-z0-9+/=]+)"', html).group(1)
    system = json.loads(zlib.decompress(base64.b64decode(blob)))
    frames = system["states"]["x"]
    # An untrained policy drops the pole early: one frame per step until termination.
    length = int(evaluate(run_dir, episodes=1, seed=0).deterministic_length[0, 0])
    assert len(frames) == length and 1 <= length < 1000
    pos = np.array([f["pos"] for f in frames])  # [T, bodies, 3]
    assert np.all(np.isfinite(pos)) and np.ptp(pos[:, :, 0]) > 0  # the cart moves
