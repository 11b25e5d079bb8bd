"""Several JAX processes as one job (`jax.distributed`, JAX's multi-controller runtime).

Every process runs the same program on its own devices; the lanes axis is sharded over
all processes' devices (`vecpg.training.execute`). Process 0 hosts the coordinator,
writes the run dir, shows progress and logs to W&B; every process writes its own shards
of each checkpoint.

On top of JAX's coordinator, vecpg keeps two small protocols in its key-value store:
- `agree`: before anything is written, each process publishes a fingerprint of its
  config and launch (or the one-line error its checks raised); a difference, or an
  error anywhere, stops every process with the same line.
- `Watchdog`: each process bumps a counter every second; a peer whose counter stops for
  `heartbeat_timeout` seconds, or that published a failure, stops the others with a
  clear line (JAX's own heartbeat, set longer, would abort with a C++ stack trace).
- `leave`: a process that fails says so (`vecpg/left/<id>`) once its line is out; process
  0, which hosts the coordinator, waits a moment for its peers' before it exits, as a
  peer whose coordinator vanishes is aborted by JAX with a C++ stack trace (exit 134)
  before it can print its own line.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
import re
import sys
import threading
import time
from typing import Any

from vecpg.errors import ConfigError, RunFailed

ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in a multi-process job. All three of address, count and
    id, or none (then SLURM or Open MPI variables are used when they describe more than
    one process; otherwise the job is this one process)."""

    coordinator_address: str | None = None
    """HOST:PORT of process 0's coordinator (process 0 binds that port)."""
    num_processes: int | None = None
    """Processes in the job."""
    process_id: int | None = None
    """This process's index, 0 .. num_processes-1 (0 writes the run dir)."""
    connect_timeout: int = 30
    """Seconds to wait for every process to join the coordinator."""
    heartbeat_timeout: int = 30
    """Seconds without a sign of life before a process is declared dead."""

    def given(self) -> bool:
        return any(
            v is not None for v in (self.coordinator_address, self.num_processes, self.process_id)
        )


def check(cluster: Cluster) -> None:
    """One line per bad field, before anything connects."""
    if not cluster.given():
        pass
    elif None in (cluster.coordinator_address, cluster.num_processes, cluster.process_id):
        missing = [
            "--" + name.replace("_", "-")
            for name in ("coordinator_address", "num_processes", "process_id")
            if getattr(cluster, name) is None
        ]
        raise ConfigError(
            f"invalid cluster: {', '.join(missing)} missing (give --coordinator-address, "
            "--num-processes and --process-id together, or none of them)"
        )
    else:
        address, n, i = cluster.coordinator_address, cluster.num_processes, cluster.process_id
        assert address is not None and n is not None and i is not None
        match = ADDRESS.match(address)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ConfigError(
                f"invalid coordinator_address={address!r}: must be HOST:PORT with a port "
                "1..65535 (e.g. node001:12345)"
            )
        if n < 1:
            raise ConfigError(f"invalid num_processes={n}: must be an integer >= 1")
        if not 0 <= i < n:
            raise ConfigError(
                f"invalid process_id={i}: must be in 0..{n - 1} (--num-processes is {n})"
            )
    for name in ("connect_timeout", "heartbeat_timeout"):
        if getattr(cluster, name) < 1:
            raise ConfigError(
                f"invalid {name}={getattr(cluster, name)}: must be an integer >= 1 (seconds)"
            )


def detected_processes() -> int:
    """Processes a cluster scheduler says this job has (1 when none says more)."""
    for var in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            if var == "SLURM_NTASKS" and "SLURM_STEP_NODELIST" not in os.environ:
                continue  # an allocation, not a task launched by srun
            return int(value)
    return 1


class _State:
    cluster: Cluster | None = None  # what this process joined with (None: alone)
    calls = 0  # agreements made, to keep each launch's keys apart
    watchdog: Watchdog | None = None
    # A copy of file descriptor 2 as it was at join: a checkpoint save holds fd 2 back
    # in a temp file (orbax's noise), and a line written there would die with os._exit.
    stderr_fd: int | None = None


