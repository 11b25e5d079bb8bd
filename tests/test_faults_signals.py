"""Signals, several processes, resume and API misuse, driven as a user would (README:
"What vecpg promises when things go wrong"): the exit code, the one line, and that
nothing finished or owned by the user is lost.

Most signal tests press Ctrl-C (or send SIGTERM) from inside the run at a chosen chunk:
a small script wraps `compiled_chunk` so that the process signals itself just before
chunk N runs, then starts the CLI's own `entry()` (or `vecpg.train`). The signal still
takes the real path (the OS, vecpg's handlers, the main thread); only its timing is
exact, where a signal sent from outside would race a run of a few seconds."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vecpg
import vecpg.training.execute
from tests.conftest import FAST_COMPILE, FAST_COMPILE_CONFIG
from tests.test_faults import one_error_line, snapshot, vecpg_cli

ROOT = Path(__file__).parents[1]
# 100 iterations of 4 envs x 16 steps in chunks of 5: one compiled program for most tests.
MID = ["--num-envs", "4", "--num-steps", "16", "--total-steps", "6400", "--hidden", "8",
       "--seeds", "2", "--log-every", "5", *FAST_COMPILE]  # fmt: skip
MID_CONFIG = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=6400, hidden=(8,),
                               log_every=5, **FAST_COMPILE_CONFIG)  # fmt: skip
LONG = ["--num-envs", "4", "--num-steps", "32", "--total-steps", "3000000", "--hidden", "8",
        "--seeds", "2", "--log-every", "5", *FAST_COMPILE]  # fmt: skip

# Signals itself (SIG, from sys.argv[1]) just before compiled chunk number AT runs (0: in
# Results.save instead; "twice": a second time 0.3 s later; "inside": twice, from another
# thread, while the chunk computes), then runs `vecpg <argv[3:]>`, or
# `vecpg.train(MID_CONFIG)` when argv[3] is "api" (with "long": one chunk of 2000
# iterations, seconds long). Prints how many chunks ran when the process exits normally.
HOOK = r"""
import atexit, os, signal, sys, threading, time
import vecpg, vecpg.run.rundir, vecpg.training.execute as ex

SIG, AT = getattr(signal, sys.argv[1]), int(sys.argv[2])
FLAGS = {"twice", "inside", "long"} & set(sys.argv)
ran = [0]
real_chunk = ex.compiled_chunk

def press_twice():
    time.sleep(0.5)  # the chunk is computing by now
    os.kill(os.getpid(), SIG)
    time.sleep(0.3)
    os.kill(os.getpid(), SIG)

def compiled_chunk(*args, **kwargs):
    init, run = real_chunk(*args, **kwargs)

    def run_and_signal(*a):
        ran[0] += 1
        if ran[0] == AT and "inside" in FLAGS:
            threading.Thread(target=press_twice, daemon=True).start()
        elif ran[0] == AT:
            os.kill(os.getpid(), SIG)
            time.sleep(0.3)  # the main thread acknowledges it while this chunk runs
            if "twice" in FLAGS:
                os.kill(os.getpid(), SIG)
                time.sleep(0.3)
        return run(*a)

    return init, run_and_signal

ex.compiled_chunk = compiled_chunk
real_save = vecpg.run.rundir.Results.save

def save_and_signal(self, *a, **k):
    if AT == 0:
        os.kill(os.getpid(), SIG)
        time.sleep(0.3)
    return real_save(self, *a, **k)

vecpg.run.rundir.Results.save = save_and_signal
atexit.register(lambda: print(f"chunks run: {ran[0]}", flush=True))
if sys.argv[3] == "api":
    cfg = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=6400, hidden=(8,), log_every=5,
                            cpu_opt_level=0, cpu_fusion_emitters=False)
    if "long" in sys.argv:  # one chunk of 2000 iterations, seconds long
        cfg = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=128000, hidden=(8,),
                                log_every=2000)
    try:
        res = vecpg.train(cfg, seeds=2)
        print("returned", res.metrics["episode_return"].shape, flush=True)
    except (KeyboardInterrupt, vecpg.TrainingInterrupted) as e:
        print("caught", type(e).__name__, flush=True)
    print("exiting normally", flush=True)
else:
    sys.argv = ["vecpg", *[a for a in sys.argv[3:] if a not in FLAGS]]
    from vecpg.cli import entry
    entry()
