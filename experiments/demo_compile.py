"""The README demo's compile from an empty cache, in JAX's own timers.

    VECPG_COMPILE_CACHE=off python experiments/demo_compile.py --runs 3 --out F.json

Each run is a fresh process (`vecpg train` as the README runs it: CartPole ppo,
8 seeds, every core as a device) with `vecpg.bench.compile_log` around the CLI call;
the JSON holds every run's trace, lowering and XLA seconds (per program), the command's
wall seconds and the machine. Run it on an idle machine: the figures are a compile, so
any other job on the cores moves them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from vecpg.bench.compile_log import compile_log
from vecpg.cli import main
with compile_log() as log:
    code = main(["train", "--out", sys.argv[1]])
wall = time.perf_counter() - t0
print(json.dumps({"code": code, "wall_s": round(wall, 2), **log.summary()}))
"""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def vecpg_source() -> str:
    """The checkout whose vecpg this process imports (PYTHONPATH picks another one)."""
    import vecpg

    return os.path.dirname(os.path.dirname(os.path.abspath(vecpg.__file__)))


def one_run() -> dict:
    path = os.pathsep.join(filter(None, [vecpg_source(), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "VECPG_COMPILE_CACHE": "off", "WANDB_MODE": "disabled",
           "PYTHONPATH": path}  # fmt: skip
    with tempfile.TemporaryDirectory() as out:  # the child's cwd: `-c` puts it on sys.path
        res = subprocess.run(
            [sys.executable, "-c", CHILD, os.path.join(out, "run")],
            env=env, cwd=out, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        r = one_run()
        print(f"run {i}: compile {r['total_s']} s (trace {r['trace_s']}, lower {r['lower_s']}, "
              f"xla {r['xla_s']}), whole command {r['wall_s']} s", flush=True)  # fmt: skip
        runs.append(r)
    import jax

    commit = subprocess.run(["git", "-C", vecpg_source(), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    result = {
        "commit": commit,
        "machine": f"CPU: {cpu_name()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "jax": jax.__version__,
        "command": "vecpg train (the README demo), VECPG_COMPILE_CACHE=off",
        "runs": runs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
