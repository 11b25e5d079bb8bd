"""Will a run fit? A cheap estimate before compiling, from shapes alone.

Per lane, the device holds the training state (params, optimiser states, normaliser, env
states: exact, from `jax.eval_shape` of `init`), one iteration's working set (the [T, B]
trajectory and the flat batch with its per-epoch shuffled copies: estimated as
WORKING_SET_COPIES copies of the trajectory) and the metrics of every iteration. The host
holds the metrics again. Too big for one call: the lanes run in equal calls of the same
program (as --max-runs-per-call does); too big even for one lane per call, or for the
host's copy of the metrics: one line with the estimate and the limit.

Devices with memories of their own (GPUs) add up; CPU devices all live in the one host
RAM, which counts once however many devices it is split into (`fit_lanes(shared=True)`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from vecpg.config import HParams, StaticConfig
from vecpg.errors import ConfigError

WORKING_SET_COPIES = 8  # trajectory, batch, shuffled minibatches, gradients, temporaries
USABLE_FRACTION = 0.7  # of the available memory; XLA and Python need the rest
RECURRENT_STATES = {"gru": 6, "lstm": 10}  # [H] vectors per step a core keeps, at most
NUM_METRICS_BOUND = 40  # metrics per iteration (at most; ppo logs ~20, trpo ~25)


class LaneBytes(NamedTuple):
    device: int  # per lane on the device, during the run
    host: int  # per lane on the host, for the results


def lane_bytes(static: StaticConfig, hp: HParams) -> LaneBytes:
    """The per-lane estimate described in the module docstring."""
    from vecpg.training.execute import train_fns

    init = train_fns(static).init
    state = jax.eval_shape(init, jax.random.key(0), hp)
    state_bytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(state))
    env_state = state.env_state
    obs_size = int(np.prod(env_state.obs.shape[1:]))
    per_step = (2 * obs_size + 16) * 4  # obs, next obs, action, reward, flags, log-probs
    if static.memory != "none":  # each core's states at every step, kept for the
        # backward pass through time (an LSTM's gates and cell state: more of them)
        per_step += 2 * RECURRENT_STATES[static.memory] * static.memory_size * 4
    working = WORKING_SET_COPIES * static.num_steps * static.num_envs * per_step
    metrics = static.num_iterations * NUM_METRICS_BOUND * 4
    return LaneBytes(state_bytes + working + metrics, metrics)


def available_bytes() -> tuple[int, str]:
    """Free memory of the first device (GPU: its allocator's limit minus use; CPU: the
    host's MemAvailable) and what it is."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"{dev.device_kind} memory"
    return host_available_bytes(), "host memory"


def host_available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 16 * 2**30  # unknown: assume a modest machine


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def fit_lanes(
    per_lane: LaneBytes,
    num_lanes: int,
    max_runs_per_call: int | None,
    device_free: int,
    host_free: int,
    num_devices: int = 1,
    what: str = "host memory",
    *,
    shared: bool = False,
) -> tuple[int | None, str | None]:
    """(max_runs_per_call to use, a one-line note when it was chosen here). Raises
    ConfigError when even one lane per device, or the results, cannot fit.

    `device_free`: the free memory of one device, or with `shared` (CPU devices, all in
    the host's RAM) of the one memory every device uses; the usable budget for all lanes
    of a call is USABLE_FRACTION of `device_free` x `num_devices`, or of `device_free`
    alone when `shared`."""
    device_budget = USABLE_FRACTION * device_free * (1 if shared else num_devices)
    host_budget = USABLE_FRACTION * host_free
    if per_lane.host * num_lanes > host_budget:
        raise ConfigError(
            f"invalid seeds: the results of {num_lanes} runs need about "
            f"{gib(per_lane.host * num_lanes)} of host memory, over the {gib(host_budget)} "
            "usable; run fewer seeds or grid points, or fewer iterations"
        )
    if per_lane.device * num_devices > device_budget:
        share = f" (each of {num_devices} devices' share)" if shared and num_devices > 1 else ""
        raise ConfigError(
            f"invalid config: one run needs about {gib(per_lane.device)} of {what}, over the "
            f"{gib(device_budget / num_devices)} usable{share}; use fewer envs or steps, or a "
            "smaller network"
        )
    lanes_per_call = min(num_lanes, max_runs_per_call or num_lanes)
    if per_lane.device * lanes_per_call <= device_budget:
        return max_runs_per_call, None
    fit = int(device_budget // per_lane.device)
    fit = max(num_devices, fit // num_devices * num_devices)
    calls = math.ceil(num_lanes / fit)
    note = (
        f"vecpg: {lanes_per_call} runs per call need about "
        f"{gib(per_lane.device * lanes_per_call)} of {what} ({gib(device_budget)} usable): "
        f"running {calls} calls of {fit} (--max-runs-per-call {fit}); each run keeps its "
        "device layout, results equal to float32 rounding"
    )
    return fit, note
