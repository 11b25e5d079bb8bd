"""Run many lanes (seeds x hyperparameter configs) of one static config: ONE compiled
`jit(vmap(train))`, its runs axis sharded over every device (a Mesh with a
NamedSharding), chunked when `max_runs_per_call` is set.

Multi-host: call `jax.distributed.initialize()` first and run the same program on every
host. Inputs are built with `jax.make_array_from_callback` from the full (deterministic)
lane list each host holds, and results are gathered with `process_allgather`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vecpg.config import HParams, StaticConfig, TrainConfig
from vecpg.progress import ProgressReporter, reporting


class LaneOutput(NamedTuple):
    params: Any  # numpy leaves [R, ...]
    metrics: dict[str, np.ndarray]  # [R, iterations]
    compile_s: float
    run_s: float
    num_devices: int  # devices the runs axis was spread over
    num_calls: int  # compiled calls made (chunks)


def runs_sharding() -> NamedSharding:
    mesh = Mesh(np.asarray(jax.devices()), ("runs",))
    return NamedSharding(mesh, PartitionSpec("runs"))


def _train_from_key_data(train_fn, key_data: jax.Array, hp: HParams):
    return train_fn(jax.random.wrap_key_data(key_data), hp)


@functools.lru_cache(maxsize=16)
def compiled_train(static: StaticConfig, num_runs: int):
    """jit(vmap(train)) for `num_runs` lanes (a multiple of the device count), runs axis
    sharded over all devices; cached per (static config, lanes).

    The program always carries the progress callback (`vecpg.progress.emit`): one host
    call per lane every `log_every` iterations, a no-op with no reporter active.
    """
    from vecpg.progress import emit
    from vecpg.trainer import make_train

    sharding = runs_sharding()
    fn = functools.partial(_train_from_key_data, make_train(static, emit))
    jitted = jax.jit(jax.vmap(fn), in_shardings=sharding, out_shardings=sharding)
    key_data = jax.random.key_data(jax.random.key(0))
    keys = jax.ShapeDtypeStruct((num_runs, *key_data.shape), key_data.dtype, sharding=sharding)
    hp = jax.tree.map(
        lambda _: jax.ShapeDtypeStruct((num_runs,), jnp.float32, sharding=sharding),
        TrainConfig().hparams(),
    )
    return jitted.lower(keys, hp).compile()


def _global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _to_host(tree: Any) -> Any:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def run_lanes(
    static: StaticConfig,
    seeds: list[int],
    hparams: list[HParams],
    max_runs_per_call: int | None = None,
    progress: bool = False,
    steps_per_lane: int = 0,
) -> LaneOutput:
    """Train lane i with seed `seeds[i]` and hyperparameters `hparams[i]`.

    Lanes are padded (repeating the last one) to a multiple of the device count and of
    the chunk size, so every call has the same shape and compiles once.
    """
    num_lanes = len(seeds)
    ndev = jax.device_count()
    chunk = min(num_lanes, max_runs_per_call or num_lanes)
    chunk = math.ceil(chunk / ndev) * ndev
    num_calls = math.ceil(num_lanes / chunk)
    padded = num_calls * chunk
    order = list(range(num_lanes)) + [num_lanes - 1] * (padded - num_lanes)
    key_data = np.stack([np.asarray(jax.random.key_data(jax.random.key(seeds[i]))) for i in order])
    hp_all = jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *[hparams[i] for i in order])

    t0 = time.perf_counter()
    fn = compiled_train(static, chunk)
    compile_s = time.perf_counter() - t0
    sharding = runs_sharding()
    outs = []
    t0 = time.perf_counter()
    for c in range(num_calls):
        sl = slice(c * chunk, (c + 1) * chunk)
        reporter = ProgressReporter(chunk, steps_per_lane)
        with reporting(reporter) if progress else contextlib.nullcontext():
            if progress:
                reporter.start()
            state, metrics = fn(
                _global(key_data[sl], sharding),
                jax.tree.map(lambda x: _global(x[sl], sharding), hp_all),
            )
            num_devices = len(jax.tree.leaves(metrics)[0].sharding.device_set)
            outs.append(_to_host((state.params, metrics)))
    run_s = time.perf_counter() - t0
    params, metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[:num_lanes], *outs)
    return LaneOutput(params, metrics, compile_s, run_s, num_devices, num_calls)
