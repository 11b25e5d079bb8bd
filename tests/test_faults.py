"""What vecpg promises when things go wrong, driven through the CLI as a user would:
the exit code, the one line, and that nothing the user owned was touched or lost.
(README: "What vecpg promises when things go wrong".)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vecpg
from tests.conftest import FAST_COMPILE, FAST_COMPILE_CONFIG

TINY = ["--num-envs", "4", "--num-steps", "16", "--total-steps", "640", "--hidden", "8",
        "--seeds", "2", "--no-progress", *FAST_COMPILE]  # fmt: skip
LONG = ["--num-envs", "4", "--num-steps", "32", "--total-steps", "3000000", "--hidden", "8",
        "--seeds", "2", "--log-every", "5", *FAST_COMPILE]  # fmt: skip


def vecpg_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vecpg.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single `vecpg: error:` line of a failed command (and no traceback)."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vecpg: error: "), proc.stderr
    return lines[0]


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("faults") / "run"
    vecpg.train(vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(8,),
                                  **FAST_COMPILE_CONFIG),
                seeds=2, run_dir=run, checkpoint_every=20)  # fmt: skip
    return run


@contextlib.contextmanager
def small_filesystem(path: Path, size: str, read_only: bool = False):
    """A tmpfs of `size` at `path` (root only; the test is skipped where mount fails)."""
    path.mkdir(parents=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- data loss ---------------------------------------------------------------------------
def test_overwrite_refuses_a_directory_that_is_not_a_vecpg_run(tmp_path):
    thesis = tmp_path / "thesis"
    (thesis / "data").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\chapter{Results}")
    (thesis / "data" / "x.csv").write_text("1,2")
    before = snapshot(thesis)
    line = one_error_line(vecpg_cli("train", "--out", "thesis", "--overwrite", cwd=tmp_path))
    assert "not a vecpg run dir" in line and "nothing was touched" in line
    assert snapshot(thesis) == before


def test_overwrite_never_replaces_the_current_directory(tmp_path, finished_run):
    here = tmp_path / "here"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    (here / ".vecpg-run").write_text("even with a marker")
    line = one_error_line(vecpg_cli("train", "--out", ".", "--overwrite", cwd=here))
    assert "never replaces the current directory" in line
    assert (here / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_vecpg_run_whole(tmp_path, finished_run):
    run = tmp_path / "old"
    vecpg.train(vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(8,),
                                  **FAST_COMPILE_CONFIG),
                seeds=1, run_dir=run)  # fmt: skip
    (run / "stale.txt").write_text("from the old run")
    proc = vecpg_cli("sweep", *TINY, "--grid", "lr=1e-3,3e-4", "--out", "old", "--overwrite",
                     "--checkpoint-every", "0", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in run.iterdir()}
    assert "stale.txt" not in names and "params.msgpack" not in names  # replaced whole
    assert {"grid.json", "ranking.png", "summary.json"} <= names
    line = one_error_line(vecpg_cli("eval", "old", cwd=tmp_path))
    assert "is a sweep dir" in line  # no stale policy is scored


def sigint_after_progress(args: list[str], cwd: Path, second: bool = False):
    """Start a CLI run, press Ctrl-C once progress shows (twice with `second`); return
    (exit code, output after the Ctrl-C, seconds from Ctrl-C to exit)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen([sys.executable, "-m", "vecpg.cli", *args], cwd=cwd, env=env, **pipes)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("steps "):
            break
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    if second:
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    return proc.returncode, out, time.time() - t0


def test_ctrl_c_without_checkpoints_stops_at_once(tmp_path):
    args = ["train", *LONG, "--checkpoint-every", "0", "--out", "r"]
    code, out, seconds = sigint_after_progress(args, tmp_path)
    assert code == 130 and seconds < 20, out
    assert "Traceback" not in out
    assert "stopped before any checkpoint; nothing trained was kept" in out
    assert "vecpg train --resume r" in out


def test_ctrl_c_in_a_sweep_keeps_the_last_checkpoint(tmp_path):
    args = ["sweep", *LONG, "--grid", "lr=1e-3,3e-4", "--checkpoint-every", "20", "--out", "s"]
    code, out, seconds = sigint_after_progress(args, tmp_path)
    assert code == 130 and seconds < 20, out
    assert "kept the checkpoint of iteration" in out and "vecpg sweep --resume s" in out
    assert not (tmp_path / "s" / "summary.json").exists()


def test_second_ctrl_c_aborts_at_once(tmp_path):
    args = ["train", *LONG, "--checkpoint-every", "0", "--out", "r"]
    code, out, seconds = sigint_after_progress(args, tmp_path, second=True)
    assert code == 130 and seconds < 20, out
    assert "Traceback" not in out


