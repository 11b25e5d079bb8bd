"""vecpg uses every CPU core by default (one XLA CPU device per core), unless the user
chose a device count: VECPG_CPU_DEVICES, XLA_FLAGS or JAX_NUM_CPU_DEVICES."""

import os
import subprocess
import sys

import pytest

from vecpg.cores import cpu_devices_wanted

FORCE_3 = "--xla_force_host_platform_device_count=3"


@pytest.mark.parametrize(
    ("environ", "want"),
    [
        ({}, 8),  # the default: one device per core
        ({"VECPG_CPU_DEVICES": "1"}, 1),  # the opt-out
        ({"VECPG_CPU_DEVICES": "5"}, 5),
        ({"XLA_FLAGS": f"--xla_cpu_foo=1 {FORCE_3}"}, None),  # the user's own count stays
        ({"JAX_NUM_CPU_DEVICES": "3"}, None),
        ({"XLA_FLAGS": "--xla_cpu_foo=1"}, 8),  # other XLA flags do not count
    ],
)
def test_cpu_devices_wanted(environ, want):
    assert cpu_devices_wanted(environ, cores=8) == want


@pytest.mark.parametrize("raw", ["0", "-2", "two", ""])
def test_bad_cpu_devices_names_the_variable(raw):
    with pytest.raises(ValueError, match=f"^VECPG_CPU_DEVICES='{raw}': expected a positive"):
        cpu_devices_wanted({"VECPG_CPU_DEVICES": raw}, cores=8)


def device_count(**environ: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VECPG_CPU_DEVICES")}
    code = "import vecpg, jax; print(jax.device_count())"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **environ},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


def test_import_sets_the_device_count_before_jax_starts():
    assert device_count() == len(os.sched_getaffinity(0))
    assert device_count(VECPG_CPU_DEVICES="3") == 3
    assert device_count(XLA_FLAGS=FORCE_3, VECPG_CPU_DEVICES="1") == 1  # vecpg's own wins
    assert device_count(XLA_FLAGS=FORCE_3) == 3