"""


def hooked(sig: str, at: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", HOOK, sig, str(at), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def no_traceback(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "terminate called" not in out, out
    return out


# --- 1. a stop is honoured within log_every iterations, and never discards a finished run
def test_ctrl_c_in_the_last_chunk_keeps_the_finished_run(tmp_path):
    proc = hooked("SIGINT", 20, "train", *MID, "--no-progress", "--checkpoint-every", "0",
                  "--out", "r", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 0, out
    assert "vecpg: Ctrl-C: stopping within 5 iterations (no checkpoints to keep)" in out
    assert (
        "vecpg: Ctrl-C came during the last chunk, too late to stop it; training finished; "
        "nothing was discarded: the results are saved in r/"
    ) in out
    assert "nothing trained was kept" not in out and "chunks run: 20" in out
    assert (tmp_path / "r" / "summary.json").exists()
    assert np.load(tmp_path / "r" / "metrics.npz")["episode_return"].shape == (2, 100)


def test_ctrl_c_while_saving_lets_the_save_finish(tmp_path):
    proc = hooked("SIGINT", 0, "train", *MID, "--no-progress", "--checkpoint-every", "0",
                  "--out", "r", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 0, out
    assert "vecpg: Ctrl-C: training has finished; saving the results first" in out
    assert (
        "vecpg: Ctrl-C came after training finished; nothing was discarded: the results "
        "are saved in r/"
    ) in out
    assert (tmp_path / "r" / "summary.json").exists()
    assert vecpg.load(tmp_path / "r").metrics["episode_return"].shape == (2, 100)


def test_ctrl_c_without_progress_or_checkpoints_stops_within_log_every(tmp_path):
    """It used to run the whole run as one call and only then stop."""
    proc = hooked("SIGINT", 3, "train", *MID, "--no-progress", "--checkpoint-every", "0",
                  "--out", "r", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 130, out
    assert "vecpg: Ctrl-C: stopping within 5 iterations" in out
    assert "stopped before any checkpoint; nothing trained was kept" in out
    assert "chunks run: 3" in out  # the chunk running when Ctrl-C came, then no other
    assert not (tmp_path / "r" / "summary.json").exists()


def test_ctrl_c_in_vecpg_train_with_defaults_stops_within_log_every(tmp_path):
    proc = hooked("SIGINT", 3, "api", cwd=tmp_path)
    out = no_traceback(proc)
    assert proc.returncode == 0, out
    assert "vecpg: Ctrl-C: stopping within 5 iterations" in out
    assert "caught TrainingInterrupted" in out and "chunks run: 3" in out


def test_checkpoint_chunks_say_how_long_a_stop_takes(tmp_path):
    """Checkpoints every 2 and progress every 5: chunks of gcd = 1, and the line says so."""
    proc = hooked("SIGINT", 3, "train", *MID, "--no-progress", "--checkpoint-every", "2",
                  "--out", "r", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 130, out
    assert "vecpg: Ctrl-C: stopping within 1 iteration (the last checkpoint is kept)" in out
    assert "kept the checkpoint of iteration 2" in out and "chunks run: 3" in out


def test_stoppable_runs_equal_the_whole_run_program_bit_for_bit(monkeypatch):
    """vecpg.train on the main thread goes in chunks (a Ctrl-C can stop it); on another
    thread no signal can reach it and it is one compiled call (`compiled_train`)."""
    whole_runs = []
    run_whole = vecpg.training.execute._run_whole

    def counted(*args, **kwargs):
        whole_runs.append(1)
        return run_whole(*args, **kwargs)

    monkeypatch.setattr(vecpg.training.execute, "_run_whole", counted)
    chunked = vecpg.train(MID_CONFIG, seeds=2)
    assert whole_runs == []
    whole: list = []
    worker = threading.Thread(target=lambda: whole.append(vecpg.train(MID_CONFIG, seeds=2)))
    worker.start()
    worker.join()
    assert whole_runs == [1]
    for k, v in whole[0].metrics.items():
        np.testing.assert_array_equal(chunked.metrics[k], v, err_msg=k)


# --- 2. SIGTERM is a Ctrl-C -----------------------------------------------------------------
def signal_after_progress(args: list[str], cwd: Path, sig: int, second: bool = False):
    """Start a CLI run, send `sig` once progress shows (twice with `second`); return
    (exit code, output after the signal)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen([sys.executable, "-m", "vecpg.cli", *args], cwd=cwd, env=env, **pipes)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("steps "):
            break
    proc.send_signal(sig)
    if second:
        time.sleep(0.05)
        proc.send_signal(sig)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    return proc.returncode, out


