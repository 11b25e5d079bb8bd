"""Run many lanes of one static config as compiled calls of `make_train`'s functions.

A lane is one vmapped slot of the program: one (seed, hyperparameters) pair. All lanes
run as ONE compiled program, their axis sharded over every device (a Mesh with a
NamedSharding); `max_runs_per_call` splits them into equal calls of the same program.
Inputs are built with `jax.make_array_from_callback` and results brought back with
`process_allgather` when there are several processes (`vecpg.run.distributed`): each
process then runs the same calls on its own devices, and every process gets every
lane's results.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vecpg.algos.base import mean_grad_batch
from vecpg.config import HPARAM_FIELDS, HParams, StaticConfig
from vecpg.envs.quiet import third_party_quiet
from vecpg.training.sharding import ENVS, RUNS
from vecpg.training.trainer import TrainFns, make_train
from vecpg.training.xla_options import program_options


class LaneOutput(NamedTuple):
    """What a run of all lanes gives back to the host."""

    params: Any  # numpy leaves [R, ...]
    metrics: dict[str, np.ndarray]  # [R, iterations]
    compile_s: float
    run_s: float
    num_devices: int  # devices the runs axis was spread over
    num_calls: int  # compiled calls made (chunks)
    iterations_run: int  # iterations this process ran (less than all when resumed)
    devices_per_lane: int = 1  # the mesh's "envs" axis: devices sharing one lane's envs


class TrainingInterrupted(Exception):
    """The run was stopped on request (Ctrl-C). `iteration`: iterations kept in the last
    checkpoint (0: none)."""

    def __init__(self, iteration: int):
        super().__init__(f"stopped; kept iterations: {iteration}")
        self.iteration = iteration


class Checkpointing(NamedTuple):
    """Chunk the run into `every` iterations, saving the full state of every lane to
    `store` after each chunk."""

    store: Any  # vecpg.training.checkpoint.CheckpointStore
    every: int


def never() -> bool:
    return False


def call_in_worker(call: Callable[[], Any], interrupted: Callable[[], bool], kept: int) -> Any:
    """Run a compiled call (and its copy to the host), or a compilation, in a worker
    thread while the main thread waits in Python: a signal handler only runs in the main
    thread between bytecodes, so a Ctrl-C is acknowledged at once. A call that failed
    after a stop request becomes TrainingInterrupted(kept).

    The worker is not a daemon, and the main thread waits on an Event rather than in
    `join`: when a second Ctrl-C (KeyboardInterrupt) leaves this function while XLA still
    computes, the interpreter waits for that call (one chunk) before it shuts down instead
    of finalising under it (an abort, exit 134). A KeyboardInterrupt inside `join` would
    mark the running thread as stopped (CPython < 3.13), and shutdown would not wait."""
    result: list[Any] = []
    error: list[BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            result.append(call())
        except BaseException as e:  # handed to the main thread
            error.append(e)
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="vecpg-compiled-call", daemon=False)
    worker.start()
    while not finished.wait(0.05):
        pass
    if error:
        if interrupted():
            raise TrainingInterrupted(kept) from None
        raise error[0]
    return result[0]


def runs_mesh(env_devices: int = 1) -> Mesh:
    """Every device of every process in a (runs, envs) mesh: lanes are sharded over
    "runs", and each lane's envs over the `env_devices` devices of its "envs" row."""
    devices = np.asarray(jax.devices())
    return Mesh(devices.reshape(-1, env_devices), (RUNS, ENVS))


def runs_sharding(env_devices: int = 1) -> NamedSharding:
    """Arrays with a leading lanes axis: split over "runs", copied along "envs"."""
    return NamedSharding(runs_mesh(env_devices), PartitionSpec(RUNS))


def state_shardings(state: Any, env_devices: int) -> Any:
    """The shardings of a [R]-lanes TrainState (a pytree of shapes or arrays): every leaf
    split over "runs"; with a lane's envs split over devices (`env_devices` > 1), the
    env-batched leaves (`env_state`, `memory`: [R, num_envs, ...]) over "envs" too, as the
    program holds them. Declaring that at the program's boundary keeps them split between
    calls: with the lanes-only sharding, XLA slices each leaf of the state at entry and
    gathers it back at exit, one kernel per leaf (hopper: about 100)."""
    lanes = runs_sharding(env_devices)
    whole = jax.tree.map(lambda _: lanes, state)
    if env_devices == 1:
        return whole
    split = NamedSharding(lanes.mesh, PartitionSpec(RUNS, ENVS))
    env_batched = {"env_state": state.env_state, "memory": state.memory}
    return dataclasses.replace(
        whole, **{k: jax.tree.map(lambda _: split, v) for k, v in env_batched.items()}
    )