def test_ctrl_c_in_the_python_api_raises_training_interrupted(tmp_path):
    code = (
        "import vecpg\n"
        "cfg = vecpg.TrainConfig(num_envs=4, num_steps=32, total_steps=3_000_000, hidden=(8,),"
        " log_every=5, cpu_opt_level=0, cpu_fusion_emitters=False)\n"
        "try:\n"
        "    vecpg.train(cfg, seeds=2, progress=True)\n"
        "except vecpg.TrainingInterrupted as e:\n"
        "    print('interrupted, kept', e.iteration)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, **pipes)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("steps "):
            break
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0 and "interrupted, kept 0" in out, out


# --- failures found late -----------------------------------------------------------------
def test_out_under_a_file_fails_before_compiling(tmp_path):
    (tmp_path / "afile").write_text("x")
    for command in (["train", *TINY], ["sweep", *TINY, "--grid", "lr=1e-3"]):
        proc = vecpg_cli(*command, "--out", "afile/run", cwd=tmp_path)
        assert "is a file, not a directory" in one_error_line(proc)
        assert "compiling" not in proc.stdout
    assert (tmp_path / "afile").read_text() == "x"


def test_read_only_filesystem_fails_before_compiling(tmp_path):
    with small_filesystem(tmp_path / "ro", "1m", read_only=True):
        proc = vecpg_cli("sweep", *TINY, "--grid", "lr=1e-3", "--out", "ro/s", cwd=tmp_path)
        assert "cannot write there (Read-only file system)" in one_error_line(proc)
        assert "compiling" not in proc.stdout


@pytest.mark.parametrize("size", ["192k", "232k"])
def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, size):
    """Filesystems sized so that the second checkpoint (192k) or the final save (232k)
    runs out of space (a checkpoint step of this run is about 125k). Smaller sizes left
    too little room for the first checkpoint in some whole-suite runs (136k failed once
    in two; 160k once, with the xdist workers writing at the same time)."""
    with small_filesystem(tmp_path / "small", size):
        proc = vecpg_cli("train", *TINY, "--checkpoint-every", "5", "--out", "small/r",
                         cwd=tmp_path)  # fmt: skip
        if proc.returncode == 0:
            pytest.skip(f"{size} was enough on this machine")
        line = one_error_line(proc, code=1)
        assert "vecpg: error: disk full while writing " in line, line
        run = tmp_path / "small" / "r"
        assert not (run / "summary.json").exists()  # it does not look finished
        assert (run / "checkpoints" / "5").is_dir()
        if "checkpoints" in line:
            assert line.endswith("the checkpoint of iteration 5 is kept")


def test_zero_size_state_leaves_checkpoint_and_restore(tmp_path):
    """The mjx backend's state holds zero-size arrays, which orbax refuses to write."""
    import jax

    from vecpg.training.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path / "ck")
    host = [np.arange(3.0, dtype=np.float32), np.zeros((2, 0), np.float32), np.zeros((0,), np.int8)]
    leaves = [jax.device_put(x) for x in host]
    store.save(5, leaves, {"r": np.ones((2, 5))})
    restored = CheckpointStore(tmp_path / "ck").restore(leaves)
    assert restored is not None
    step, got, metrics = restored
    assert step == 5 and [x.shape for x in got] == [(3,), (2, 0), (0,)]
    assert [x.dtype for x in got] == [np.float32, np.float32, np.int8]
    np.testing.assert_array_equal(got[0], host[0])
    np.testing.assert_array_equal(metrics["r"], np.ones((2, 5)))


# --- oversize ----------------------------------------------------------------------------
def test_huge_run_is_refused_with_the_estimate(tmp_path):
    proc = vecpg_cli("train", "--seeds", "100000", "--total-steps", "50000000", "--out", "big",
                     cwd=tmp_path, timeout=120)  # fmt: skip
    line = one_error_line(proc)
    assert "need about" in line and "GiB of host memory" in line and "usable" in line
    assert not (tmp_path / "big").exists()


