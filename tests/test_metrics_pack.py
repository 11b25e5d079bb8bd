"""The iterations scan stacks metrics packed per dtype; unpacked they are the metrics
stacked one by one (names, dtypes, values and the lanes-first layout)."""

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.training.trainer import pack_metrics, unpack_metrics


def test_packed_metrics_unpack_to_the_per_metric_stacks():
    rng = np.random.default_rng(0)
    steps = []  # T = 3 iterations of R = 2 lanes
    for _ in range(3):
        steps.append(
            {
                "value_loss": jnp.asarray(rng.normal(size=2), jnp.float32),
                "entropy": jnp.asarray(rng.normal(size=2), jnp.float32),
                "episodes": jnp.asarray(rng.integers(0, 9, size=2), jnp.int32),
                "per_layer": jnp.asarray(rng.normal(size=(2, 4)), jnp.float32),  # not [R]
            }
        )
    shapes = jax.eval_shape(lambda m: m, steps[0])
    packed = jax.tree.map(lambda *xs: jnp.stack(xs), *[pack_metrics(m) for m in steps])
    assert sorted(packed) == ["packed:float32", "packed:int32", "per_layer"]
    assert packed["packed:float32"].shape == (3, 2, 2)  # [T, R, M]: two float metrics
    got = unpack_metrics(packed, shapes)
    assert sorted(got) == sorted(steps[0])
    for name in steps[0]:
        want = np.moveaxis(np.stack([np.asarray(m[name]) for m in steps]), 0, 1)  # [R, T, ...]
        assert got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)
