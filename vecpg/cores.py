"""Every CPU core by default: one XLA CPU device keeps only about one core busy, so vecpg
asks JAX for one CPU device per core (`jax_num_cpu_devices`) when it is imported, before
JAX starts its backends. Lanes (seeds x grid points) are then sharded over the devices.

Left alone when the user chose already: `VECPG_CPU_DEVICES=N` (N=1 opts out),
`--xla_force_host_platform_device_count` in XLA_FLAGS, `JAX_NUM_CPU_DEVICES`, or a JAX
whose backends already run (jax used before vecpg was imported). On a GPU or TPU machine
the CPU devices are not used for training, so the setting changes nothing there.
"""

from __future__ import annotations

import os

import jax
from jax._src import xla_bridge

ENV_VAR = "VECPG_CPU_DEVICES"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_devices_wanted(environ: dict[str, str] | os._Environ[str], cores: int) -> int | None:
    """How many CPU devices vecpg should ask for, or None to leave JAX's choice alone.
    One line if VECPG_CPU_DEVICES is not a positive integer."""
    raw = environ.get(ENV_VAR)
    if raw is not None:
        if not raw.strip().isdigit() or int(raw) < 1:
            raise ValueError(f"{ENV_VAR}={raw!r}: expected a positive integer (1 opts out)")
        return int(raw)
    if "xla_force_host_platform_device_count" in environ.get("XLA_FLAGS", ""):
        return None
    if "JAX_NUM_CPU_DEVICES" in environ:
        return None
    return cores


def use_all_cores() -> int | None:
    """Set `jax_num_cpu_devices` as `cpu_devices_wanted` says, when JAX still allows it.
    Returns the count set, or None when the choice was left to JAX."""
    wanted = cpu_devices_wanted(os.environ, available_cores())
    if wanted is None or xla_bridge.backends_are_initialized():
        return None
    if xla_bridge.num_cpu_devices.value not in (-1, wanted):  # set in code by the user
        return None
    jax.config.update("jax_num_cpu_devices", wanted)
    return wanted
