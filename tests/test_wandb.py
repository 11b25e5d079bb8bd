"""W&B: offline runs hold the training curves (read back from the run files and compared
with metrics.npz); a missing key, an unreachable host or a failing W&B never stops
training."""

from __future__ import annotations

import numpy as np
import pytest

import vecpg
from tests.wandb_files import offline_runs
from vecpg.run.tracking import WandbOptions

# log_every 3 with chunks of 4: the host buffers straddle chunk boundaries.
TINY = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(16,), log_every=3)
FINAL_FILES = ("config.json", "metrics.npz", "summary.json", "params.msgpack", "curves.png")


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc credentials
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def assert_complete(run_dir) -> None:
    for name in FINAL_FILES:
        assert (run_dir / name).stat().st_size > 0, name


def test_offline_history_matches_metrics(tmp_path, no_wandb_env):
    run_dir = tmp_path / "exp"
    opts = WandbOptions("offline", project="p", tags=("t1",))
    res = vecpg.train(TINY, seeds=[0, 1, 2], run_dir=run_dir, checkpoint_every=4, wandb=opts)
    metrics = np.load(run_dir / "metrics.npz")
    runs = offline_runs(run_dir / "wandb")
    assert sorted(runs) == ["exp-aggregate", "seed0", "seed1", "seed2"]
    for i, seed in enumerate(res.seeds):
        run = runs[f"seed{seed}"]
        assert run["group"] == "exp"
        assert run["config"]["seed"] == seed and run["config"]["algo"] == "ppo"
        assert run["config"]["total_steps"] == TINY.total_steps
        history = run["history"]
        assert len(history) == TINY.num_iterations  # every iteration, in order
        for key in ("env_steps", "episode_return", "kl_new_old", "policy_loss", "value_loss"):
            logged = np.array([row[key] for row in history], np.float32)
            np.testing.assert_array_equal(logged, metrics[key][i], err_msg=key)
    agg = [row for row in runs["exp-aggregate"]["history"] if "return_mean" in row]
    assert len(agg) == TINY.num_iterations
    np.testing.assert_allclose(
        [row["return_mean"] for row in agg], metrics["episode_return"].mean(0), rtol=1e-5
    )
    assert all(
        row["return_ci95_low"] <= row["return_mean"] <= row["return_ci95_high"] for row in agg
    )
    assert any("curves/path" in row for row in runs["exp-aggregate"]["history"])


def test_online_without_key_falls_back_offline(tmp_path, no_wandb_env, capsys):
    run_dir = tmp_path / "nokey"
    vecpg.train(TINY, seeds=2, run_dir=run_dir, wandb=WandbOptions("online"))
    out = capsys.readouterr().out
    assert "no W&B API key" in out and "offline" in out
    assert_complete(run_dir)
    assert len(offline_runs(run_dir / "wandb")["seed1"]["history"]) == TINY.num_iterations


def test_unreachable_host_falls_back_offline(tmp_path, no_wandb_env, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    run_dir = tmp_path / "nohost"
    vecpg.train(TINY, seeds=2, run_dir=run_dir, wandb=WandbOptions("online"))
    assert "W&B host http://127.0.0.1:9 unreachable" in capsys.readouterr().out
    assert_complete(run_dir)


def test_wandb_failing_mid_run_does_not_stop_training(tmp_path, no_wandb_env, capsys):
    import wandb.sdk.wandb_run

    calls = {"n": 0}
    real_log = wandb.sdk.wandb_run.Run.log

    def flaky_log(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise ConnectionError("service went away")
        return real_log(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wandb.sdk.wandb_run.Run, "log", flaky_log)
        res = vecpg.train(TINY, seeds=2, run_dir=tmp_path / "flaky", wandb=WandbOptions("offline"))
    assert "W&B logging stopped (ConnectionError: service went away)" in capsys.readouterr().out
    assert_complete(tmp_path / "flaky")
    assert res.metrics["kl_new_old"].shape == (2, TINY.num_iterations)
    assert calls["n"] > 5


def test_bad_wandb_mode_is_one_line(capsys):
    from vecpg.cli import main

    assert main(["train", "--wandb", "cloud"]) == 2
    assert "invalid wandb='cloud': allowed: disabled, offline, online" in capsys.readouterr().err


def test_sweep_logs_one_run_per_point_and_seed(tmp_path, no_wandb_env):
    out = tmp_path / "sw"
    res = vecpg.sweep(
        TINY, {"learning_rate": [1e-3, 3e-4]}, seeds=2, out=out, wandb=WandbOptions("offline")
    )
    runs = offline_runs(out / "wandb")
    names = {f"learning_rate={lr:g}-seed{s}" for lr in (1e-3, 3e-4) for s in (0, 1)}
    assert set(runs) == names | {"sw-aggregate-0", "sw-aggregate-1"}
    run = runs["learning_rate=0.0003-seed1"]
    assert run["config"]["learning_rate"] == pytest.approx(3e-4) and run["config"]["seed"] == 1
    logged = np.array([row["episode_return"] for row in run["history"]], np.float32)
    np.testing.assert_array_equal(logged, res.metrics["episode_return"][1, 1])
    assert (out / "ranking.md").exists()


def test_render_html_is_logged_as_wandb_html(tmp_path, no_wandb_env):
    from vecpg.run.tracking import log_html

    page = tmp_path / "rollout.html"
    page.write_text("<html><body>trajectory</body></html>")
    log_html(WandbOptions("offline", group="g"), tmp_path, "render-seed0", page)
    run = offline_runs(tmp_path / "wandb")["render-seed0"]
    assert run["group"] == "g"
    assert run["history"][0]["rollout/_type"] == "html-file"