def env_devices_for(lanes: int, num_devices: int, static: StaticConfig | int) -> int:
    """How many devices share one lane's envs (the "envs" row): 1 when the lanes fill
    every device, else the fewest that fill them, so one seed on 8 devices steps its envs
    on all 8 rather than running 7 padded copies; when none fills them, the most that
    `static` allows (as few padded lanes as it can). With none but 1, each lane keeps one
    device, lanes padded over the "runs" axis.

    A row of D devices divides the device count and both sizes a split lane cuts in D
    equal shares: num_envs (rollout, batch) and M, the batch of every `mean_grad` call (a
    minibatch; a2c's whole batch: `vecpg.algos.base.mean_grad_batch`). Nothing else needs
    D to divide it: npg/trpo's FVP subsample (round(fvp_fraction * N) samples) is a
    gather GSPMD shards unevenly, and a lane's statistics are reductions. `static` as an
    int: num_envs alone. `lanes`: those of the whole launch, never one call's, so that
    --max-runs-per-call runs every lane on the same layout."""
    if lanes >= num_devices:
        return 1
    sizes = (static,) if isinstance(static, int) else (static.num_envs, mean_grad_batch(static))
    fits = [
        e
        for e in range(1, num_devices + 1)
        if num_devices % e == 0 and all(size % e == 0 for size in sizes)
    ]
    enough = [e for e in fits if num_devices // e <= lanes]
    return min(enough) if enough else max(fits)  # else: as few padded lanes as static allows


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_data(tree: Any) -> Any:
    """Typed PRNG keys -> raw key data: numpy (and checkpoints) cannot hold typed keys."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def init_from_key_data(fns: TrainFns, key_data: jax.Array, hp: HParams):
    return jax.vmap(fns.init)(jax.random.wrap_key_data(key_data), hp)


def abstract_inputs(num_runs: int, sharding: NamedSharding):
    """Shapes of (key data [R, 2], hparams leaves [R], lane ids [R]) for lowering."""
    key_data = jax.random.key_data(jax.random.key(0))
    keys = jax.ShapeDtypeStruct((num_runs, *key_data.shape), key_data.dtype, sharding=sharding)
    leaf = jax.ShapeDtypeStruct((num_runs,), jnp.float32, sharding=sharding)
    hp = HParams(**{name: cast(Any, leaf) for name in HPARAM_FIELDS})
    lanes = jax.ShapeDtypeStruct((num_runs,), jnp.int32, sharding=sharding)
    return keys, hp, lanes


@functools.lru_cache(maxsize=4)
def train_fns(static: StaticConfig, callback: bool = False) -> TrainFns:
    """`make_train(static)`, with the host callback that feeds the active sinks when
    `callback`. Without it the program can enter JAX's persistent compilation cache
    (JAX never caches an executable that holds a host callback)."""
    from vecpg.run.progress import emit

    return make_train(static, emit if callback else None)


class WholeRun(NamedTuple):
    """A whole run of R lanes as two compiled programs: `init` (key data [R, 2], hparams
    [R]) -> state, then `run` over every iteration. Called as one function: (key data,
    hparams, lane ids [R]) -> (final state, metrics leaves [R, num_iterations])."""

    init: Any  # jax.stages.Compiled
    run: Any
    start: jax.Array  # iteration 0, replicated over the mesh

    def __call__(self, key_data, hp: HParams, lanes):
        return self.run(self.init(key_data, hp), hp, lanes, self.start)

    def as_text(self) -> str:
        return self.init.as_text() + "\n" + self.run.as_text()

    def memory_analysis(self):
        """The run program's (it holds the state the init program hands over)."""
        return self.run.memory_analysis()


@functools.lru_cache(maxsize=16)
def compiled_train(
    static: StaticConfig, num_runs: int, env_devices: int = 1, callback: bool = False
) -> WholeRun:
    """The whole run of `num_runs` lanes (a multiple of the "runs" axis) over the
    (runs, envs) mesh: `compiled_chunk`'s init and run programs, the run one chunk of
    every iteration (so a chunked run gives its numbers bit for bit); cached per
    (static config, lanes, env devices). Takes (key data [R, 2], hparams [R], lane ids [R]).

    With `callback`, the program carries the host callback (`vecpg.progress.emit`): one
    host call for all lanes every `log_every` iterations, a no-op with no sink active.
    """
    init, run = _compile_pair(static, num_runs, static.num_iterations, env_devices, callback)
    sharding = runs_sharding(env_devices)
    start = jax.device_put(jnp.int32(0), NamedSharding(sharding.mesh, PartitionSpec()))
    return WholeRun(init, run, start)


@functools.lru_cache(maxsize=16)
def compiled_chunk(static: StaticConfig, num_runs: int, length: int, env_devices: int = 1):
    """(init, run) compiled for checkpointed runs: `init(key data, hparams) -> state` and
    `run(state, hparams, lanes, start) -> (state, metrics [R, length])`, the state donated."""
    return _compile_pair(static, num_runs, length, env_devices, callback=False)


def _compile_pair(
    static: StaticConfig, num_runs: int, length: int, env_devices: int, callback: bool
):
    sharding = runs_sharding(env_devices)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    fns = train_fns(static, callback)
    keys, hp, lanes = abstract_inputs(num_runs, sharding)
    options = program_options(static)
    with jax.set_mesh(runs_mesh(env_devices)), third_party_quiet():
        # jitted inside, so that eval_shape's trace of it is the one the program reuses
        init_fn = jax.jit(functools.partial(init_from_key_data, fns))
        shardings = state_shardings(jax.eval_shape(init_fn, keys, hp), env_devices)
        init = jax.jit(
            init_fn,
            in_shardings=sharding,
            out_shardings=shardings,
            compiler_options=options,
        ).lower(keys, hp)
        # XLA compiles the init program (without the GIL) while Python traces the run
        # program: the CartPole demo's two programs, alternating, 8.0-8.4 s against
        # 8.3-9.3 s in turn (2026-12-01, 2-core AMD EPYC); the whole CLI's compile moved
        # within that box's noise
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            init_compiled = pool.submit(init.compile)
            state = jax.tree.map(
                lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                init.out_info,
                shardings,
            )
            run = jax.jit(
                functools.partial(fns.run, length=length),
                in_shardings=(shardings, sharding, sharding, replicated),
                out_shardings=(shardings, sharding),
                donate_argnums=0,
                compiler_options=options,
            ).lower(state, hp, lanes, jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated))
            return init_compiled.result(), run.compile()


