"""How many kernels XLA compiles for a cell, and where in vecpg's code they come from.

Compiles a config's init and run programs (`execute.compiled_chunk`, as `vecpg.train`
does; compile cache off) and counts the fusions of each optimised HLO module, grouped by
the JAX op name that XLA keeps on each: the name's path (vmap/jit/while scopes and the
primitive) cut to --depth parts, with the iteration's own prefix dropped. XLA CPU compiles
every fusion on its own, about 27 ms each on a 2-core AMD EPYC with its default emitters
(`compile_kernels.py`), so these counts are where a compile goes.

    VECPG_COMPILE_CACHE=off python experiments/kernel_census.py --env brax/hopper \\
        --backend positional --num-envs 64 --num-steps 64 --lanes 1 --env-devices 2 --out F
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import time

import jax

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.timing import machine
from vecpg.config import TrainConfig
from vecpg.training import execute

ITERATION = re.compile(r"^jit\(run_iterations\)/while/body/closed_call/cond/branch_\d+_fun/")


def fusion_groups(hlo: str, depth: int) -> collections.Counter:
    """Fusion instructions of an optimised HLO module, counted by op-name path."""
    groups: collections.Counter = collections.Counter()
    for line in hlo.splitlines():
        if "kind=k" not in line:
            continue
        name = re.search(r'op_name="([^"]+)"', line)
        path = ITERATION.sub("", re.sub(r"\[[^\]]*\]", "", name.group(1))) if name else "?"
        groups["/".join(path.split("/")[:depth])] += 1
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="gymnax/CartPole-v1")
    ap.add_argument("--backend", default="positional")
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--num-envs", type=int)
    ap.add_argument("--num-steps", type=int)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--env-devices", type=int, default=1)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sizes = {k: v for k, v in (("num_envs", a.num_envs), ("num_steps", a.num_steps)) if v}
    cfg = TrainConfig(env=a.env, backend=a.backend, algo=a.algo, **sizes)
    t0 = time.perf_counter()
    init, run = execute.compiled_chunk(cfg.static(), a.lanes, 5, a.env_devices)
    row = {"env": a.env, "algo": a.algo, "lanes": a.lanes, "env_devices": a.env_devices,
           "compile_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    for name, program in (("init", init), ("run", run)):
        groups = fusion_groups(program.as_text(), a.depth)
        row[f"{name}_fusions"] = sum(groups.values())
        row[f"{name}_by_op_name"] = dict(groups.most_common(a.top))
    print(json.dumps({k: v for k, v in row.items() if "by_op" not in k}))
    with open(a.out, "w") as f:
        json.dump({"machine": machine(), "jax": jax.__version__, **row}, f, indent=1)


if __name__ == "__main__":
    main()
