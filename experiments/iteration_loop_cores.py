"""One device, brax hopper (positional), the bench's matched settings: ms per iteration of
10 iterations in one `lax.scan` (how vecpg trains) against 10 host calls of a
one-iteration program (the same work per iteration). Run it as is and under
`taskset -c 0` to see what the second core costs inside the loop (BENCHMARKS.md).

    VECPG_CPU_DEVICES=1 VECPG_COMPILE_CACHE=off python experiments/iteration_loop_cores.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vecpg.bench.plan import BenchPlan
from vecpg.bench.timing import median_time
from vecpg.training.trainer import init_train_state, make_pieces, train_iteration
from vecpg.training.xla_options import program_options

ITERATIONS = 10


def main() -> None:
    cfg = BenchPlan(env="brax/hopper", backend="positional").base()
    static, hp = cfg.static(), cfg.hparams()
    p = make_pieces(static)
    state = init_train_state(p, jax.random.key(0), hp)
    options = program_options(static)

    def scanned(s):
        def body(s, it):
            s, metrics = train_iteration(p, s, hp, it)
            return s, metrics["episode_return"]

        return jax.lax.scan(body, s, jnp.arange(ITERATIONS))

    loop = jax.jit(scanned, compiler_options=options)
    one = jax.jit(lambda s: train_iteration(p, s, hp, jnp.int32(0))[0], compiler_options=options)

    def calls():
        s = state
        for _ in range(ITERATIONS):
            s = one(s)
        return s

    print(f"devices: {jax.devices()}")
    for _ in range(3):
        a = median_time(lambda: loop(state), 3) / ITERATIONS
        b = median_time(calls, 3) / ITERATIONS
        print(f"scan of {ITERATIONS}: {a * 1e3:.1f} ms/it; {ITERATIONS} calls: {b * 1e3:.1f} ms/it")


if __name__ == "__main__":
    main()