def join(cluster: Cluster | None) -> None:
    """Join the job `cluster` describes (once per process; later calls must agree), or
    stay a single process. Must run before JAX has used a device."""
    import jax

    cluster = cluster or Cluster()
    check(cluster)
    if _State.cluster is not None:
        if cluster.given() and cluster != _State.cluster:
            raise ConfigError(
                "invalid cluster: this process already joined "
                f"{_State.cluster.coordinator_address} as process {_State.cluster.process_id}"
                f" of {_State.cluster.num_processes}"
            )
        return
    if not cluster.given() and detected_processes() == 1:
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise ConfigError(
            "invalid cluster: JAX already started its devices in this process; join the "
            "job (vecpg.join or the cluster= argument) before any other JAX work"
        )
    if cluster.process_id == 0 and cluster.coordinator_address is not None:
        _check_port_free(cluster.coordinator_address)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keep_stderr()
    joined = threading.Event()
    # JAX ends the process with a C++ trace when the coordinator cannot be joined in
    # time; this timer says why in one line first.
    deadline = threading.Timer(cluster.connect_timeout, _not_joined, (cluster, joined))
    deadline.daemon = True
    deadline.start()
    try:
        jax.distributed.initialize(
            cluster.coordinator_address,
            cluster.num_processes,
            cluster.process_id,
            initialization_timeout=cluster.connect_timeout + 30,
            # JAX aborts the process with a C++ trace on a lost peer; vecpg's watchdog
            # notices first and says so in one line.
            heartbeat_timeout_seconds=3 * cluster.heartbeat_timeout,
        )
    except Exception as e:
        joined.set()
        raise RunFailed(
            f"could not join the job at {cluster.coordinator_address or 'the detected address'}"
            f" as process {cluster.process_id} ({_first_line(e)})"
        ) from None
    joined.set()
    deadline.cancel()
    _State.cluster = dataclasses.replace(
        cluster, num_processes=jax.process_count(), process_id=jax.process_index()
    )
    _State.watchdog = Watchdog(cluster.heartbeat_timeout)
    _State.watchdog.start()
    if cluster.num_processes is not None and cluster.num_processes != jax.process_count():
        message = (
            f"invalid num_processes={cluster.num_processes}: the job at "
            f"{cluster.coordinator_address} has {jax.process_count()} processes (process 0's "
            "--num-processes); give every process the same count"
        )
        failed(message)
        raise ConfigError(message)
    atexit.register(done)  # before JAX's client shuts down, or the watchdog would cry wolf


