"""Per-program XLA compiler options, chosen by the static config.

`cpu_fast_math` lets XLA CPU reassociate float arithmetic, ignore the sign of zero and
contract multiply-adds into FMAs, while NaN and inf, exact division and the library
functions (exp, log, tanh, sin...) keep their IEEE semantics, so the non-finite guard
and every log-probability are computed as written. On CPU it steps brax hopper's
positional physics 1.3x faster and inverted_pendulum's generalized physics no faster
(BENCHMARKS.md); results move in the last bits, so it is part of the config (the same
config still gives the same numbers).

`gpu_autotune` False (the default) turns off XLA's GEMM and fusion autotuning on GPU:
measured on an H100 it cut compiles by 10-19% with env steps/s within 1% (vecpg's
matmuls are small), and kernels are no longer chosen by timing, which can differ
between two machines.

`cpu_opt_level` sets LLVM's optimisation level for XLA CPU's code generation (XLA's
default is 2). Measured 2026-11-30 on an idle 2-core AMD EPYC, compile cache off, the
run program of 5 iterations at 64 envs x 64 steps, 2 lanes, in one process: level 1
compiled brax hopper (positional) in 30.4 s against 38.1 s with the same speed (1.23 s
against 1.27 s for the 5 iterations), CartPole in 7.2 s against 7.8-8.7 s,
inverted_pendulum (generalized) in 16.1 s against 16.4 s; level 0 compiled hopper in
20.5 s but ran it 8x slower. The hopper breakdown of 2026-12-01
(experiments/results/compile_breakdown.md) measured a smaller gain on the whole run
program (37.0 -> 35.4 s) and a larger one on the env step program alone (16.2 -> 10.0
s). Results move in the last bits.

`cpu_fusion_emitters` False has XLA CPU generate each fused kernel with its LLVM IR
emitters instead of its MLIR fusion emitters (XLA's default, kept by default). Every
kernel the MLIR emitters build pays its own MLIR context and pass pipeline, and vecpg's
programs hold hundreds of small kernels, so the IR emitters compile 30-40% faster; the
code they generate runs slower. Measured 2026-12-01 on an idle 2-core AMD EPYC, compile
cache off (`experiments/results/compile_breakdown.md`): brax hopper (positional) 64 x 64
ran its training iterations (2 lanes) at 0.96x the env steps/s and compiled them in
19.8 s against 27.7 s; inverted_pendulum (generalized) trained 1 seed at 0.93x and
compiled in 10.9 s against 17.3 s (a `vecpg bench` run
later read 0.64x Brax PPO's env steps/s with them, 1.26x without); the CartPole demo
compiled in 7.2-8.6 s against 10.9-12.0 s and ran 1.6x longer. Worth it for short runs
(many study cells or search trials of a few hundred thousand steps), not for long ones.
Results move in the last bits.

The options ride on each vecpg program (`jax.jit(..., compiler_options=)`), never on
the process: a peer compiled in the same process (Brax PPO in `vecpg bench`) keeps
XLA's defaults. An option this XLA does not know is dropped, not an error.
"""

from __future__ import annotations

import functools
from typing import Protocol

import jax

CPU_FAST_MATH: dict[str, bool | int] = {
    "xla_cpu_enable_fast_math": True,
    "xla_cpu_fast_math_honor_nans": True,
    "xla_cpu_fast_math_honor_infs": True,
    "xla_cpu_fast_math_honor_division": True,
    "xla_cpu_fast_math_honor_functions": True,
}
CPU_OPT_LEVEL = "xla_backend_optimization_level"
CPU_IR_EMITTERS: dict[str, bool | int] = {"xla_cpu_use_fusion_emitters": False}
GPU_NO_AUTOTUNE: dict[str, bool | int] = {
    "xla_gpu_autotune_level": 0,
    "xla_gpu_experimental_enable_fusion_autotuner": False,
}


def compiler_options(
    cpu_fast_math: bool,
    gpu_autotune: bool = True,
    backend: str | None = None,
    cpu_opt_level: int = 2,
    cpu_fusion_emitters: bool = True,
) -> dict[str, bool | int] | None:
    """The options for one program compiled for `backend` (default: JAX's default
    backend); None means XLA's defaults."""
    backend = backend or jax.default_backend()
    wanted: dict[str, bool | int] = {}
    if backend == "cpu":
        if cpu_fast_math:
            wanted.update(CPU_FAST_MATH)
        if cpu_opt_level != 2:
            wanted[CPU_OPT_LEVEL] = cpu_opt_level
        if not cpu_fusion_emitters:
            wanted.update(CPU_IR_EMITTERS)
    elif backend in ("gpu", "cuda", "rocm") and not gpu_autotune:
        wanted.update(GPU_NO_AUTOTUNE)
    return dict(known_options(tuple(wanted.items()))) or None


class HasOptionFields(Protocol):
    @property
    def cpu_fast_math(self) -> bool: ...
    @property
    def cpu_opt_level(self) -> int: ...
    @property
    def cpu_fusion_emitters(self) -> bool: ...
    @property
    def gpu_autotune(self) -> bool: ...


def program_options(config: HasOptionFields) -> dict[str, bool | int] | None:
    """`compiler_options` of a StaticConfig or TrainConfig."""
    return compiler_options(
        config.cpu_fast_math,
        config.gpu_autotune,
        cpu_opt_level=config.cpu_opt_level,
        cpu_fusion_emitters=config.cpu_fusion_emitters,
    )


@functools.cache
def known_options(options: tuple[tuple[str, bool | int], ...]) -> tuple:
    """The options this XLA accepts, tried on a trivial program once a process: all at
    once, then one by one only if XLA refuses some."""
    if not options or _accepted(dict(options)):
        return options
    return tuple(item for item in options if _accepted(dict([item])))


def _accepted(option: dict[str, bool | int]) -> bool:
    try:
        jax.jit(lambda: 0, compiler_options=option).lower().compile()
    except Exception as e:  # XLA: INVALID_ARGUMENT "No such compile option"
        if "compile option" not in str(e):
            raise
        return False
    return True
