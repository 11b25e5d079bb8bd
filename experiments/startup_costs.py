"""What a process pays before its first compile, each pair measured in one process (or
alternating processes) on the same machine:

- brax's `observation_size` (a reset run op by op) against `jax.eval_shape` of the reset,
  which vecpg's brax adapter uses;
- `import gymnax` plain against vecpg's `import_gymnax` (its renderer-only modules
  imported on first use), alternating fresh processes;
- a stratified bootstrap CI of the IQM with scipy's `trim_mean` against vecpg's `iqm`.

    VECPG_COMPILE_CACHE=off python experiments/startup_costs.py --out results/startup_costs_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("VECPG_COMPILE_CACHE", "off")

PLAIN = "import time, vecpg; t = time.perf_counter(); import gymnax; print(time.perf_counter() - t)"
DEFERRED = (
    "import time, vecpg; from vecpg.envs.gymnax_env import import_gymnax; "
    "t = time.perf_counter(); import_gymnax(); print(time.perf_counter() - t)"
)


def brax_observation_shape() -> dict[str, dict[str, float]]:
    import jax
    from brax import envs

    import vecpg  # noqa: F401  (vecpg's device count and quiet brax)

    out = {}
    for name, backend in (("inverted_pendulum", "generalized"), ("hopper", "positional")):
        raw = envs.get_environment(name, backend=backend)
        t = time.perf_counter()
        shape = jax.eval_shape(raw.reset, jax.random.PRNGKey(0)).obs.shape
        t_shape = time.perf_counter() - t
        t = time.perf_counter()
        size = raw.observation_size
        t_eager = time.perf_counter() - t
        assert shape == (size,), (shape, size)
        out[f"{name} ({backend})"] = {
            "eval_shape_s": round(t_shape, 2),
            "observation_size_s": round(t_eager, 2),
        }
    return out


def gymnax_import(pairs: int = 3) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"plain_s": [], "deferred_s": []}
    for _ in range(pairs):
        for key, code in (("plain_s", PLAIN), ("deferred_s", DEFERRED)):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            times[key].append(round(float(out.stdout.strip().splitlines()[-1]), 2))
    return times


def bootstrap_iqm() -> dict[str, float | bool]:
    import numpy as np
    import scipy.stats

    from vecpg.analysis import stats

    def scipy_iqm(scores: np.ndarray) -> float:
        x = np.asarray(scores, dtype=np.float64).ravel()
        return float(scipy.stats.trim_mean(x[~np.isnan(x)], 0.25))

    scores = np.random.default_rng(0).normal(size=(10, 4))
    t = time.perf_counter()
    with_scipy = stats.stratified_bootstrap_ci(scores, scipy_iqm)
    t_scipy = time.perf_counter() - t
    t = time.perf_counter()
    with_numpy = stats.stratified_bootstrap_ci(scores, stats.iqm)
    t_numpy = time.perf_counter() - t
    return {
        "scipy_trim_mean_s": round(t_scipy, 3),
        "vecpg_iqm_s": round(t_numpy, 3),
        "same_interval": with_scipy == with_numpy,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import jax

    from vecpg.bench.timing import machine

    result = {
        "machine": machine(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "brax_observation_shape": brax_observation_shape(),
        "gymnax_import": gymnax_import(),
        "bootstrap_iqm_2000_reps_10x4": bootstrap_iqm(),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
