"""No refactoring changes a number: ppo and trpo on CartPole (2 seeds x 20 iterations, one
compiled call, one XLA CPU device) reproduce the recorded metrics
(tests/golden/make_golden.py records them; re-record there when a change is meant to
move them, and say so in the commit). Last re-recorded when a run's envs stopped being
reset in the init program and began at the first rollout's fresh starts
(`vecpg.envs.wrappers.unstarted_episodes`; the reset is compiled once instead of twice):
the initial states are other draws of the same distribution, so every series moved
(episode returns by whole episodes); wrapping the adapters' reset/step in `jax.jit`
(`registry.TracedOnce`), measured alone before it, left all 39 series bit-identical. The
time before: every KL metric named by its direction, `return_change` 0 at a lane's first
return, stoppable runs in chunks.

Across machines the file is compared within a float32 tolerance, not bit for bit: XLA
compiles for the host CPU's features, and with fast math the last bit moves (a fresh
clone on another 2-core AMD EPYC differed by one ulp in 19 of 40 `ppo/entropy` values).
Bit-for-bit equality is what the same machine promises, and is tested there
(tests/test_train.py::test_same_config_and_seed_give_identical_metrics: one program run
twice in one process; tests/test_checkpoint.py: resumed vs uninterrupted).

How N_ITERATIONS and K were chosen (measured on the 2-core AMD EPYC of this repo, errors
in units of eps * max|series over the compared iterations|, eps = float32 eps = 1.2e-7,
max over both seeds):
- Rounding alone, emulated by re-recording with `cpu_fast_math=False` and with
  XLA_FLAGS=--xla_cpu_max_isa=AVX (no FMA/AVX2, as on an older host CPU): iterations
  0-6 stay below 400 in every series (largest: trpo/step_size, 390). From there the
  difference grows about 2x per iteration (trpo/explained_variance reaches 2400 at
  iteration 7), and at 11-12 a sampled action flips and the runs part (errors of
  1e4-1e7; episode returns differ by whole steps). So only the first N_ITERATIONS = 7
  are compared, at K = 1000: 2.5x the largest rounding difference seen.
- A different algorithm fails: learning_rate x 1.001 moves ppo's KLs by 3e4 and trpo's
  step_size by 2.7e3 within those 7 iterations; ent_coef x 1.01 moves ppo's KLs by 2.3e3;
  max_kl x 1.01 moves trpo's KLs by 1e6.
- `trpo/cg_residual` is left out of the comparison: it is CG's residual after 10
  iterations, 1e-14 to 7e-6 here, i.e. at its own rounding floor, and changed by up to
  20x under the rounding changes above. The direction CG returns is compared through
  `gFg`, `step_size` and `predicted_improvement`.

The file holds for one XLA CPU device: float rounding depends on the device count (even
with one lane per device), and vecpg uses every core by default, so the recording runs
in a child process with VECPG_CPU_DEVICES=1.

`make_train` jitted by hand against `vecpg.train` is checked in tests/test_env_devices.py
(4 devices vs 1, within float tolerance); the test that did it here ran both on the same
make_train with the same split and could not fail."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.golden.make_golden import GOLDEN

ROOT = Path(__file__).parents[1]
EPS32 = float(np.finfo(np.float32).eps)
N_ITERATIONS = 7  # compared; later iterations amplify rounding (module docstring)
K = 1000  # tolerance in units of eps * max|series| over those iterations
NOT_COMPARED = {"trpo/cg_residual"}  # at its rounding floor (module docstring)


def golden_mismatches(got: dict, want: dict) -> list[str]:
    """The series of `got` farther than K eps max|want| from `want` in the first
    N_ITERATIONS iterations, or NaN elsewhere (episode_return is NaN until a lane's
    first episode ends): a description of each."""
    bad = []
    for name, w in want.items():
        if name in NOT_COMPARED:
            continue
        w = np.asarray(w[:, :N_ITERATIONS], np.float64)
        g = np.asarray(got[name][:, :N_ITERATIONS], np.float64)
        nan = np.isnan(w)
        if not np.array_equal(nan, np.isnan(g)):
            bad.append(f"{name}: NaN at other places")
            continue
        atol = K * EPS32 * np.max(np.abs(w), initial=0.0, where=~nan)
        err = np.max(np.abs(g - w), initial=0.0, where=~nan)
        if not err <= atol:
            bad.append(f"{name}: |diff| {err:.3g} > {atol:.3g}")
    return bad


def test_metrics_match_golden_file_on_the_first_iterations(tmp_path):
    want = dict(np.load(GOLDEN))
    out = tmp_path / "got.npz"
    code = (
        "import numpy as np; from tests.golden.make_golden import record; "
        f"np.savez({str(out)!r}, **record())"
    )
    env = {**os.environ, "VECPG_CPU_DEVICES": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    got = dict(np.load(out))
    assert sorted(got) == sorted(want)
    assert not got["ppo/diverged"].any() and not got["trpo/diverged"].any()
    assert golden_mismatches(got, want) == []


def test_the_tolerance_tells_rounding_from_a_change():
    """The comparison itself on the recorded file: one float32 ulp on every non-zero value
    (the cross-machine failure that motivated it) passes; a relative change of 1e-3 in
    one series (what learning_rate x 1.001 does within the compared iterations) fails,
    and so does one episode one step longer."""
    want = dict(np.load(GOLDEN))
    up = lambda v: np.where(v == 0, v, np.nextafter(v, np.float32(np.inf)))  # noqa: E731
    ulp = {k: up(v) for k, v in want.items()}  # an all-zero series must stay exactly 0
    assert golden_mismatches(ulp, want) == []
    for name in ("ppo/entropy", "ppo/policy_loss", "trpo/step_size", "trpo/value_loss"):
        bad = golden_mismatches({**want, name: want[name] * np.float32(1.001)}, want)
        assert len(bad) == 1 and bad[0].startswith(name + ":"), bad
    returns = want["ppo/episode_return"].copy()
    returns[0, N_ITERATIONS - 1] += 1.0  # one episode one step longer
    bad = golden_mismatches({**want, "ppo/episode_return": returns}, want)
    assert len(bad) == 1 and bad[0].startswith("ppo/episode_return:"), bad
