"""JAX's own compile timers, collected per program while a block of code runs.

JAX reports three timed phases of every program it compiles through `jax.monitoring`:
tracing to a jaxpr, lowering the jaxpr to an MLIR module, and XLA's backend compile.
`compile_log()` records them (with each program's name) for the duration of a `with`
block, so the bench can put the same yardstick on vecpg and on a peer trainer run in the
same process: every program each one compiles, however it structures its programs
(vecpg: an init and a run program; Brax PPO: a reset, a training epoch, evaluators...).

Nested traces (a jitted env step traced inside the rollout's trace) overlap in time;
`CompileLog.wall_s` is the length of the union of all recorded spans, so nothing is
counted twice.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

from jax import monitoring

TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
XLA = "/jax/core/compile/backend_compile_duration"
PHASES = {TRACE: "trace", LOWER: "lower", XLA: "xla"}


@dataclass
class Span:
    phase: str  # "trace", "lower" or "xla"
    program: str  # JAX's name for the function compiled
    start: float  # time.time() seconds
    end: float


@dataclass
class CompileLog:
    """The compile spans recorded while the log was active."""

    spans: list[Span] = field(default_factory=list)

    def wall_s(self, phase: str | None = None) -> float:
        """Seconds covered by the union of the spans (of one phase, or of all)."""
        total, covered_to = 0.0, float("-inf")
        for start, end in sorted((s.start, s.end) for s in self.spans if phase in (None, s.phase)):
            if end > covered_to:  # count only the part past what is covered already
                total += end - max(start, covered_to)
                covered_to = end
        return total

    def xla_s_by_program(self) -> dict[str, float]:
        """XLA backend-compile seconds per program name (summed over same-named ones)."""
        out: dict[str, float] = {}
        for s in self.spans:
            if s.phase == "xla":
                out[s.program] = out.get(s.program, 0.0) + (s.end - s.start)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def program_s(self, name: str) -> float:
        """Seconds (trace, lower and XLA compile together) spent on programs called
        `name` (JAX's trace events name the function, its other events `jit(name)` or
        `pmap(name)`)."""
        names = {name, f"jit({name})", f"pmap({name})"}
        return CompileLog([s for s in self.spans if s.program in names]).wall_s()

    def summary(self) -> dict[str, object]:
        """Seconds of trace, lower and XLA compile, their union, and XLA s per program."""
        return {
            "trace_s": round(self.wall_s("trace"), 3),
            "lower_s": round(self.wall_s("lower"), 3),
            "xla_s": round(self.wall_s("xla"), 3),
            "total_s": round(self.wall_s(), 3),
            "programs": {k: round(v, 3) for k, v in self.xla_s_by_program().items()},
        }


_active: list[CompileLog] = []


def _on_span(event: str, start_time: float, end_time: float, **kwargs: str | int) -> None:
    phase = PHASES.get(event)
    if phase is None or not _active:
        return
    span = Span(phase, str(kwargs.get("fun_name", "?")), start_time, end_time)
    for log in _active:
        log.spans.append(span)


@functools.cache
def _register() -> None:
    monitoring.register_event_time_span_listener(_on_span)


@contextlib.contextmanager
def compile_log() -> Iterator[CompileLog]:
    """Record JAX's compile spans while the block runs (logs nest)."""
    _register()
    log = CompileLog()
    _active.append(log)
    try:
        yield log
    finally:
        _active.remove(log)
