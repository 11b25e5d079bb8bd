"""Per-program XLA options: CPU fast math keeps NaN/inf semantics, reaches the training
program, and is chosen by the config (off: XLA's IEEE-strict defaults)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import vecpg
from vecpg.training.xla_options import (
    CPU_FAST_MATH,
    CPU_IR_EMITTERS,
    CPU_OPT_LEVEL,
    GPU_NO_AUTOTUNE,
    compiler_options,
    known_options,
)


def test_options_follow_flags_and_backend():
    assert compiler_options(True, backend="cpu") == CPU_FAST_MATH
    assert compiler_options(False, backend="cpu") is None
    assert compiler_options(True, gpu_autotune=False, backend="cpu") == CPU_FAST_MATH
    assert compiler_options(True, gpu_autotune=True, backend="gpu") is None
    assert compiler_options(True, gpu_autotune=False, backend="gpu") == GPU_NO_AUTOTUNE
    # LLVM's level: only off XLA's default, only on CPU
    assert compiler_options(False, backend="cpu", cpu_opt_level=1) == {CPU_OPT_LEVEL: 1}
    assert compiler_options(True, backend="cpu", cpu_opt_level=1) == {
        **CPU_FAST_MATH,
        CPU_OPT_LEVEL: 1,
    }
    assert compiler_options(False, backend="cpu", cpu_opt_level=2) is None
    assert compiler_options(True, gpu_autotune=True, backend="gpu", cpu_opt_level=1) is None
    # XLA CPU's IR emitters instead of its (default) MLIR fusion emitters: CPU only
    assert compiler_options(False, backend="cpu", cpu_fusion_emitters=False) == CPU_IR_EMITTERS
    assert compiler_options(False, backend="cpu", cpu_fusion_emitters=True) is None
    assert compiler_options(False, backend="gpu", cpu_fusion_emitters=False) is None
    assert known_options(tuple(CPU_IR_EMITTERS.items())) == tuple(CPU_IR_EMITTERS.items())


def test_unknown_options_are_dropped():
    """An option a future XLA no longer knows must not break every compile."""
    wanted = (("xla_cpu_enable_fast_math", True), ("xla_cpu_no_such_option_here", True))
    assert known_options(wanted) == (("xla_cpu_enable_fast_math", True),)


def test_fast_math_keeps_nan_inf_and_division():
    """What the non-finite guard and the log-probabilities rely on, compiled both ways."""

    def guard(x):
        y = x * 3.0 + 1.0
        ok = jnp.isfinite(y)
        return ok, jnp.where(ok, y, 0.0), jnp.log(x), 1.0 / x, jnp.max(y)

    x = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 0.0, 2.0], jnp.float32)
    fast = jax.jit(guard, compiler_options=CPU_FAST_MATH)(x)
    strict = jax.jit(guard)(x)
    np.testing.assert_array_equal(fast[0], [False, False, False, True, True])
    np.testing.assert_array_equal(fast[1], [0.0, 0.0, 0.0, 1.0, 7.0])
    for a, b in zip(fast, strict, strict=True):
        np.testing.assert_array_equal(a, b)  # NaN where strict has NaN, inf where inf
    assert np.isnan(fast[4])  # a max over a NaN stays NaN


def test_flag_reaches_the_training_program():
    """Fast math moves the last bits (so the option is applied) and nothing more: the
    first iteration agrees to float tolerance with the IEEE-strict program."""
    cfg = vecpg.TrainConfig(env="gymnax/CartPole-v1", num_envs=8, num_steps=32, total_steps=3 * 256)
    fast = vecpg.train(cfg, seeds=[0]).metrics
    strict = vecpg.train(dataclasses.replace(cfg, cpu_fast_math=False), seeds=[0]).metrics
    assert any(not np.array_equal(fast[k], strict[k]) for k in fast)
    for k in ("kl_new_old", "value_loss", "policy_loss", "entropy"):
        np.testing.assert_allclose(fast[k][:, 0], strict[k][:, 0], rtol=1e-4, atol=1e-7)


def test_run_dirs_saved_before_the_fields_keep_their_numerics(tmp_path):
    """A config.json written before cpu_fast_math/gpu_autotune/cpu_opt_level/
    cpu_fusion_emitters existed was compiled IEEE-strict, with XLA's autotuning, LLVM
    level and fusion emitters: resume and eval must rebuild that program."""
    import json

    from vecpg.run.rundir import read_config

    old = vecpg.TrainConfig().to_dict()
    fields = ("cpu_fast_math", "gpu_autotune", "cpu_opt_level", "cpu_fusion_emitters")
    for name in fields:
        del old[name]
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = read_config(tmp_path)
    assert tuple(getattr(cfg, name) for name in fields) == (False, True, 2, True)
    (tmp_path / "config.json").write_text(json.dumps(vecpg.TrainConfig().to_dict()))
    cfg = read_config(tmp_path)
    assert tuple(getattr(cfg, name) for name in fields) == (True, False, 1, True)