def _global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _to_host(tree: Any) -> Any:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


class LanePlan(NamedTuple):
    """Lanes padded (repeating the last one, lane id -1) to equal calls of `chunk` lanes,
    a multiple of the "runs" axis. `env_devices` is the same for every call: a lane's
    layout never depends on the chunking, only the lanes each device vmaps per call
    (chunk / runs axis) do, and XLA may round a batch of another width differently in
    the last bits."""

    num_lanes: int
    chunk: int
    num_calls: int
    key_data: np.ndarray  # [padded, 2]
    hparams: HParams  # leaves [padded]
    lane_ids: np.ndarray  # [padded] int32; -1 marks padding (ignored by host sinks)
    env_devices: int = 1  # devices sharing one lane's envs (the mesh's "envs" axis)

    def call_slice(self, c: int) -> slice:
        return slice(c * self.chunk, (c + 1) * self.chunk)

    def real_lanes(self, c: int) -> int:
        """Lanes of call c that are not padding."""
        return int(np.sum(self.lane_ids[self.call_slice(c)] >= 0))


def plan_lanes(
    seeds: list[int],
    hparams: list[HParams],
    max_runs_per_call: int | None,
    static: StaticConfig | int = 1,
) -> LanePlan:
    """Lanes in equal calls of `chunk` lanes, a multiple of the "runs" axis (so a call may
    hold more than `max_runs_per_call` lanes: at least one per row of devices).

    With fewer lanes than devices, each lane's envs are split over a row of several
    devices (`env_devices_for` on `static`, the StaticConfig: the row divides every size
    it splits). The row is chosen from ALL lanes, not one call's: chunking never changes
    how a lane is laid out, only how many lanes each row vmaps per call. `static` as an
    int is num_envs alone (a minibatch the row does not divide is then differentiated
    whole by each device of the row: `vecpg.algos.base.mean_grad`)."""
    num_lanes = len(seeds)
    ndev = jax.device_count()
    env_devices = env_devices_for(num_lanes, ndev, static)
    runs_axis = ndev // env_devices
    chunk = min(num_lanes, max_runs_per_call or num_lanes)
    chunk = math.ceil(chunk / runs_axis) * runs_axis
    num_calls = math.ceil(num_lanes / chunk)
    padded = num_calls * chunk
    order = list(range(num_lanes)) + [num_lanes - 1] * (padded - num_lanes)
    seed_of_lane = np.asarray([seeds[i] for i in order], np.uint32)
    key_data = np.asarray(jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(seed_of_lane))
    hp_all = jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *[hparams[i] for i in order])
    lane_ids = np.array([i if n < num_lanes else -1 for n, i in enumerate(order)], np.int32)
    return LanePlan(num_lanes, chunk, num_calls, key_data, hp_all, lane_ids, env_devices)


