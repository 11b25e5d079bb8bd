"""A diverged seed never scores: lanes whose params go non-finite are marked, their
cut-short episodes never enter the returns, and rankings score them as the worst."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

import vecpg
from vecpg.cli import main
from vecpg.run.rundir import diverged_at, scored_final_returns
from vecpg.training.trainer import all_finite

# Pendulum: every return is negative (a good policy scores about -150), so the old
# guard's one-step "episodes" of return 0 would have ranked a diverged lane first.
PENDULUM = ["--env", "gymnax/Pendulum-v1", "--num-envs", "4", "--num-steps", "50",
            "--total-steps", "4000", "--hidden", "16", "--seeds", "2", "--no-progress"]  # fmt: skip


def test_diverged_lanes_are_marked_score_worst_and_leave_other_lanes_bit_for_bit(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", *PENDULUM, "--grid", "learning_rate=0.0003,1e30", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| 1 | 0.0003 |" in printed and "| 2 | 1e+30 |" in printed
    assert "2 of 2 seeds |" in printed and "0 of 2 seeds |" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [r["learning_rate"] for r in summary["ranking"]] == [3e-4, 1e30]
    assert [r["diverged_seeds"] for r in summary["ranking"]] == [[], [0, 1]]

    bad = vecpg.load_sweep(out)
    first = diverged_at(bad.metrics)
    assert (first[0] == -1).all() and (first[1] >= 0).all()
    flag = bad.metrics["diverged"][1]
    iters = np.arange(flag.shape[-1])
    np.testing.assert_array_equal(flag, (iters >= first[1][:, None]).astype(np.float32))
    # Episodes cut short by the guard are left out: none counts once a lane diverged
    # (the old guard ended every step of it: 200 one-step "episodes" of return 0).
    after = iters >= np.maximum(first[1], 1)[:, None]  # from the first NaN rollout on
    assert (bad.metrics["episodes_finished"][1][after] == 0).all()
    assert (bad.metrics["nonfinite"][1][after] > 0).all()
    assert (bad.metrics["episode_length"] != 1).all()

    # The healthy lanes equal, bit for bit, those of a sweep whose other lanes stay finite.
    cfg = vecpg.TrainConfig(
        env="gymnax/Pendulum-v1", num_envs=4, num_steps=50, total_steps=4000, hidden=(16,)
    )
    good = vecpg.sweep(cfg, {"learning_rate": [3e-4, 1e-3]}, seeds=2)
    for k, v in good.metrics.items():
        np.testing.assert_array_equal(bad.metrics[k][0], v[0], err_msg=k)
    assert (diverged_at(good.metrics) == -1).all()


def test_scoring_never_lets_a_diverged_seed_raise_a_config():
    """Hand-made metrics: the diverged lane had the best return before diverging."""
    ret = np.array([[[-300.0] * 10, [-200.0] * 10], [[-100.0] * 10, [-400.0] * 10]])
    flag = np.zeros_like(ret)
    flag[1, 0, 6:] = 1.0  # lane (1, 0) diverges at iteration 6
    scored = scored_final_returns({"episode_return": ret, "diverged": flag})
    np.testing.assert_array_equal(scored, [[-300.0, -200.0], [-400.0, -400.0]])
    np.testing.assert_array_equal(diverged_at({"episode_return": ret, "diverged": flag}),
                                  [[-1, -1], [6, -1]])  # fmt: skip


def test_a_config_scores_from_its_own_seeds_whatever_else_is_in_the_sweep():
    """Adding a grid point (here one far worse, with a diverged seed) leaves every other
    point's scores unchanged: the floor of a diverged seed is its own config's."""
    ret = np.array([[[-300.0] * 10, [-200.0] * 10], [[-150.0] * 10, [-250.0] * 10]])
    flag = np.zeros_like(ret)
    flag[0, 1, 4:] = 1.0  # point 0's second seed diverges
    base = scored_final_returns({"episode_return": ret, "diverged": flag})
    np.testing.assert_array_equal(base, [[-300.0, -300.0], [-150.0, -250.0]])
    worse = np.full((1, 2, 10), -1500.0)
    worse_flag = np.zeros_like(worse)
    worse_flag[0, 0, 2:] = 1.0
    grown = scored_final_returns(
        {"episode_return": np.concatenate([ret, worse]),
         "diverged": np.concatenate([flag, worse_flag])}
    )  # fmt: skip
    np.testing.assert_array_equal(grown[:2], base)
    np.testing.assert_array_equal(grown[2], [-1500.0, -1500.0])


def test_no_score_before_an_episode_and_none_for_an_all_diverged_config():
    nan = np.nan
    # seed 0 finishes its first episode at iteration 3; seed 1 never does
    ret = np.array([[nan, nan, nan, -90.0, -80.0, -70.0, -60.0, -50.0, -40.0, -30.0],
                    [nan] * 10])  # fmt: skip
    scored = scored_final_returns({"episode_return": ret, "diverged": np.zeros_like(ret)})
    assert scored[0] == -30.0 and np.isnan(scored[1])
    everyone = np.ones_like(ret)
    scored = scored_final_returns({"episode_return": ret, "diverged": everyone})
    assert np.isnan(scored).all()


def test_an_all_diverged_run_is_reported_as_diverged_and_never_ranks_first(tmp_path, capsys):
    """Pendulum at lr 1e30: both seeds diverge at iteration 0 and no episode ever ends.
    Before, final_return_mean was 0.0, above any real Pendulum policy (about -150), and
    `vecpg compare` ranked it first."""
    bad, good = tmp_path / "bad", tmp_path / "good"
    assert main(["train", *PENDULUM, "--learning-rate", "1e30", "--out", str(bad)]) == 0
    printed = capsys.readouterr().out
    assert "diverged: all 2 seeds, no score" in printed
    summary = json.loads((bad / "summary.json").read_text())
    assert summary["all_diverged"] is True and summary["final_return_mean"] is None
    assert summary["final_return_per_seed"] == [None, None]
    ret = np.load(bad / "metrics.npz")["episode_return"]
    assert np.isnan(ret).all()  # no episode finished, so no value was ever reported

    assert main(["train", *PENDULUM, "--out", str(good)]) == 0
    healthy = json.loads((good / "summary.json").read_text())
    assert healthy["final_return_mean"] < 0 and not healthy["all_diverged"]
    # The first iterations (50 steps of a 200-step episode) have no return yet: NaN.
    ret = np.load(good / "metrics.npz")["episode_return"]
    assert np.isnan(ret[:, :3]).all() and np.isfinite(ret[:, 4:]).all()

    report = tmp_path / "report"
    assert main(["compare", str(bad), str(good), "--out", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "| gymnax/Pendulum-v1 | bad | 2 | diverged |" in text
    assert "| bad | - | 0.00 |" in text and "| good | 1.00 | - |" in text


def test_all_finite_reads_arrays_and_scalars_of_every_float_dtype():
    """The check stacks scalars (an update's metrics) and ravels arrays; a NaN or inf in
    either, in any float dtype, is caught; integer leaves are not floats to check."""
    check = jax.jit(all_finite)
    ok = {"w": jnp.ones((3, 2)), "m": {"loss": jnp.float32(1.0), "n": jnp.int32(7)},
          "h": jnp.bfloat16(2.0)}  # fmt: skip
    assert bool(check(ok)) and bool(check({})) and bool(check({"n": jnp.int32(-1)}))
    assert not bool(check({**ok, "m": {"loss": jnp.float32(jnp.nan), "n": jnp.int32(7)}}))
    assert not bool(check({**ok, "w": jnp.ones((3, 2)).at[2, 1].set(jnp.inf)}))
    assert not bool(check({**ok, "h": jnp.bfloat16(jnp.inf)}))