def test_sigterm_stops_at_the_next_chunk_keeps_the_checkpoint_and_exits_143(tmp_path):
    args = ["train", *LONG, "--checkpoint-every", "5", "--out", "r"]
    code, out = signal_after_progress(args, tmp_path, signal.SIGTERM)
    assert code == 143, out
    assert "Traceback" not in out
    assert "vecpg: SIGTERM: stopping within 5 iterations (the last checkpoint is kept)" in out
    assert "vecpg: stopped; kept the checkpoint of iteration " in out
    assert "Resume with: vecpg train --resume r" in out
    assert not (tmp_path / "r" / "summary.json").exists()
    assert any(p.name.isdigit() for p in (tmp_path / "r" / "checkpoints").iterdir())


def test_second_sigterm_aborts_at_once_with_143(tmp_path):
    proc = hooked("SIGTERM", 3, "train", *MID, "--no-progress", "--checkpoint-every", "0",
                  "--out", "r", "twice", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 143, out
    assert "vecpg: SIGTERM: stopping within 5 iterations" in out
    assert "vecpg: aborted by SIGTERM; files already written stay as they are" in out
    assert "chunks run" not in out  # left at once, in the middle of chunk 3


def test_sigterm_without_progress_stops_within_log_every(tmp_path):
    proc = hooked("SIGTERM", 3, "train", *MID, "--no-progress", "--checkpoint-every", "10",
                  "--out", "r", cwd=tmp_path)  # fmt: skip
    out = no_traceback(proc)
    assert proc.returncode == 143, out
    assert "vecpg: SIGTERM: stopping within 5 iterations (the last checkpoint is kept)" in out
    assert "kept the checkpoint of iteration 10" in out and "chunks run: 3" in out


# --- 3. two Ctrl-C in Python ------------------------------------------------------------------
def test_two_ctrl_c_in_python_then_a_normal_exit(tmp_path):
    """The second Ctrl-C raises KeyboardInterrupt while XLA still computes in the worker
    thread; the script catches it and ends: the interpreter used to abort (exit 134)."""
    proc = hooked("SIGINT", 1, "api", "inside", "long", cwd=tmp_path)
    out = no_traceback(proc)
    assert proc.returncode == 0, out
    assert "caught KeyboardInterrupt" in out and "exiting normally" in out


# --- 4. several processes ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def two_processes(tmp_path: Path, extra1: list[str]) -> list[tuple[int, str]]:
    """Processes 0 and 1 of a job launching a tiny run (process 1 with `extra1` too):
    (exit code, stderr) of each."""
    from tests.test_distributed import ONE_DEVICE, cluster_args

    port = free_port()
    tiny = ["train", "--num-envs", "4", "--num-steps", "16", "--total-steps", "640",
            "--hidden", "8", "--seeds", "2", "--no-progress",
            "--out", str(tmp_path / "mp")]  # fmt: skip
    commands = [
        [sys.executable, "-m", "vecpg.cli", *tiny, *cluster_args(port, 2, i), *extra]
        for i, extra in ((0, []), (1, extra1))
    ]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [subprocess.Popen(c, env=ONE_DEVICE, **pipes) for c in commands]
    errs = [p.communicate(timeout=200)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]


def test_a_process_with_another_config_says_one_line_and_exits_2(tmp_path):
    want = (
        "vecpg: error: invalid cluster: process 1 was given a different config or launch "
        "than process 0; start every process with the same flags"
    )
    for _ in range(2):  # it was a race: the peer often lost its coordinator first
        for code, err in two_processes(tmp_path, ["--learning-rate", "0.001"]):
            assert code == 2, err[-3000:]
            assert [ln for ln in err.splitlines() if ln.strip()] == [want], err[-3000:]
    assert not (tmp_path / "mp").exists()


def test_a_busy_coordinator_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("localhost", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = vecpg_cli("train", "--coordinator-address", f"localhost:{port}",
                         "--num-processes", "2", "--process-id", "0", "--out", "r",
                         cwd=tmp_path)  # fmt: skip
    line = one_error_line(proc)
    assert line == (
        f"vecpg: error: invalid coordinator_address='localhost:{port}': port {port} is in "
        "use (process 0 hosts the coordinator there; pick a free port)"
    )
    assert not (tmp_path / "r").exists()


# --- 5. resume: a corrupt run.json, an edited config.json ------------------------------------
@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory) -> Path:
    """A checkpointed run whose summary.json is gone, as if it was killed at the end."""
    run = tmp_path_factory.mktemp("resume") / "run"
    vecpg.train(vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(8,),
                                  **FAST_COMPILE_CONFIG),
                seeds=2, run_dir=run, checkpoint_every=5)  # fmt: skip
    (run / "summary.json").unlink()
    return run


