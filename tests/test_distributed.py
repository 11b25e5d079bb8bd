"""Several JAX processes on localhost (2 processes x 1 CPU device): the sweep equals the
single-process sweep, checkpoints are written per process and resume, a killed process
stops its peer with one line, and bad cluster input is one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_checkpoint import CKPT_ARGS, SWEEP_GRID, wait_for
from vecpg.cli import main

ONE_DEVICE = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
SWEEP = ["sweep", *CKPT_ARGS, *SWEEP_GRID]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def cluster_args(port: int, n: int, i: int, *extra: str) -> list[str]:
    return [
        "--coordinator-address", f"localhost:{port}", "--num-processes", str(n),
        "--process-id", str(i), *extra,
    ]  # fmt: skip


def start(args: list[str], env: dict = ONE_DEVICE) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vecpg.cli", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str, str]]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        outs.append((p.returncode, out, err))
    return outs


def vecpg_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vecpg: error")]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: the same sweep in one process with 2 host devices (the same
    per-device program as 2 processes x 1 device)."""
    out = tmp_path_factory.mktemp("mp") / "one"
    two_devices = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = start([*SWEEP, "--out", str(out)], env=two_devices)
    code, _, err = finish([proc])[0]
    assert code == 0, err[-2000:]
    return np.load(out / "metrics.npz")


def test_two_processes_checkpoint_survive_a_kill_and_resume_to_the_one_process_sweep(
    tmp_path, one_process
):
    port = free_port()
    run_dir = tmp_path / "two"
    flags = ["--heartbeat-timeout", "5"]
    args = [*SWEEP, "--out", str(run_dir)]
    procs = [start([*args, *cluster_args(port, 2, i, *flags)]) for i in (0, 1)]
    wait_for(run_dir / "checkpoints" / "60", procs[0], timeout=300)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code, _, err = finish(procs[:1], timeout=120)[0]
    assert code == 1 and time.monotonic() - killed < 60
    assert vecpg_errors(err) == [
        "vecpg: error: process 1 of 2 stopped responding (no heartbeat for 5 s); "
        "stopping this process too"
    ], err[-2000:]
    assert not (run_dir / "summary.json").exists()
    # Each process wrote its own shards of the state (orbax's multi-process layout).
    launch = json.loads((run_dir / "run.json").read_text())
    assert launch["num_processes"] == 2

    # A different process count is refused in one line, before compiling.
    assert main(["sweep", "--resume", str(run_dir), "--no-progress"]) == 2

    port = free_port()
    resume = ["sweep", "--resume", str(run_dir), "--no-progress"]
    procs = [start([*resume, *cluster_args(port, 2, i)]) for i in (0, 1)]
    (c0, out0, err0), (c1, out1, err1) = finish(procs)
    assert c0 == 0 and c1 == 0, err0[-2000:] + err1[-2000:]
    assert out0.splitlines()[-1].endswith(f"wrote {run_dir}/")  # process 0 alone writes
    assert out1.splitlines()[-1] == f"vecpg: process 1 of 2 done; process 0 wrote {run_dir}/"
    got = np.load(run_dir / "metrics.npz")
    assert sorted(got.files) == sorted(one_process.files)
    for k in one_process.files:  # bit for bit
        np.testing.assert_array_equal(got[k], one_process[k], err_msg=k)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_devices"] == 2


def test_cluster_flags_are_checked_before_connecting(capsys):
    bad = {
        ("localhost:1234", "2", "2"): "invalid process_id=2: must be in 0..1",
        ("localhost", "2", "0"): "invalid coordinator_address='localhost': must be HOST:PORT",
        ("localhost:1234", "0", "0"): "invalid num_processes=0: must be an integer >= 1",
    }
    for (address, n, i), message in bad.items():
        args = ["--coordinator-address", address, "--num-processes", n, "--process-id", i]
        assert main(["train", *args, "--out", "never"]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--num-processes", "2", "--out", "never"]) == 2
    assert "--coordinator-address, --process-id missing" in capsys.readouterr().err
    assert not Path("never").exists()


def test_unreachable_coordinator_and_mismatched_counts_are_one_line(tmp_path):
    port = free_port()  # nobody listens: process 1 gives up after --connect-timeout
    t0 = time.monotonic()
    alone = cluster_args(port, 2, 1, "--connect-timeout", "3")
    lonely = start(["train", "--out", str(tmp_path / "a"), *alone])
    code, _, err = finish([lonely])[0]
    assert code == 1 and time.monotonic() - t0 < 60
    [line] = vecpg_errors(err)
    assert line == (
        f"vecpg: error: could not join the job at localhost:{port} as process 1 within 3 s: "
        "nothing listens there; is process 0 running, with this address?"
    )
    assert not (tmp_path / "a").exists()

    port = free_port()
    out = str(tmp_path / "b")
    procs = [
        start(["train", "--out", out, *cluster_args(port, 2, 0, "--connect-timeout", "20")]),
        start(["train", "--out", out, *cluster_args(port, 3, 1, "--connect-timeout", "20")]),
    ]
    (c0, _, err0), (c1, _, err1) = finish(procs)
    wrong = f"invalid num_processes=3: the job at localhost:{port} has 2 processes"
    assert c1 == 2 and vecpg_errors(err1) == [
        f"vecpg: error: {wrong} (process 0's --num-processes); give every process the same count"
    ]
    assert c0 == 1 and len(vecpg_errors(err0)) == 1, err0[-2000:]
    assert vecpg_errors(err0)[0].startswith(f"vecpg: error: process 1 of 2 failed: {wrong}")
    assert not (tmp_path / "b").exists()


def test_a_peer_failure_line_reaches_stderr_while_a_checkpoint_save_holds_it_back():
    """The watchdog's stop() ends the process with os._exit; if a checkpoint save holds
    fd 2 back in a temp file at that moment, the line must still reach the real stderr
    (it used to vanish, leaving exit code 1 and an empty stderr)."""
    script = (
        "from vecpg.run import distributed\n"
        "from vecpg.training.checkpoint import stderr_held_back\n"
        "distributed.keep_stderr()\n"
        "with stderr_held_back():\n"
        "    distributed.stop('process 1 of 2 stopped responding')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert vecpg_errors(proc.stderr) == ["vecpg: error: process 1 of 2 stopped responding"]
