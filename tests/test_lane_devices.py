"""Which devices share a lane, for every config: the planner's row of devices divides
every size a split lane cuts (num_envs and the batch `mean_grad` takes), whatever the
algorithm; every small config runs (or is refused in one line before compiling); and
--max-runs-per-call never changes how a lane is laid out."""

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.conftest import FAST_COMPILE_CONFIG
from vecpg.algos import REGISTRY
from vecpg.config import StaticConfig, TrainConfig
from vecpg.errors import ConfigError
from vecpg.training.execute import env_devices_for, plan_lanes

ROOT = Path(__file__).parents[1]
ALGOS = tuple(REGISTRY)  # all six
DEVICES = (1, 2, 3, 4)
LANES = (1, 2, 3, 5)


def grad_batch(algo: str, num_envs: int, num_steps: int, num_minibatches: int) -> int:
    """The batch one `mean_grad` call gets, read off the algorithms: a2c steps once on the
    whole batch; the others (npg and trpo: their critic) step on minibatches."""
    batch = num_envs * num_steps
    return batch if algo == "a2c" else batch // num_minibatches


def small_configs():
    """Every (algo, num_envs, num_steps, num_minibatches) up to 8 x 6 x 8: the valid
    ones as StaticConfigs (validated by TrainConfig), and how many were refused."""
    valid, refused = [], 0
    for algo, num_envs, num_steps, num_minibatches in itertools.product(
        ALGOS, range(1, 9), range(1, 7), range(1, 9)
    ):
        batch = num_envs * num_steps
        try:
            valid.append(TrainConfig(algo=algo, num_envs=num_envs, num_steps=num_steps,
                                     num_minibatches=num_minibatches,
                                     total_steps=batch).static())  # fmt: skip
        except ConfigError as e:  # before anything compiles: one line, naming the field
            assert "\n" not in str(e) and str(e).startswith("invalid num_minibatches="), e
            assert batch % num_minibatches  # refused only when it must be
            refused += 1
    return valid, refused


def static_of(algo, num_envs, num_steps, num_minibatches, **more) -> StaticConfig:
    return StaticConfig(algo=algo, num_envs=num_envs, num_steps=num_steps,
                        num_minibatches=num_minibatches, total_steps=num_envs * num_steps,
                        **more)  # fmt: skip


