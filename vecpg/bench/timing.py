"""The bench's one timer and its one description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax


def cpu_model() -> str:
    """The host CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def machine() -> str:
    """'CPU: <model>, <n> cores' or '<PLATFORM>: <device kind>' of the first device."""
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"CPU: {cpu_model()}, {os.cpu_count()} cores"
    return f"{dev.platform.upper()}: {dev.device_kind}"


def median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> float:
    """Median wall time of fn() (blocked until ready) over `repeats`, after one untimed
    warm-up call unless `warmup` is False."""
    if warmup:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times))
