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


def test_the_host_callback_gets_every_metric_of_every_iteration_unpacked():
    """The in-program progress callback's buffer is packed like the outputs and unpacked
    on the host: every call hands over each metric [log_every, R] as the run returns it."""
    from vecpg.config import TrainConfig
    from vecpg.training.trainer import make_train

    cfg = TrainConfig(env="gymnax/CartPole-v1", num_envs=2, num_steps=4, total_steps=5 * 8,
                      log_every=2, hidden=(8,))  # fmt: skip
    calls = []

    def progress(lanes, iteration, buffer):
        calls.append((np.asarray(lanes).tolist(), int(iteration), dict(buffer)))

    fns = make_train(cfg.static(), progress)
    hp = jax.tree.map(lambda x: jnp.full(2, x), cfg.hparams())
    state = jax.vmap(fns.init)(jax.random.split(jax.random.key(0), 2), hp)
    lanes = jnp.array([7, 9], jnp.int32)
    _, metrics = jax.jit(lambda s: fns.run(s, hp, lanes, jnp.int32(0), length=5))(state)
    jax.effects_barrier()
    assert [(ls, it) for ls, it, _ in calls] == [([7, 9], 1), ([7, 9], 3), ([7, 9], 4)]
    for _, it, buffer in calls:
        assert sorted(buffer) == sorted(metrics)
        slots = [i % 2 for i in range(it - it % 2, it + 1)]
        for name, m in metrics.items():
            assert buffer[name].shape == (2, 2), name  # [log_every, R]
            got = np.asarray(buffer[name])[slots]
            want = np.asarray(m)[:, it - it % 2 : it + 1].T
            np.testing.assert_array_equal(got, want, err_msg=name)
