"""Population-based training in the compiled program: who copies whom on a hand-built
population, the copied state bit-equal, explore's moves, the exploit step on 4 devices
equal to one device's, PBT with an interval longer than the run equal to a plain sweep
bit for bit, all six algorithms, resume, and `vecpg search --pbt` end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vecpg
from vecpg.algos import REGISTRY
from vecpg.cli import main
from vecpg.config import TrainConfig
from vecpg.errors import ConfigError
from vecpg.training.execute import plan_lanes, run_lanes
from vecpg.training.pbt import (
    PBTSpec,
    PBTState,
    exploit_explore,
    exploit_sources,
    explore,
    perturb,
)
from vecpg.training.trainer import make_train
from vecpg.tuning.run import load_search, resume_search
from vecpg.tuning.space import parse_space

ROOT = Path(__file__).parents[1]
TINY = TrainConfig(num_envs=2, num_steps=8, total_steps=96, hidden=(8,), num_minibatches=2)
DIMS = parse_space(["lr=log:1e-4:1e-1", "clip_eps=choice:0.1,0.2,0.3"])
POINTS = [{"learning_rate": a, "clip_eps": c}
          for a, c in [(1e-4, 0.1), (1e-3, 0.2), (1e-2, 0.3), (3e-2, 0.2)]]  # fmt: skip
SEEDS = 2  # populations: lane = member * 2 + population


def spec(interval: int = 2, fraction: float = 0.25, populations: int = 2, size: int = 4):
    return PBTSpec(DIMS, interval, populations, size, fraction)


# --- exploit: a hand-built population ----------------------------------------------------
# lanes 0..7 (population = lane % 2) and one padding lane (-1)
LANES = jnp.array([0, 1, 2, 3, 4, 5, 6, 7, -1], jnp.int32)
SCORE = jnp.array([10.0, 50.0, 30.0, 100.0, 20.0, jnp.nan, 5.0, 40.0, 999.0])
HEALTHY = jnp.array([True, True, True, False, True, True, True, True, True])


def test_bottom_quarter_and_diverged_copy_the_top():
    # population 0: lanes 0, 2, 4, 6 score 10, 30, 20, 5 -> lane 6 (the worst) copies lane 2
    # population 1: lane 3 diverged (its 100 does not count) is replaced; of the ranked
    # lanes 1 (50) and 7 (40), lane 7 is the bottom one; both copy lane 1. Lane 5 has no
    # return yet (healthy): neither ranked nor replaced
    u = jnp.full(9, 0.99)
    source, replaced = exploit_sources(spec(), SCORE, HEALTHY, LANES, u)
    assert source.tolist() == [0, 1, 2, 1, 4, 5, 2, 1, 8]
    assert replaced.tolist() == [False, False, False, True, False, False, True, True, False]


def test_half_fraction_draws_the_source_from_the_top_half():
    # cut 2: population 0 ranks 2 (30), 4 (20), 0 (10), 6 (5): lanes 0 and 6 copy lane
    # 2 (u < 1/2) or lane 4; population 1 ranks only 1 (50) and 7 (40), both in its top
    # 2, so only the diverged lane 3 is replaced, from 1 or 7
    u = jnp.array([0.7, 0.0, 0.0, 0.9, 0.0, 0.1, 0.2, 0.0, 0.0])
    source, replaced = exploit_sources(spec(fraction=0.5), SCORE, HEALTHY, LANES, u)
    assert source.tolist() == [4, 1, 2, 7, 4, 5, 2, 7, 8]
    assert replaced.tolist() == [True, False, False, True, False, False, True, False, False]


def test_a_population_with_no_ranked_member_copies_nothing():
    healthy = jnp.array([True, False, True, False, True, False, True, False, True])
    source, replaced = exploit_sources(spec(), SCORE, healthy, LANES, jnp.zeros(9))
    assert source.tolist()[1::2] == [1, 3, 5, 7]  # population 1: all diverged
    assert source.tolist()[0::2] == [0, 2, 4, 2, 8] and int(replaced.sum()) == 1


def test_perturb_moves_by_the_documented_factors_and_neighbours():
    lr, clip = DIMS
    x = jnp.array([1e-3, 1e-3, 0.09, 2e-4])
    down = jnp.array([True, False, False, True])
    np.testing.assert_allclose(perturb(lr, x, down), [8e-4, 1.2e-3, 0.1, 1.6e-4], rtol=1e-6)
    c = jnp.array([0.1, 0.1, 0.2, 0.3, 0.3], jnp.float32)
    got = perturb(clip, c, jnp.array([True, False, True, False, True]))
    np.testing.assert_allclose(got, [0.1, 0.2, 0.1, 0.3, 0.2], rtol=1e-6)


def test_explore_resamples_within_the_space_and_leaves_others_alone():
    hp = TrainConfig().hparams()
    hp = jax.tree.map(lambda x: jnp.full(6, x), hp)
    replaced = jnp.array([True, True, True, False, False, True])
    u = jax.random.uniform(jax.random.key(3), (6, 2, 3))
    u = u.at[:, :, 0].set(jnp.array([0.0, 0.9, 0.0, 0.0, 0.0, 0.9])[:, None])  # resample?
    new = explore(spec(), hp, replaced, u)
    lr = np.asarray(new.learning_rate)
    assert lr[3] == lr[4] == np.float32(2.5e-4)  # not replaced: unchanged
    assert 1e-4 <= lr[0] <= 1e-1 and 1e-4 <= lr[2] <= 1e-1  # resampled in the space
    np.testing.assert_allclose(lr[[1, 5]], 2.5e-4 * np.where(u[[1, 5], 0, 1] < 0.5, 0.8, 1.2),
                               rtol=1e-6)  # fmt: skip
    assert np.isin(np.asarray(new.clip_eps)[[0, 1, 2, 5]], np.float32([0.1, 0.2, 0.3])).all()
    assert np.array_equal(new.gamma, hp.gamma)  # not searched


# --- the copied state -------------------------------------------------------------------
def population_state(static, num_lanes: int = 9):
    """A real TrainState of 9 lanes (distinct params), windows giving SCORE, lane 3
    diverged."""
    fns = make_train(static)
    keys = jax.random.split(jax.random.key(0), num_lanes)
    hp = jax.tree.map(lambda x: jnp.full(num_lanes, x), TINY.hparams())
    state = jax.vmap(fns.init)(keys, hp)
    score = SCORE[:num_lanes]
    pbt = PBTState(state.pbt.hparams, jnp.nan_to_num(score), jnp.isfinite(score) * 1.0)
    return dataclasses.replace(state, pbt=pbt, diverged=~HEALTHY[:num_lanes])


def raw_leaves(tree) -> list[np.ndarray]:
    """The leaves as numpy arrays, PRNG keys as their key data."""
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    return [np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in jax.tree.leaves(tree)]


def test_copied_state_is_the_sources_bit_for_bit():
    static = dataclasses.replace(TINY.static(), pbt=spec())
    state = population_state(static)
    new, source = jax.jit(lambda s: exploit_explore(static.pbt, s, LANES, jnp.int32(5)))(state)
    assert np.asarray(source).tolist() == [0, 1, 2, 1, 4, 5, 2, 1, 8]
    for name in ("params", "algo_state", "env_state", "last_return", "diverged"):
        for a, b in zip(raw_leaves(getattr(new, name)), raw_leaves(getattr(state, name)),
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b[np.asarray(source)])
    # a copier's key is its own folded with its lane id, the others' unchanged; every
    # window restarts
    own = jax.random.key_data(state.key)
    folded = jax.random.key_data(jax.vmap(jax.random.fold_in)(state.key, LANES))
    want = np.where(np.asarray(source != jnp.arange(9))[:, None], folded, own)
    np.testing.assert_array_equal(jax.random.key_data(new.key), want)
    assert float(jnp.sum(new.pbt.return_count)) == 0.0
    assert not bool(new.diverged[3])  # a diverged lane is replaced by a healthy one
    # a lane that copied nothing keeps its hyperparameters exactly
    keep = np.array([0, 1, 2, 4, 5, 8])
    np.testing.assert_array_equal(new.pbt.hparams.learning_rate[keep],
                                  state.pbt.hparams.learning_rate[keep])  # fmt: skip


FOUR_DEVICES = textwrap.dedent(
    """
    import dataclasses, json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.test_pbt import LANES, TINY, population_state, raw_leaves, spec
    from vecpg.training.execute import runs_sharding
    from vecpg.training.pbt import exploit_explore
    assert jax.device_count() == 4
    static = dataclasses.replace(TINY.static(), pbt=spec())
    state = population_state(static, 8)  # 8 lanes: 2 per device
    lanes = LANES[:8]
    step = lambda s, l: exploit_explore(static.pbt, s, l, jnp.int32(5))
    one = jax.jit(step)(state, lanes)
    sharding = runs_sharding()
    with jax.set_mesh(sharding.mesh):
        sharded = jax.jit(step, in_shardings=sharding, out_shardings=sharding)(
            jax.device_put(state, sharding), jax.device_put(lanes, sharding))
    assert len(jax.tree.leaves(sharded)[0].sharding.device_set) == 4
    same = all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(raw_leaves(one), raw_leaves(sharded), strict=True))
    print(json.dumps({"same": same, "source": np.asarray(sharded[1]).tolist()}))
    """
)


def test_exploit_on_four_devices_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "VECPG_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(ROOT)], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"same": True, "source": [0, 1, 2, 1, 4, 5, 2, 1]}


# --- whole programs ---------------------------------------------------------------------
def lanes_of(config: TrainConfig):
    seeds = [s for _ in POINTS for s in range(SEEDS)]
    hps = [dataclasses.replace(config, **p).hparams() for p in POINTS for _ in range(SEEDS)]
    return seeds, hps


def run(config: TrainConfig, interval: int | None):
    static = config.static()
    if interval is not None:
        static = dataclasses.replace(static, pbt=spec(interval))
    seeds, hps = lanes_of(config)
    return run_lanes(static, plan_lanes(seeds, hps, None, static), report=False)


def test_interval_longer_than_the_run_is_the_plain_sweep_bit_for_bit():
    plain, pbt = run(TINY, None), run(TINY, TINY.num_iterations + 1)
    for k, v in plain.metrics.items():
        np.testing.assert_array_equal(v, pbt.metrics[k], err_msg=k)
    jax.tree.map(np.testing.assert_array_equal, plain.params, pbt.params)
    assert (pbt.metrics["pbt_copied"] == -1).all()
    lr = np.array([p["learning_rate"] for p in POINTS for _ in range(SEEDS)], np.float32)
    np.testing.assert_array_equal(pbt.metrics["hp_learning_rate"], np.repeat(lr[:, None], 6, 1))


@pytest.mark.parametrize("algo", tuple(a for a in REGISTRY if a != "ppo"))  # ppo: below
def test_every_algorithm_exploits_and_explores(algo):
    config = TrainConfig.for_algo(algo, **{k: getattr(TINY, k) for k in
                                           ("num_envs", "num_steps", "total_steps", "hidden",
                                            "num_minibatches")})  # fmt: skip
    out = run(config, 2)
    copied = out.metrics["pbt_copied"]  # [lanes, iterations]: after iterations 1 and 3
    assert (copied[:, [0, 2, 4, 5]] == -1).all()
    lanes, its = np.nonzero(copied >= 0)
    assert len(lanes) >= 2
    lr = out.metrics["hp_learning_rate"]
    for lane, it in zip(lanes, its, strict=True):
        src = int(copied[lane, it])
        assert src % SEEDS == lane % SEEDS  # within its population
        before, after = lr[src, it], lr[lane, it + 1]
        moved = np.isclose(after, before * 0.8, rtol=1e-6) or np.isclose(
            after, before * 1.2, rtol=1e-6
        )
        assert moved or 1e-4 <= after <= 1e-1  # perturbed, or resampled in the space
    assert np.isfinite(out.metrics["episode_return"][:, -1]).all()


# --- vecpg search --pbt ------------------------------------------------------------------
def test_pbt_search_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "s"
    res = vecpg.search(TINY, ["lr=log:1e-4:1e-1", "clip_eps=choice:0.1,0.2,0.3"], trials=4,
                       seeds=2, pbt_interval=5, checkpoint_every=2, out=out)  # fmt: skip
    s = json.loads((out / "summary.json").read_text())
    assert s["population_size"] == 4 and s["populations"] == [0, 1]
    assert s["env_steps_per_population"] == 4 * TINY.num_iterations * TINY.batch_size
    assert s["pbt"]["interval"] == 5 and s["copies"] >= 2  # after iteration 4 of 6
    pbt, fixed = res.population_scores(res.pbt), res.population_scores(res.fixed)
    # a population's score: its best member's final return; fixed: the plain sweep's
    np.testing.assert_allclose(fixed, np.nanmax(res.fixed.final_returns(), axis=0))
    assert s["pbt_scores"] == pytest.approx(list(pbt))
    for f in ("report.md", "pbt_vs_fixed.png", "pbt_schedules.png"):
        assert (out / f).exists()
    run_json = json.loads((out / "pbt" / "run.json").read_text())
    assert run_json["pbt"]["interval"] == 5  # the populations' run dir resumes as PBT
    assert "hp_learning_rate" in np.load(out / "pbt" / "metrics.npz").files
    again = vecpg.resume(out / "pbt")  # a finished run loads as it is
    np.testing.assert_array_equal(again.metrics["hp_learning_rate"],
                                  res.pbt.metrics["hp_learning_rate"])  # fmt: skip
    loaded = load_search(out)
    assert json.loads(json.dumps(loaded.summary())) == json.loads(json.dumps(s))
    # a search stopped mid-way through the populations (their checkpoint of iteration 4
    # kept: the exploit step after iteration 4 runs after the resume) with the fixed side
    # not begun: resume_search finishes it with the same numbers
    for f in ("summary.json", "metrics.npz"):
        (out / "pbt" / f).unlink()
    shutil.rmtree(out / "pbt" / "checkpoints" / "6")
    shutil.rmtree(out / "fixed")
    (out / "summary.json").unlink()
    again = resume_search(out)
    for a, b in ((again.pbt, res.pbt), (again.fixed, res.fixed)):
        for k, v in b.metrics.items():
            np.testing.assert_array_equal(a.metrics[k], v, err_msg=k)
    assert json.loads((out / "summary.json").read_text()) == s
    # --resume takes no other argument, and a search.json vecpg did not write is one line
    assert main(["search", "--resume", str(out), "--trials", "3"]) == 2
    assert "leave out --trials" in capsys.readouterr().err
    (out / "search.json").write_text("[]")
    with pytest.raises(ConfigError, match="search.json is corrupt"):
        resume_search(out)
    assert main(["search", "--pbt-interval", "5", "--space", "lr=log:1e-4:1e-1"]) == 2
    assert "invalid pbt_interval=5: a PBT setting; add --pbt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pbt_interval": -1}, "invalid pbt_interval=-1: must be an integer >= 1"),
        ({"pbt_fraction": 0.6}, "invalid pbt_fraction=0.6: must be in (0, 0.5]"),
        ({"pbt_resample": 2.0}, "invalid pbt_resample=2.0: must be in [0, 1]"),
        ({"trials": 1}, "invalid trials=1: a PBT population needs at least 2 members"),
        ({"sampler": "tpe"}, "invalid sampler='tpe': PBT samples its initial population"),
        ({"space": ["init_penalty=uniform:0.5:2"]}, "init_penalty is read once"),
        ({"max_runs_per_call": 2}, "invalid max_runs_per_call=2: a PBT population"),
    ],
)
def test_bad_pbt_settings_get_one_line(kwargs, message, tmp_path, no_compile):
    args = {"space": ["lr=log:1e-4:1e-1"], "trials": 4, "seeds": 2, "pbt_interval": 2,
            "out": tmp_path / "s", **kwargs}  # fmt: skip
    with pytest.raises(ConfigError) as e:
        vecpg.search(TINY, **args)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "s").exists()  # refused before anything is written