def test_runs_too_big_for_one_call_are_chunked():
    from vecpg.run.memory import LaneBytes, fit_lanes

    gib = 2**30
    chunk, note = fit_lanes(LaneBytes(gib // 10, 1000), 100, None, 4 * gib, 4 * gib)
    assert chunk == 28 and note is not None and "--max-runs-per-call 28" in note
    assert fit_lanes(LaneBytes(1000, 10), 100, None, gib, gib) == (None, None)
    with pytest.raises(vecpg.ConfigError, match="one run needs about"):
        fit_lanes(LaneBytes(8 * gib, 10), 1, None, gib, gib)


# --- one line instead of a traceback -----------------------------------------------------
def broken_copies(finished_run: Path, root: Path) -> dict[str, Path]:
    import shutil

    cases = {}
    for name in ("no_summary", "cut_metrics", "random_metrics", "cut_params", "bad_config"):
        d = root / name
        shutil.copytree(finished_run, d)
        cases[name] = d
    (cases["no_summary"] / "summary.json").unlink()
    metrics = cases["cut_metrics"] / "metrics.npz"
    metrics.write_bytes(metrics.read_bytes()[:100])
    (cases["random_metrics"] / "metrics.npz").write_bytes(os.urandom(4000))
    params = cases["cut_params"] / "params.msgpack"
    params.write_bytes(params.read_bytes()[:50])
    config = json.loads((cases["bad_config"] / "config.json").read_text())
    (cases["bad_config"] / "config.json").write_text(json.dumps({**config, "gamma": 7}))
    (root / "empty").mkdir()
    (root / "plain").mkdir()
    (root / "plain" / "a.txt").write_text("x")
    (root / "afile").write_text("x")
    return cases


EXPECTED = {
    "missing": "no such directory",
    "afile": "is a file, not a run directory",
    "empty": "not a vecpg run dir (no config.json)",
    "plain": "not a vecpg run dir (no config.json)",
    "no_summary": "the run did not finish (no summary.json); continue it with: vecpg train",
    "cut_metrics": "metrics.npz is corrupt or truncated",
    "random_metrics": "metrics.npz is corrupt or truncated",
    "cut_params": "params.msgpack is corrupt or truncated",
    "bad_config": "config.json is invalid (invalid gamma=7: must be in (0, 1])",
}


def test_eval_and_render_on_broken_run_dirs_say_one_line(
    tmp_path, finished_run, capsys, monkeypatch
):
    """In process (`main`, as the `vecpg` command calls it: a traceback would fail the
    test), so the 18 cases do not pay 18 interpreter and JAX start-ups; the subprocess
    path is the same function (tested by the other cases of this file)."""
    from vecpg.cli import main

    broken_copies(finished_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    for name, message in EXPECTED.items():
        for command in (["eval", name], ["render", name, "--out", "x.gif"]):
            assert main(command) == 2, command
            captured = capsys.readouterr()
            lines = [ln for ln in captured.err.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("vecpg: error: "), captured.err
            assert message in lines[0], (command, lines[0])
            assert "allow_pickle" not in lines[0]


def test_resume_with_corrupt_checkpoint_or_edited_config_says_one_line(tmp_path, finished_run):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()  # as if killed before the end
    corrupted = [f for f in (run / "checkpoints" / "10").rglob("*") if f.is_file()]
    assert corrupted
    for f in corrupted:
        f.write_bytes(b"garbage")
    line = one_error_line(vecpg_cli("train", "--resume", "r", cwd=tmp_path))
    assert "checkpoints/10 cannot be read" in line
    shutil.rmtree(run)
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "hidden": [16]}))
    line = one_error_line(vecpg_cli("train", "--resume", "r", cwd=tmp_path))
    assert "does not match this run's config.json" in line


def test_compare_out_naming_a_file(tmp_path, finished_run):
    (tmp_path / "report").write_text("mine")
    line = one_error_line(vecpg_cli("compare", str(finished_run), "--out", "report",
                                    cwd=tmp_path))  # fmt: skip
    assert "invalid out='report': exists and is not a directory" in line
    assert (tmp_path / "report").read_text() == "mine"


# --- validation and honesty --------------------------------------------------------------
def test_validation_gaps_are_one_line(tmp_path):
    line = one_error_line(vecpg_cli("sweep", "--grid", "lr=1e-3", "--grid", "lr=3e-4",
                                    cwd=tmp_path))  # fmt: skip
    assert "learning_rate is given twice" in line
    line = one_error_line(vecpg_cli("train", "--seeds", "0", cwd=tmp_path))
    assert line == "vecpg: error: invalid seeds=0: must be an integer >= 1"
    with pytest.raises(vecpg.ConfigError, match="invalid seeds='3'"):
        vecpg.train(vecpg.TrainConfig(), seeds="3")  # type: ignore[arg-type]


def test_finished_resume_and_summary_json_are_honest(tmp_path, finished_run):
    proc = vecpg_cli("train", "--resume", str(finished_run), cwd=tmp_path)
    assert proc.returncode == 0 and "already finished; nothing to resume" in proc.stdout
    assert "wrote" not in proc.stdout
    from vecpg.run.files import dumps

    text = dumps({"run_s": float("inf"), "x": [float("nan"), 1.0]})
    assert json.loads(text) == {"run_s": None, "x": [None, 1.0]}
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["iterations_timed"] == 10 and summary["num_devices"] >= 1


def test_help_and_parse_errors_point_to_the_subcommand(tmp_path):
    proc = vecpg_cli("train", "--help", cwd=tmp_path)
    out_help = [ln for ln in proc.stdout.splitlines() if "--out" in ln][0]
    assert "(default: runs/<algo>-<env>-<time>)" in out_help and "None)" not in out_help
    flags = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("│ --")]
    assert flags.index("--algo") < flags.index("--wandb")
    proc = vecpg_cli("train", "--no-such-flag", cwd=tmp_path)
    assert proc.returncode == 2 and "vecpg train --help" in proc.stderr


def test_mjx_backend_checkpoints_and_resumes_exactly(tmp_path):
    """brax's mjx backend keeps zero-size arrays in its state (orbax refused them)."""
    import shutil

    cfg = vecpg.TrainConfig(env="brax/inverted_pendulum", backend="mjx", num_envs=4,
                            num_steps=16, total_steps=256, hidden=(8,),
                            **FAST_COMPILE_CONFIG)  # fmt: skip
    run = tmp_path / "mjx"
    full = vecpg.train(cfg, seeds=1, run_dir=run, checkpoint_every=2)
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "4")  # resume from iteration 2
    resumed = vecpg.resume(run)
    for k, v in full.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[k], v, err_msg=k)