def test_resume_with_a_corrupt_run_json_is_one_line(tmp_path, unfinished_run):
    run = tmp_path / "r"
    cases = {
        "{ not json": "run.json is corrupt (not readable JSON); the run cannot be resumed",
        '["a list"]': "run.json is corrupt (not a JSON object); the run cannot be resumed",
        '{"kind": "train"}': "run.json is corrupt (no 'seeds'); the run cannot be resumed",
        '{"seeds": 3}': "run.json is corrupt (",
        '{"seeds": [0], "checkpoint_every": "x"}': "run.json is corrupt (invalid checkpoint",
    }
    for text, message in cases.items():
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(unfinished_run, run)
        (run / "run.json").write_text(text)
        before = snapshot(run)
        line = one_error_line(vecpg_cli("train", "--resume", "r", cwd=tmp_path))
        assert line.startswith("vecpg: error: invalid resume='r': ") and message in line, line
        assert snapshot(run) == before


def test_resume_refuses_an_edited_config_and_names_the_change(tmp_path, unfinished_run):
    run = tmp_path / "r"
    shutil.copytree(unfinished_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "learning_rate": 0.001}))
    before = snapshot(run)
    line = one_error_line(vecpg_cli("train", "--resume", "r", cwd=tmp_path))
    assert line == (
        "vecpg: error: invalid resume='r': config.json was edited after the run started "
        f"(learning_rate: {config['learning_rate']} -> 0.001), so the run so far does not match "
        "this run's config.json; restore it or start a new run"
    )
    assert snapshot(run) == before
    with pytest.raises(vecpg.ConfigError, match=r"config.json was edited .*learning_rate"):
        vecpg.resume(run)
    # Reformatting config.json changes nothing it says: the run resumes.
    (run / "config.json").write_text(json.dumps(config, indent=4, sort_keys=True))
    assert vecpg.resume(run).metrics["episode_return"].shape == (2, 10)


def test_runs_made_before_the_fingerprint_resume_as_before(tmp_path, unfinished_run):
    run = tmp_path / "r"
    shutil.copytree(unfinished_run, run)
    launch = json.loads((run / "run.json").read_text())
    assert {"config_sha256", "config"} <= set(launch)
    old = {k: v for k, v in launch.items() if k not in ("config_sha256", "config")}
    (run / "run.json").write_text(json.dumps(old))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "learning_rate": 0.001}))
    proc = vecpg_cli("train", "--resume", "r", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run / "summary.json").exists()


def test_runs_made_before_newer_fields_resume(tmp_path, unfinished_run):
    """A run checkpointed before vecpg had --memory, --memory-size and --mask-obs (its
    config.json and run.json lack them) resumes: those fields take the values such a run
    was made with, and its fingerprint still matches."""
    import hashlib

    from vecpg.run.orchestrate import canonical

    run = tmp_path / "r"
    shutil.copytree(unfinished_run, run)
    added = ("memory", "memory_size", "mask_obs")
    config = json.loads((run / "config.json").read_text())
    old = {k: v for k, v in config.items() if k not in added}
    (run / "config.json").write_text(json.dumps(old))
    launch = json.loads((run / "run.json").read_text())
    launch["config"] = old
    launch["config_sha256"] = hashlib.sha256(canonical(old).encode()).hexdigest()
    (run / "run.json").write_text(json.dumps(launch))
    assert vecpg.resume(run).metrics["episode_return"].shape == (2, 10)
    # the same run with one of them edited is refused, naming it
    (run / "summary.json").unlink()
    (run / "config.json").write_text(json.dumps({**old, "memory": "gru"}))
    with pytest.raises(vecpg.ConfigError, match=r'edited .*memory: \(absent\) -> "gru"'):
        vecpg.resume(run)


