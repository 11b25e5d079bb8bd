"""Checkpoints: chunking is exact, SIGKILL then --resume equals an uninterrupted run,
SIGINT leaves a resumable checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vecpg
from tests.conftest import FAST_COMPILE, FAST_COMPILE_CONFIG
from vecpg.cli import main
from vecpg.errors import ConfigError

# Long enough (640 iterations, a few seconds) that a kill lands mid-run; compiled fast.
CKPT_ARGS = [
    "--num-envs", "4", "--num-steps", "32", "--total-steps", "81920", "--hidden", "16",
    "--seeds", "2", "--checkpoint-every", "20", "--log-every", "5", "--no-progress",
    *FAST_COMPILE,
]  # fmt: skip
CKPT_CONFIG = vecpg.TrainConfig(
    num_envs=4, num_steps=32, total_steps=81920, hidden=(16,), log_every=5, **FAST_COMPILE_CONFIG
)
TINY = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(16,), log_every=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ck") / "full"
    vecpg.train(CKPT_CONFIG, seeds=2, run_dir=run_dir, checkpoint_every=20)
    return np.load(run_dir / "metrics.npz")


def launch(run_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vecpg.cli", "train", *CKPT_ARGS, "--out", str(run_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < timeout, f"no {path} after {timeout}s"
        time.sleep(0.02)


def assert_same_metrics(a, run_dir: Path) -> None:
    b = np.load(run_dir / "metrics.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_chunk_size_does_not_change_results(tmp_path):
    a = vecpg.train(TINY, seeds=[0, 1], run_dir=tmp_path / "a", checkpoint_every=3)
    b = vecpg.train(TINY, seeds=[0, 1], run_dir=tmp_path / "b", checkpoint_every=7)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    assert a.metrics["kl_new_old"].shape == (2, TINY.num_iterations)
    # One compiled call (no chunks) fuses init and loop: equal up to float rounding.
    c = vecpg.train(TINY, seeds=[0, 1])
    for k in a.metrics:
        np.testing.assert_allclose(a.metrics[k], c.metrics[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # Only the last two checkpoints are kept; the final one is the whole run.
    steps = sorted(int(p.name) for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert steps == [9, TINY.num_iterations]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    run_dir = tmp_path / "killed"
    proc = launch(run_dir)
    wait_for(run_dir / "checkpoints" / "60", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()  # it really died mid-run
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert_same_metrics(uninterrupted, run_dir)
    loaded = vecpg.load(run_dir)
    assert loaded.seeds == [0, 1] and loaded.config == CKPT_CONFIG


def test_sigint_writes_checkpoint_and_says_how_to_resume(tmp_path, uninterrupted):
    run_dir = tmp_path / "interrupted"
    proc = launch(run_dir)
    wait_for(run_dir / "checkpoints" / "40", proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert f"Resume with: vecpg train --resume {run_dir}" in out
    assert not (run_dir / "summary.json").exists()
    steps = [int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    assert 40 <= max(steps) < CKPT_CONFIG.num_iterations
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert_same_metrics(uninterrupted, run_dir)


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "invalid resume=" in err and "not a checkpointed run dir" in err
    assert main(["train", "--resume", str(tmp_path), "--learning-rate", "0.1"]) == 2
    assert "cannot be combined with --resume" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="invalid checkpoint_every=-1"):
        vecpg.train(TINY, seeds=1, run_dir=tmp_path / "x", checkpoint_every=-1)
    with pytest.raises(ConfigError, match="checkpoints need a run_dir"):
        vecpg.train(TINY, seeds=1, checkpoint_every=5)
    assert not (tmp_path / "x").exists()


def test_resume_refuses_any_other_launch_flag(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--seeds", "3", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--seeds, --overwrite cannot be combined with --resume" in err
    assert err.count("\n") == 1


SWEEP_GRID = ["--grid", "lr=3e-4,1e-3"]


def test_sweep_sigkill_then_resume_equals_uninterrupted(tmp_path):
    full = vecpg.sweep(
        CKPT_CONFIG,
        {"learning_rate": [3e-4, 1e-3]},
        seeds=2,
        out=tmp_path / "full",
        checkpoint_every=20,
    )
    run_dir = tmp_path / "killed"
    args = [a for a in CKPT_ARGS if a != "--no-progress"] + ["--no-progress", *SWEEP_GRID]
    cmd = [sys.executable, "-m", "vecpg.cli", "sweep", *args, "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(run_dir / "checkpoints" / "60", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()
    assert main(["sweep", "--resume", str(run_dir), "--no-progress"]) == 0
    resumed = vecpg.load_sweep(run_dir)
    assert resumed.points == full.points and resumed.seeds == [0, 1]
    for k, v in full.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[k], v, err_msg=k)
    assert [r["learning_rate"] for r in resumed.ranking()] == [
        r["learning_rate"] for r in full.ranking()
    ]
    # A finished sweep resumes to itself without training again.
    again = vecpg.resume(run_dir)
    assert isinstance(again, vecpg.SweepResults) and again.run_s == resumed.run_s