class HostRing:
    """The host side of progress reporting: the last `size` iterations' metrics of one
    call's lanes, laid out as the in-jit callback's ring buffer ([size, R], iteration i
    in row i % size), handed to `vecpg.run.progress.emit` every `size` iterations."""

    def __init__(self, size: int, lane_ids: np.ndarray):
        self.size, self.lane_ids = size, lane_ids
        self.buffer: dict[str, np.ndarray] = {}
        self.last = -1

    def add(self, start: int, metrics: dict[str, np.ndarray], total: int) -> bool:
        """Take iterations start.. of metrics [R, n]; True when a flush is due."""
        n = next(iter(metrics.values())).shape[1]
        for k, v in metrics.items():
            buf = self.buffer.setdefault(k, np.zeros((self.size, v.shape[0]), v.dtype))
            for i in range(start, start + n):
                buf[i % self.size] = v[:, i - start]
        self.last = start + n - 1
        return (self.last + 1) % self.size == 0 or self.last == total - 1

    def flush(self) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
        """(lane ids, last iteration, buffer): copies, as sinks may keep them (W&B queues)."""
        return self.lane_ids, self.last, {k: v.copy() for k, v in self.buffer.items()}


class CallWatcher(Protocol):
    """Told when the timed part starts and how many real lanes each call runs (the
    progress reporter implements it)."""

    def start(self, steps_done_all_lanes: int = 0) -> None: ...

    def expect(self, lanes_in_call: int) -> None: ...


def run_lanes(
    static: StaticConfig,
    plan: LanePlan,
    *,
    checkpointing: Checkpointing | None = None,
    watcher: CallWatcher | None = None,
    interrupted: Callable[[], bool] = never,
    report: bool = True,
) -> LaneOutput:
    """Train every lane of `plan`: one compiled program per call of `plan.chunk` lanes.

    With `checkpointing`, the iterations run in chunks and the run continues from the
    store's latest checkpoint if there is one. Host sinks (progress, W&B) must be made
    active by the caller (`vecpg.run.progress.sinks_active`). With `report`, the sinks
    get every `log_every` iterations between compiled chunks.

    `interrupted` is polled between chunks: once it says so, the run stops there, raising
    TrainingInterrupted. A run that can be interrupted (any `interrupted` but `never`)
    goes in chunks of at most `log_every` iterations (`vecpg.run.interrupt.stop_within`),
    so a stop waits for no more than that; the chunks give the whole-run program's
    numbers bit for bit. Once every iteration is computed, a stop discards nothing.
    Only a run that nothing can stop, with no sink and no checkpoints, is one compiled
    call (`compiled_train`).
    """
    stoppable = interrupted is not never
    if checkpointing is None and not report and not stoppable:
        return _run_whole(static, plan, watcher, interrupted)
    return _run_chunked(static, plan, watcher, checkpointing, interrupted, report or stoppable)


def _inputs(plan: LanePlan, c: int, sharding: NamedSharding):
    sl = plan.call_slice(c)
    return (
        _global(plan.key_data[sl], sharding),
        jax.tree.map(lambda x: _global(x[sl], sharding), plan.hparams),
        _global(plan.lane_ids[sl], sharding),
    )


def _num_devices(tree: Any) -> int:
    return len(jax.tree.leaves(tree)[0].sharding.device_set)


def _run_whole(
    static: StaticConfig,
    plan: LanePlan,
    reporter: CallWatcher | None,
    interrupted: Callable[[], bool],
) -> LaneOutput:
    t0 = time.perf_counter()
    fn = compiled_train(static, plan.chunk, plan.env_devices)
    compile_s = time.perf_counter() - t0
    sharding = runs_sharding(plan.env_devices)
    if reporter:
        reporter.start()
    outs = []
    t0 = time.perf_counter()
    for c in range(plan.num_calls):
        if interrupted():
            raise TrainingInterrupted(0)
        if reporter:
            reporter.expect(plan.real_lanes(c))
        inputs = _inputs(plan, c, sharding)

        def call(inputs=inputs):
            state, metrics = fn(*inputs)
            return _num_devices(metrics), _to_host((state.params, metrics))

        num_devices, out = call_in_worker(call, interrupted, 0)
        outs.append(out)
    run_s = time.perf_counter() - t0
    params, metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[: plan.num_lanes], *outs)
    total = static.num_iterations
    return LaneOutput(
        params, metrics, compile_s, run_s, num_devices, plan.num_calls, total, plan.env_devices
    )