def _check_port_free(address: str) -> None:
    """Process 0 binds the coordinator's port on every interface ([::]:PORT, as JAX
    does): one line when something holds it already (gRPC would only log noise)."""
    import errno
    import socket

    port = int(address.rpartition(":")[2])
    for family, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here: try IPv4
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                sock.bind((host, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"invalid coordinator_address={address!r}: port {port} is in use "
                        "(process 0 hosts the coordinator there; pick a free port)"
                    ) from None
                if family == socket.AF_INET6:
                    continue
                return  # another reason (e.g. a privileged port): JAX says it
            return


def keep_stderr() -> None:
    """Remember where fd 2 points now, so that `stop` reaches it later."""
    if _State.stderr_fd is None:
        _State.stderr_fd = os.dup(2)


def _not_joined(cluster: Cluster, joined: threading.Event) -> None:
    if joined.is_set():
        return
    address = cluster.coordinator_address or "the detected address"
    if cluster.process_id != 0 and not _listening(address):
        why = "nothing listens there; is process 0 running, with this address?"
    else:
        n = cluster.num_processes or "?"
        why = f"were all {n} processes started, with the same --num-processes?"
    stop(
        f"could not join the job at {address} as process {cluster.process_id} within "
        f"{cluster.connect_timeout} s: {why}"
    )


def _listening(address: str) -> bool:
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _client() -> Any:
    from jax._src import distributed

    return distributed.global_state.client


def is_multiprocess() -> bool:
    return _State.cluster is not None and (_State.cluster.num_processes or 1) > 1


def is_writer() -> bool:
    """Whether this process writes the run dir, shows progress and logs to W&B."""
    import jax

    return jax.process_index() == 0


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def agree(what: str, error: ConfigError | None) -> None:
    """Every process publishes `what` (its config's fingerprint) or its check's error,
    then reads everyone's: any error is raised on every process (one line, naming the
    process), and a process whose `what` differs from process 0's is an error too."""
    if not is_multiprocess():
        if error is not None:
            raise error
        return
    import jax

    _State.calls += 1
    client, me, n = _client(), jax.process_index(), jax.process_count()
    prefix = f"vecpg/launch{_State.calls}"
    client.key_value_set(f"{prefix}/{me}", f"error {error}" if error else f"ok {what}")
    timeout = _State.cluster.connect_timeout if _State.cluster else 30
    said = [_wait_for(client, f"{prefix}/{p}", timeout, p) for p in range(n)]
    # Each process ends with its own line (`leave`, process 0 last): the failure is not
    # published, so that no watchdog ends a peer before that peer has said it.
    if error is not None:
        raise error
    for p, value in enumerate(said):
        if value.startswith("error "):
            raise ConfigError(f"process {p} of {n}: {value[len('error ') :]}")
    for p, value in enumerate(said):
        if value != said[0]:
            raise ConfigError(
                f"invalid cluster: process {p} was given a different config or launch than "
                "process 0; start every process with the same flags"
            )


def _wait_for(client: Any, key: str, timeout: float, process: int) -> str:
    """Poll `key` (a blocking get would hold the GIL, starving the watchdog that reports
    a peer's failure)."""
    deadline = time.monotonic() + timeout
    while (value := _try_get(client, key)) is None:
        if time.monotonic() > deadline:
            raise RunFailed(f"process {process} did not reach the launch checks within {timeout} s")
        time.sleep(0.05)
    return value


def failed(message: str) -> None:
    """Tell the peers this process stopped with `message` (they stop too, saying so)."""
    if is_multiprocess():
        import jax

        try:
            _client().key_value_set(
                f"vecpg/failed/{jax.process_index()}", message, allow_overwrite=True
            )
        except Exception:
            pass


def done() -> None:
    """This process finished its part: peers stop watching it."""
    if _State.watchdog is not None:
        _State.watchdog.finish()


def explain(error: Exception) -> Exception:
    """A compiled call failed in a multi-process job. A dead peer is the likely cause (a
    collective reads a closed socket within milliseconds): give the watchdog time to name
    it (it ends the process with its line), else a one-line RunFailed."""
    if _State.watchdog is not None and _State.cluster is not None:
        time.sleep(_State.cluster.heartbeat_timeout + 3)
    return RunFailed(f"a step shared with the other processes failed: {_first_line(error)}")


LEAVE_WAIT_S = 10.0  # process 0 failing waits at most this long for its peers to leave


def leave(code: int) -> None:
    """End a multi-process command: on success, JAX's exit barrier waits for the peers
    (process 0 still writing); on failure (already published by `failed`), exit now, as
    a peer may be stuck in a collective that will never complete. Process 0 first waits
    (at most LEAVE_WAIT_S) for the peers to leave too: the coordinator lives in it, and a
    peer that loses it is aborted by JAX with a C++ stack trace instead of its line."""
    if code == 0:
        done()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _say_left()
    if _State.cluster is not None and _State.cluster.process_id == 0:
        _wait_for_peers_to_leave(LEAVE_WAIT_S)
    os._exit(code)


def _say_left() -> None:
    """Tell the peers this process is about to exit (its line, if any, is out)."""
    if not is_multiprocess():
        return
    import jax

    try:
        _client().key_value_set(f"vecpg/left/{jax.process_index()}", "1", allow_overwrite=True)
    except Exception:
        pass


def _wait_for_peers_to_leave(timeout: float, gone: int | None = None) -> None:
    """Until every peer but `gone` (known dead) has left or finished, or `timeout` s
    passed (a dead peer never says so)."""
    import jax

    try:
        client, me, n = _client(), jax.process_index(), jax.process_count()
        deadline = time.monotonic() + timeout
        waiting = set(range(n)) - {me, gone}
        while waiting and time.monotonic() < deadline:
            for p in list(waiting):
                if _try_get(client, f"vecpg/left/{p}") or _try_get(client, f"vecpg/done/{p}"):
                    waiting.discard(p)
            if waiting:
                time.sleep(0.05)
        time.sleep(0.2)  # a peer that said so is exiting: let it finish
    except Exception:
        pass


class Watchdog(threading.Thread):
    """Beats every second and watches the peers (see the module docstring)."""

    def __init__(self, timeout: float):
        super().__init__(name="vecpg-watchdog", daemon=True)
        self.timeout = timeout
        self.finished = threading.Event()

    def finish(self) -> None:
        import jax

        try:
            _client().key_value_set(f"vecpg/done/{jax.process_index()}", "1", allow_overwrite=True)
        except Exception:
            pass
        self.finished.set()

    def run(self) -> None:
        import jax

        client, me, n = _client(), jax.process_index(), jax.process_count()
        address = _State.cluster.coordinator_address if _State.cluster else "?"
        seen: dict[int, tuple[str, float]] = {}
        beat = 0
        while not self.finished.wait(1.0):
            beat += 1
            try:
                client.key_value_set(f"vecpg/alive/{me}", str(beat), allow_overwrite=True)
                for p in range(n):
                    if p == me:
                        continue
                    if (why := _try_get(client, f"vecpg/failed/{p}")) is not None:
                        stop(f"process {p} of {n} failed: {why}")
                    if _try_get(client, f"vecpg/done/{p}") or _try_get(client, f"vecpg/left/{p}"):
                        continue
                    value = _try_get(client, f"vecpg/alive/{p}") or ""
                    now = time.monotonic()
                    if p not in seen or seen[p][0] != value:
                        seen[p] = (value, now)
                    elif now - seen[p][1] > self.timeout:
                        stop(
                            f"process {p} of {n} stopped responding (no heartbeat for "
                            f"{self.timeout:.0f} s); stopping this process too",
                            gone=p,
                        )
            except Exception as e:
                if self.finished.is_set():
                    return
                stop(
                    f"lost the coordinator at {address} ({_first_line(e)}); process 0 "
                    "stopped or cannot be reached; stopping this process too"
                )


def _try_get(client: Any, key: str) -> str | None:
    """The value at `key`, or None when it was never set (the store says NOT_FOUND)."""
    try:
        return client.key_value_try_get(key)
    except Exception as e:
        if "NOT_FOUND" in str(e) or "not found" in str(e).lower():
            return None
        raise


def stop(message: str, gone: int | None = None) -> None:
    """Print `message` as vecpg's error line and end this process at once (a compiled
    call waiting on a dead peer cannot be interrupted; process 0 first gives its live
    peers a moment to leave, see `leave`). The line goes to the stderr the process was
    started with, even while a checkpoint save holds fd 2 back."""
    sys.stdout.flush()
    sys.stderr.flush()
    line = f"vecpg: error: {message}\n".encode()
    os.write(2 if _State.stderr_fd is None else _State.stderr_fd, line)
    _say_left()
    if _State.cluster is not None and _State.cluster.process_id == 0:
        _wait_for_peers_to_leave(LEAVE_WAIT_S, gone)
    os._exit(1)
