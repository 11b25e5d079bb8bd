"""Data parallelism inside a lane: with fewer lanes than devices, each lane's envs are
split over several devices (the "envs" axis of a (runs, envs) mesh), and the results
equal the one-device program's within float rounding."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vecpg.training.execute import env_devices_for

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    ("lanes", "devices", "num_envs", "want"),
    [
        (1, 2, 8, 2),  # one seed on 2 cores: both step its envs
        (1, 4, 8, 4),
        (2, 4, 8, 2),  # 2 lanes x 2 devices each: the axes compose
        (3, 4, 8, 2),  # runs axis 2 (lanes padded to 4), envs axis 2
        (8, 4, 8, 1),  # lanes enough for every device
        (1, 4, 6, 2),  # 4 does not divide 6 envs: 2, and 2 padded lanes
        (1, 2, 5, 1),  # odd env count: no split
    ],
)
def test_env_devices_for(lanes, devices, num_envs, want):
    assert env_devices_for(lanes, devices, num_envs) == want


CHILD = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
import vecpg
from vecpg.training.execute import compiled_train, plan_lanes

cfg = vecpg.TrainConfig(env="gymnax/CartPole-v1", num_envs=8, num_steps=16,
                        total_steps=8 * 16 * 6, hidden=(16,), cpu_opt_level=0,
                        cpu_fusion_emitters=False, **json.loads(sys.argv[1]))
seeds = [3, 5]
plan = plan_lanes(seeds, [cfg.hparams()] * 2, None, cfg.num_envs)
hlo = compiled_train(cfg.static(), plan.chunk, plan.env_devices).as_text()
res = vecpg.train(cfg, seeds=seeds)
sharded, summary = res.metrics, res.summary()
# the reference: the same lanes on one device, no mesh
fns = vecpg.make_train(cfg.static())
hp = jax.tree.map(lambda x: jnp.stack([x, x]), cfg.hparams())
keys = jnp.stack([jax.random.key(s) for s in seeds])
_, one = jax.jit(fns.train, static_argnums=3)(keys, hp, jnp.arange(2), cfg.num_iterations)
one = {k: np.asarray(one[k], np.float64) for k in sharded}  # NaN: no episode ended yet
nan = {k: bool(np.array_equal(np.isnan(one[k]), np.isnan(v))) for k, v in sharded.items()}
diff = {k: float(np.max(np.abs(one[k] - v), initial=0, where=~np.isnan(one[k] - v)))
        for k, v in sharded.items()}
scale = {k: float(np.max(np.abs(v), initial=0, where=~np.isnan(v))) for k, v in one.items()}
print(json.dumps({"devices": jax.device_count(), "env_devices": plan.env_devices,
                  "summary": [summary["num_devices"], summary["devices_per_lane"]],
                  "chunk": plan.chunk, "all_reduce": hlo.count("all-reduce("), "diff": diff,
                  "scale": scale, "nan_match": nan, "finished": one["episodes_finished"].tolist()}))
"""


@pytest.mark.parametrize(
    "extra",
    [{}, {"memory": "gru", "memory_size": 8, "num_minibatches": 2}],
    ids=["mlp", "gru"],  # a recurrent lane's devices split whole env sequences
)
def test_two_lanes_on_four_devices_match_one_device(extra):
    env = {**os.environ, "VECPG_CPU_DEVICES": "4"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(extra)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert (r["devices"], r["env_devices"], r["chunk"]) == (4, 2, 2)  # a 2 x 2 mesh
    assert r["summary"] == [4, 2]  # summary.json: num_devices, devices_per_lane
    assert r["all_reduce"] > 0  # gradients are summed across the env shards
    # float rounding only, over 6 iterations: the gradient is averaged over 2 shards in
    # another order. As in tests/test_sweep.py::assert_close_at_scale, 1e-5 (1 + max|x|)
    # per metric (84 float32 eps at that scale); measured at most 9.6 of them
    # (explained_variance), kl_old_new 0.07
    bad = {k: d for k, d in r["diff"].items() if not d <= 1e-5 * (1 + r["scale"][k])}
    assert bad == {}, (bad, r["scale"])
    assert all(r["nan_match"].values()), r["nan_match"]  # NaN (no episode yet) alike
    # not vacuous: every lane finished episodes, so episode_return compared real means
    assert all(sum(lane) > 0 for lane in r["finished"]), r["finished"]


MEAN_GRAD = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np
from vecpg.algos.base import Batch, mean_grad
from vecpg.training.execute import runs_mesh

def loss(params, agent, mb, hp):  # a mean of per-sample terms, as LossFn requires
    pred = jnp.tanh(mb.obs @ params["w"]) @ params["v"]
    err = (pred - mb.target) ** 2
    return jnp.mean(err), {"err": jnp.mean(err), "adv": jnp.mean(mb.advantage * pred)}

k = jax.random.split(jax.random.key(0), 4)
params = {"w": jax.random.normal(k[0], (3, 5)), "v": jax.random.normal(k[1], (5,))}
n = 16
obs, target = jax.random.normal(k[2], (n, 3)), jax.random.normal(k[3], (n,))
mb = Batch(obs, target, target, target * 0.5, target, target, target)
want = jax.grad(loss, has_aux=True)(params, None, mb, None)  # no mesh: the whole batch
with jax.set_mesh(runs_mesh(env_devices=2)):
    fn = jax.jit(lambda p, b: mean_grad(loss, p, None, b, None))
    got = fn(params, mb)
    hlo = fn.lower(params, mb).compile().as_text()
diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), want, got)
reduces = re.findall(r"= (\S+) all-reduce(?:-start)?\(", hlo)
print(json.dumps({"diff": jax.tree.leaves(diff), "reduces": reduces}))
"""


def test_mean_grad_over_split_envs_is_the_whole_minibatch_gradient_in_one_flat_all_reduce():
    """Two devices sharing a minibatch: each differentiates its half, and the gradient
    and the metrics come back averaged through one all-reduce of one flat vector (a tuple
    of leaves costs XLA's CPU runtime one rendezvous per leaf), equal to the gradient of
    the whole minibatch on one device."""
    env = {**os.environ, "VECPG_CPU_DEVICES": "2"}
    out = subprocess.run([sys.executable, "-c", MEAN_GRAD], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # float32 gradients of O(1) entries: two half-batch means averaged vs one mean differ
    # by a few eps; 1e-5 is ~84 eps
    assert max(r["diff"]) < 1e-5, r["diff"]
    assert r["reduces"] == ["f32[22]{0}"]  # 15 + 5 gradient entries and 2 metrics
