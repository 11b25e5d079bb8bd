"""No refactoring changes a number: ppo and trpo on CartPole (2 seeds x 20 iterations,
one compiled call) reproduce the recorded metrics bit for bit. Recorded before the
0.2 restructuring; re-recorded once when trpo moved to KL(old || new) and centred
advantages (ppo's metrics were bit-identical across that re-recording)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vecpg
from tests.golden.make_golden import CONFIGS, GOLDEN, record


@pytest.mark.skipif(jax.device_count() != 1, reason="golden file recorded on 1 XLA device")
def test_metrics_equal_golden_file():
    want = np.load(GOLDEN)
    got = record()
    assert sorted(got) == sorted(want.files)
    assert not got["ppo/diverged"].any() and not got["trpo/diverged"].any()
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_make_train_is_the_program_train_runs():
    """The public core, jitted by hand, gives the numbers `vecpg.train` gives."""
    cfg = next(iter(CONFIGS.values()))
    fns = vecpg.make_train(cfg.static())
    hp = jax.tree.map(lambda x: jnp.stack([x, x]), cfg.hparams())
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    _, metrics = jax.jit(fns.train, static_argnums=3)(keys, hp, jnp.arange(2), cfg.num_iterations)
    want = vecpg.train(cfg, seeds=[0, 1]).metrics
    for name, value in want.items():
        np.testing.assert_allclose(np.asarray(metrics[name]), value, rtol=1e-5, err_msg=name)
