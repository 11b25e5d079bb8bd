"""JAX's compile timers as the bench reads them: the union of overlapping spans, and
real spans named after the program compiled inside the block (and none outside it)."""

import jax
import jax.numpy as jnp
import pytest

from vecpg.bench.compile_log import CompileLog, Span, compile_log


def test_wall_is_the_union_of_the_spans_and_programs_are_found_by_name():
    log = CompileLog(
        [
            Span("trace", "step", 0.0, 2.0),
            Span("trace", "inner", 1.0, 1.5),  # nested in the trace above: not counted again
            Span("lower", "jit(step)", 2.0, 3.0),  # touches it
            Span("xla", "jit(step)", 3.0, 7.0),
            Span("xla", "jit(other)", 10.0, 11.5),  # apart
            Span("xla", "jit(step)", 6.0, 8.0),  # overlaps the first compile by 1 s
        ]
    )
    assert log.wall_s() == pytest.approx(8.0 + 1.5)
    assert log.wall_s("xla") == pytest.approx(5.0 + 1.5)
    assert log.wall_s("trace") == pytest.approx(2.0)
    assert log.program_s("step") == pytest.approx(8.0)  # trace, lower, both compiles
    assert log.program_s("other") == pytest.approx(1.5)
    assert log.program_s("absent") == 0.0
    assert log.xla_s_by_program() == pytest.approx({"jit(step)": 6.0, "jit(other)": 1.5})


def test_records_the_programs_compiled_inside_the_block_only():
    def scaled_sum_for_compile_log_test(x):
        return jnp.sum(x * 3.0)

    with compile_log() as log:
        jax.jit(scaled_sum_for_compile_log_test)(jnp.ones(5))
    jax.jit(lambda x: x - 1.0)(jnp.ones(7))  # after the block: not recorded
    phases = {(s.phase, s.program) for s in log.spans}
    name = "scaled_sum_for_compile_log_test"
    assert ("xla", f"jit({name})") in phases
    assert ("trace", name) in phases
    assert log.program_s(name) > 0
    assert all("lambda" not in s.program for s in log.spans)
    summary = log.summary()
    assert summary["total_s"] >= summary["xla_s"] > 0