def test_every_small_config_gets_a_row_dividing_every_split_size_or_is_refused():
    """Over every small (algo, num_envs, num_steps, num_minibatches, devices, lanes):
    either the config is refused in one line (num_minibatches does not divide the batch),
    or the row D divides the devices, num_envs and the mean_grad batch (so the program
    splits nothing unevenly); D is 1 once the lanes fill the devices; else the fewest
    that fill every device, or when none does the most allowed (fewest padded lanes)."""
    valid, refused = small_configs()
    checked = split = 0
    for static, devices, lanes in itertools.product(valid, DEVICES, LANES):
        d = env_devices_for(lanes, devices, static)
        ne = static.num_envs
        m = grad_batch(static.algo, ne, static.num_steps, static.num_minibatches)
        assert devices % d == 0 and ne % d == 0 and m % d == 0, (static, devices, d)
        allowed = [e for e in DEVICES if devices % e == 0 and ne % e == 0 and m % e == 0]
        fill = [e for e in allowed if devices // e <= lanes]
        want = 1 if lanes >= devices else min(fill) if fill else max(allowed)
        assert d == want, (static, devices, lanes, d, want)
        checked, split = checked + 1, split + (d > 1)
    assert refused > 100 and checked > 10_000 and split > 1_000  # real cases of each


@pytest.mark.parametrize(
    ("algo", "num_envs", "num_steps", "minibatches", "devices", "want"),
    [
        ("ppo", 4, 3, 4, 2, 1),  # the issue: minibatch 3 on 2 devices; 1 per lane, padded
        ("ppo", 4, 4, 4, 2, 2),  # minibatch 4: split
        ("ppo", 8, 3, 2, 4, 4),  # minibatch 12
        ("ppo", 8, 3, 4, 4, 2),  # minibatch 6: 2 of 4 devices, one padded lane
        ("a2c", 4, 3, 4, 2, 2),  # a2c's one step takes the whole batch (12): num_minibatches
        ("a2c", 4, 3, 4, 4, 4),  # plays no part
        ("npg", 4, 3, 4, 2, 1),  # npg/trpo: the critic's minibatches count
        ("trpo", 4, 2, 2, 4, 4),  # the FVP subsample does not: any fvp_fraction
    ],
)
def test_one_lane_rows(algo, num_envs, num_steps, minibatches, devices, want):
    for fvp_fraction in (1.0, 0.3):
        static = static_of(algo, num_envs, num_steps, minibatches, fvp_fraction=fvp_fraction)
        assert env_devices_for(1, devices, static) == want


def test_chunking_never_changes_a_lanes_layout(monkeypatch):
    """plan_lanes picks the row from all lanes, so every --max-runs-per-call gives the
    same env_devices; calls hold a multiple of the runs axis and cover every lane."""
    hp = TrainConfig().hparams()
    for devices in DEVICES:
        monkeypatch.setattr(jax, "device_count", lambda devices=devices: devices)
        for lanes, (algo, ne, ns, mb) in itertools.product(
            LANES, [("ppo", 4, 3, 4), ("ppo", 4, 4, 2), ("a2c", 4, 3, 4), ("trpo", 6, 2, 3)]
        ):
            static = static_of(algo, ne, ns, mb)
            seeds = list(range(lanes))
            whole = plan_lanes(seeds, [hp] * lanes, None, static)
            assert whole.env_devices == env_devices_for(lanes, devices, static)
            for max_runs in (1, 2, 3):
                plan = plan_lanes(seeds, [hp] * lanes, max_runs, static)
                assert plan.env_devices == whole.env_devices, (devices, lanes, max_runs)
                runs_axis = devices // plan.env_devices
                assert plan.chunk % runs_axis == 0 and plan.chunk >= min(lanes, max_runs)
                assert plan.chunk < min(lanes, max_runs) + runs_axis  # rounded up only
                ids = plan.lane_ids
                assert ids.shape == (plan.chunk * plan.num_calls,)
                assert ids[:lanes].tolist() == seeds and (ids[lanes:] == -1).all()
                assert (ids[-plan.chunk :] >= 0).any()  # no call of padding only


def child(script: str, devices: int, *args: str) -> dict:
    """Run `script` in a fresh process on `devices` simulated CPU devices (the flag must
    precede jax's import); its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if k != "VECPG_CPU_DEVICES"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


MEAN_GRAD_UNEVEN = """
import json
import jax, jax.numpy as jnp
from vecpg.algos.base import Batch, mean_grad
from vecpg.training.execute import runs_mesh

def loss(params, agent, mb, hp):
    err = (jnp.tanh(mb.obs @ params["w"]) @ params["v"] - mb.target) ** 2
    return jnp.mean(err), {"err": jnp.mean(err)}

k = jax.random.split(jax.random.key(0), 4)
params = {"w": jax.random.normal(k[0], (3, 5)), "v": jax.random.normal(k[1], (5,))}
obs, target = jax.random.normal(k[2], (3, 3)), jax.random.normal(k[3], (3,))  # M = 3
mb = Batch(obs, target, target, target, target, target, target)
want = jax.grad(loss, has_aux=True)(params, None, mb, None)
with jax.set_mesh(runs_mesh(env_devices=2)):
    got = jax.jit(lambda p, b: mean_grad(loss, p, None, b, None))(params, mb)
diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), want, got)
print(json.dumps({"devices": jax.device_count(), "diff": jax.tree.leaves(diff)}))
"""


def test_mean_grad_on_a_minibatch_the_row_does_not_divide():
    """A minibatch of 3 on a row of 2 devices (a caller that planned on num_envs alone):
    the whole minibatch's gradient and metrics, not a failed reshape."""
    r = child(MEAN_GRAD_UNEVEN, 2)
    assert r["devices"] == 2 and max(r["diff"]) < 1e-6, r


# (name, TrainConfig fields, seeds). The command first.
NPG = dict(algo="npg", num_envs=4, num_steps=3, num_minibatches=1, fvp_fraction=0.25)
TRPO = dict(algo="trpo", num_envs=4, num_steps=2, num_minibatches=2, fvp_fraction=0.3)
CASES = [
    ("ppo_minibatch_3", dict(num_envs=4, num_steps=3, num_minibatches=4), 1),
    ("npg_fvp_3_of_12", NPG, 1),
    ("trpo_fvp_2_of_8", TRPO, 2),
    ("a2c_full_batch", dict(algo="a2c", num_envs=4, num_steps=3, num_minibatches=4), 1),
    ("refused", dict(num_envs=4, num_steps=3, num_minibatches=5), 1),
]
SWEEP = dict(num_envs=4, num_steps=3, num_minibatches=4)  # 2 points x 2 seeds
GRID = {"learning_rate": [3e-4, 1e-3]}
NAN_UNTIL_AN_EPISODE_ENDS = ("episode_return", "episode_length", "return_change")