def _run_chunked(
    static: StaticConfig,
    plan: LanePlan,
    reporter: CallWatcher | None,
    ck: Checkpointing | None,
    interrupted: Callable[[], bool],
    often: bool,
) -> LaneOutput:
    """All lanes in compiled chunks of iterations (every call of the lane plan), with no
    host callback in the program, so JAX's persistent cache can hold it. With `often`,
    chunks of at most `log_every` iterations (`stop_within`; a run that reports or can be
    stopped), the host handing every `log_every` iterations to the active sinks
    (`vecpg.run.progress.emit`, a no-op with none) between chunks; else chunks of
    `ck.every`. With `ck`, a checkpoint of all lanes' full state and the metrics so far
    every `ck.every` iterations. A stop request is honoured between chunks, except once
    the last chunk of every call is computed (`vecpg.run.interrupt.finishing`)."""
    from vecpg.run.interrupt import StopRequested, finishing, stop_within
    from vecpg.run.progress import emit

    total = static.num_iterations
    if often:
        length = stop_within(total, static.log_every, ck.every if ck else 0)
    else:
        assert ck is not None
        length = min(ck.every, total)
    t0 = time.perf_counter()
    # In a worker, so that a Ctrl-C while compiling is acknowledged at once.
    init, run = call_in_worker(
        lambda: compiled_chunk(static, plan.chunk, length, plan.env_devices), never, 0
    )
    compile_s = time.perf_counter() - t0
    sharding = runs_sharding(plan.env_devices)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    calls = [_inputs(plan, c, sharding) for c in range(plan.num_calls)]
    states = [init(k, hp) for k, hp, _ in calls]
    metrics: dict[str, np.ndarray] = {}
    done = 0
    like, treedef = jax.tree.flatten(states)  # which leaves are typed PRNG keys
    restored = ck.store.restore(jax.tree.leaves(_key_data(states))) if ck else None
    rings = [
        HostRing(static.log_every, plan.lane_ids[plan.call_slice(c)]) for c in range(len(calls))
    ]
    if restored is not None:
        done, saved, metrics = restored
        leaves = [
            jax.random.wrap_key_data(x) if _is_key(t) else x
            for t, x in zip(like, saved, strict=True)
        ]
        states = jax.tree.unflatten(treedef, leaves)
    if reporter:
        reporter.start(done * static.batch_size * plan.num_lanes)
    resumed_at = kept = done  # kept: iterations in the latest checkpoint
    t0 = time.perf_counter()
    while done < total:
        parts = []
        last_round = done + length >= total
        for c, (_, hp, lanes) in enumerate(calls):
            if interrupted():
                raise TrainingInterrupted(kept)
            if reporter:
                reporter.expect(plan.real_lanes(c))
            start = jax.device_put(jnp.int32(done), replicated)

            def call(c=c, hp=hp, lanes=lanes, start=start):
                state, m = run(states[c], hp, lanes, start)
                return state, _to_host(m)

            states[c], m = call_in_worker(call, interrupted, kept)
            if last_round and c == len(calls) - 1:
                finishing()  # every iteration is computed: a stop discards nothing now
            m = {k: v[:, : total - done] for k, v in m.items()}
            parts.append(m)
            if often and rings[c].add(done, m, total):
                try:
                    emit(*rings[c].flush())  # a first Ctrl-C stops here
                except StopRequested:
                    raise TrainingInterrupted(kept) from None
        new = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
        metrics = new if not metrics else {k: np.concatenate([metrics[k], new[k]], 1) for k in new}
        done = min(done + length, total)
        if ck and (done % ck.every == 0 or done == total):
            ck.store.save(done, jax.tree.leaves(_key_data(states)), metrics)
            kept = done
    run_s = time.perf_counter() - t0
    params = jax.tree.map(lambda *xs: np.concatenate(xs), *_to_host([s.params for s in states]))
    params = jax.tree.map(lambda x: x[: plan.num_lanes], params)
    metrics = {k: v[: plan.num_lanes] for k, v in metrics.items()}
    num_devices = _num_devices(states[0].params)
    ran = total - resumed_at
    return LaneOutput(
        params, metrics, compile_s, run_s, num_devices, plan.num_calls, ran, plan.env_devices
    )