# --- 6. host RAM counts once however many CPU devices share it --------------------------------
def test_fit_lanes_counts_shared_memory_once():
    from vecpg.run.memory import LaneBytes, fit_lanes

    gib = 2**30
    lane = LaneBytes(gib // 10, 1000)
    # 4 devices with 4 GiB each: 0.7 x 16 GiB = 11.2 GiB holds 100 lanes of 0.1 GiB.
    assert fit_lanes(lane, 100, None, 4 * gib, 4 * gib, 4) == (None, None)
    # 4 CPU devices in one 4 GiB RAM: 0.7 x 4 GiB = 2.8 GiB, 28 lanes a call (4 calls).
    chunk, note = fit_lanes(lane, 100, None, 4 * gib, 4 * gib, 4, shared=True)
    assert chunk == 28 and note is not None
    assert "(2.8 GiB usable): running 4 calls of 28 (--max-runs-per-call 28)" in note
    # One lane per device at least: 4 x 1 GiB is over 0.7 x 4 GiB (0.7 GiB each).
    big = LaneBytes(gib, 10)
    assert fit_lanes(big, 4, None, 4 * gib, 4 * gib, 4) == (None, None)
    with pytest.raises(vecpg.ConfigError, match=r"over the 0.7 GiB usable \(each of 4 devices"):
        fit_lanes(big, 4, None, 4 * gib, 4 * gib, 4, shared=True)


def test_the_planned_memory_is_the_hosts_not_times_the_devices(tmp_path):
    """4 CPU devices: the note's 'usable' figure is 0.7 x the host's free RAM (it was 4x)."""
    from vecpg.run.memory import host_available_bytes

    if 0.7 * host_available_bytes() > 100_000 * 900_000:  # 100000 runs of ~0.9 MB fit
        pytest.skip("this machine holds the whole run in one call")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VECPG_CPU_DEVICES": "4"}
    cmd = [sys.executable, "-m", "vecpg.cli", "train", "--seeds", "100000", "--total-steps",
           "4096", "--no-progress", "--out", "big"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    note = ""
    try:
        for line in proc.stdout:
            if "runs per call need about" in line:
                note = line
                break
    finally:
        proc.kill()  # the plan is all this test needs
        proc.wait()
    meminfo = dict(ln.split(":") for ln in Path("/proc/meminfo").read_text().splitlines())
    total_gib = int(meminfo["MemTotal"].split()[0]) / 2**20
    available_gib = int(meminfo["MemAvailable"].split()[0]) / 2**20
    found = re.search(r"\(([\d.]+) GiB usable\)", note)
    assert found, note
    usable = float(found.group(1))
    assert usable <= 0.7 * total_gib + 0.05  # never more than the machine has
    assert 0.5 * 0.7 * available_gib <= usable <= 1.5 * 0.7 * available_gib


# --- 7. the Python API's arguments of the wrong type ------------------------------------------
def test_api_arguments_of_the_wrong_type_are_one_line(tmp_path, no_compile, monkeypatch):
    from vecpg.run.tracking import WandbOptions

    monkeypatch.chdir(tmp_path)
    cfg = MID_CONFIG
    train_cases = {
        "invalid wandb='offline': must be a vecpg WandbOptions (e.g. "
        "WandbOptions(mode='offline')) or None": dict(wandb="offline"),
        "invalid run_dir=123: must be a path (str or os.PathLike) or None": dict(run_dir=123),
        "invalid progress='yes': must be True or False": dict(progress="yes"),
        "invalid checkpoint_every='5': must be an integer >= 0 (0: off)": dict(
            checkpoint_every="5", run_dir="r"
        ),
        "invalid cluster='localhost:1234': must be a vecpg Cluster": dict(cluster="localhost:1234"),
        "invalid overwrite=1: must be True or False": dict(overwrite=1),
        "invalid max_runs_per_call=True: must be an integer >= 1 or None": dict(
            max_runs_per_call=True
        ),
    }
    for message, kwargs in train_cases.items():
        with pytest.raises(vecpg.ConfigError) as e:
            vecpg.train(cfg, seeds=2, **kwargs)
        assert str(e.value).startswith(message), str(e.value)
    grid = {"learning_rate": [1e-3]}
    with pytest.raises(vecpg.ConfigError, match=r"^invalid out=123: must be a path"):
        vecpg.sweep(cfg, grid, out=123)
    with pytest.raises(vecpg.ConfigError, match=r"^invalid wandb=\{'mode': 'offline'\}"):
        vecpg.sweep(cfg, grid, wandb={"mode": "offline"})
    with pytest.raises(vecpg.ConfigError, match=r"^invalid grid='lr=1e-3': must be a dict"):
        vecpg.sweep(cfg, "lr=1e-3")
    with pytest.raises(vecpg.ConfigError, match=r"^invalid resume=None: must be a path"):
        vecpg.resume(None)
    with pytest.raises(vecpg.ConfigError, match=r"^invalid progress='yes'"):
        vecpg.resume("r", progress="yes")
    with pytest.raises(vecpg.ConfigError, match=r"^invalid cluster=3: must be a vecpg Cluster"):
        vecpg.resume("r", cluster=3)
    with pytest.raises(vecpg.ConfigError, match=r"^invalid wandb_tags='a': must be a tuple"):
        WandbOptions("offline", tags="a")
    with pytest.raises(vecpg.ConfigError, match=r"^invalid wandb_project=5: must be a non-empty"):
        WandbOptions("offline", project=5)
    assert list(tmp_path.iterdir()) == []  # nothing written
