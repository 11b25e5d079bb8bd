"""No refactoring changes a number: ppo and trpo on CartPole (2 seeds x 20 iterations,
one compiled call) reproduce the recorded metrics bit for bit. Recorded before the
0.2 restructuring; re-recorded when trpo moved to KL(old || new) and centred advantages
(ppo's metrics were bit-identical across that re-recording), and when the learning rate
stopped annealing by default (the code of that day reproduced the previous file first),
and when advantage normalisation moved from the losses to the minibatch builder (every
series stayed bit-identical but ppo/policy_loss, whose reported value moved by <1e-4
relative: the gradients, hence the run, did not change).

The file holds for one XLA CPU device: float rounding depends on the device count (even
with one lane per device), and vecpg uses every core by default, so the recording runs
in a child process with VECPG_CPU_DEVICES=1."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import vecpg
from tests.golden.make_golden import CONFIGS, GOLDEN

ROOT = Path(__file__).parents[1]


def test_metrics_equal_golden_file(tmp_path):
    want = np.load(GOLDEN)
    out = tmp_path / "got.npz"
    code = (
        "import numpy as np; from tests.golden.make_golden import record; "
        f"np.savez({str(out)!r}, **record())"
    )
    env = {**os.environ, "VECPG_CPU_DEVICES": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    got = dict(np.load(out))
    assert sorted(got) == sorted(want.files)
    assert not got["ppo/diverged"].any() and not got["trpo/diverged"].any()
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_make_train_is_the_program_train_runs():
    """The public core, jitted by hand, gives the numbers `vecpg.train` gives (up to float
    rounding: vecpg.train shards the lanes over every CPU device)."""
    cfg = next(iter(CONFIGS.values()))
    fns = vecpg.make_train(cfg.static())
    hp = jax.tree.map(lambda x: jnp.stack([x, x]), cfg.hparams())
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    train = jax.jit(fns.train, static_argnums=3, compiler_options=vecpg.program_options(cfg))
    _, metrics = train(keys, hp, jnp.arange(2), cfg.num_iterations)
    want = vecpg.train(cfg, seeds=[0, 1]).metrics
    for name, value in want.items():
        np.testing.assert_allclose(
            np.asarray(metrics[name]), value, rtol=1e-5, atol=1e-6, err_msg=name
        )
