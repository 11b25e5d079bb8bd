"""The restructuring changed no number: ppo and trpo on CartPole (2 seeds x 20
iterations, one compiled call) reproduce the metrics recorded before it, bit for bit."""

import jax
import numpy as np
import pytest

from tests.golden.make_golden import GOLDEN, record


@pytest.mark.skipif(jax.device_count() != 1, reason="golden file recorded on 1 XLA device")
def test_metrics_equal_golden_file():
    want = np.load(GOLDEN)
    got = record()
    assert sorted(got) == sorted(want.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