RUN_CASES = """
import json, sys
import jax, numpy as np
import vecpg
from vecpg.training.execute import plan_lanes, run_lanes

cases, sweep_fields, grid, nan_ok, FAST = json.loads(sys.argv[1])

def finite(metrics):
    return all(bool(np.isfinite(v).all()) for k, v in metrics.items() if k not in nan_ok)

out = {"devices": jax.device_count()}
for name, fields, seeds in cases:
    try:
        cfg = vecpg.TrainConfig(hidden=(8,), total_steps=2 * fields["num_envs"]
                                * fields["num_steps"], **FAST, **fields)
    except vecpg.ConfigError as e:
        out[name] = {"refused": str(e)}
        continue
    static = cfg.static()
    plan = plan_lanes(list(range(seeds)), [cfg.hparams()] * seeds, None, static)
    m = run_lanes(static, plan, report=False).metrics
    out[name] = {"env_devices": plan.env_devices, "chunk": plan.chunk, "finite": finite(m),
                 "diverged": float(m["diverged"].max()), "loss": m["value_loss"].tolist()}
    if name == "ppo_minibatch_3":  # and through the front door, as `vecpg train` goes
        res = vecpg.train(cfg, seeds=1)
        out["train_api"] = {"env_devices": res.devices_per_lane, "finite": finite(res.metrics),
                            "loss": res.metrics["value_loss"].tolist()}
cfg = vecpg.TrainConfig(hidden=(8,), total_steps=4 * 12, **FAST, **sweep_fields)
for name, max_runs in (("sweep_whole", None), ("sweep_per_1", 1)):
    if name == "sweep_per_1" and jax.device_count() != 2:
        continue
    res = vecpg.sweep(cfg, grid, seeds=2, max_runs_per_call=max_runs)
    out[name] = {"calls": res.num_calls, "env_devices": res.devices_per_lane,
                 "metrics": {k: v.tolist() for k, v in res.metrics.items()}}
print(json.dumps(out))
"""


def run_cases(devices: int, cases) -> dict:
    args = [cases, SWEEP, GRID, NAN_UNTIL_AN_EPISODE_ENDS, FAST_COMPILE_CONFIG]
    return child(RUN_CASES, devices, json.dumps(args))


@pytest.fixture(scope="module")
def on_four():
    """Every case on 4 devices, the sweep unchunked (one lane per device)."""
    return run_cases(4, CASES)


@pytest.fixture(scope="module")
def on_two():
    """Only the sweep, on 2 devices: whole (2 lanes per device) and per 1 (1 per device)."""
    return run_cases(2, [])


def test_small_configs_run_on_four_devices_or_are_refused_in_one_line(on_four):
    r = on_four
    assert r["devices"] == 4
    rows = {name: r[name].get("env_devices") for name, _, _ in CASES}
    # the crash (minibatch 3): one device per lane; FVP subsamples of 3 and 2
    # samples split anyway; a2c's full batch of 12 splits 4 ways
    want = {"ppo_minibatch_3": 1, "npg_fvp_3_of_12": 4, "trpo_fvp_2_of_8": 2,
            "a2c_full_batch": 4, "refused": None}  # fmt: skip
    assert rows == want
    for name, _, _ in CASES[:-1]:
        assert r[name]["finite"] and r[name]["diverged"] == 0.0, (name, r[name])
    refused = r["refused"]["refused"]
    assert "\n" not in refused and refused.startswith("invalid num_minibatches=5")
    # vecpg.train takes whatever row its caller plans (on num_envs alone, 4 devices with
    # mean_grad differentiating whole minibatches): it runs, and agrees with the planner's
    api = r["train_api"]
    assert api["finite"] and api["env_devices"] in (1, 4)
    np.testing.assert_allclose(api["loss"], r["ppo_minibatch_3"]["loss"], rtol=1e-4)


# float32 (eps 1.2e-7) rounding of other lane batches, a few ulps per op at first, grows
# through the optimiser's steps: measured up to 4e-5 relative over 10 iterations
RTOL_EARLY, EARLY = 1e-4, 3


def test_max_runs_per_call_keeps_the_layout_and_what_it_changes(on_two, on_four):
    """--max-runs-per-call 1 on 2 devices: the same layout (one device per lane) in 2
    calls of 2 lanes. Results are those of the program with as many lanes per device: bit
    for bit the unchunked sweep on 4 devices (1 lane per device each); against the
    unchunked sweep on 2 devices (2 lanes per device) equal within float32 rounding at
    first, which training then amplifies."""
    whole, per_1, four = on_two["sweep_whole"], on_two["sweep_per_1"], on_four["sweep_whole"]
    assert (whole["calls"], per_1["calls"], four["calls"]) == (1, 2, 1)
    assert whole["env_devices"] == per_1["env_devices"] == four["env_devices"] == 1
    for k in per_1["metrics"]:
        a, b, c = (np.asarray(x["metrics"][k], np.float64) for x in (per_1, four, whole))
        np.testing.assert_array_equal(a, b, err_msg=k)  # NaN == NaN here
        a, c = a[..., :EARLY], c[..., :EARLY]
        both_nan = np.isnan(a) & np.isnan(c)
        rel = np.abs(a - c) / (np.abs(c) + 1e-3)
        assert np.all(both_nan | (rel <= RTOL_EARLY)), (k, np.nanmax(rel))
