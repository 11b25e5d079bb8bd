"""vecpg.studies: layered configs, presets, the power estimate, and studies run end to end,
killed and resumed, and sharded (one tiny 2 algos x 2 envs x 2 seeds study, shared)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from vecpg.errors import ConfigError
from vecpg.studies import command, power, presets, runner, spec

# Tiny cells: 50 iterations of 4 envs x 16 steps (Acrobot's 500-step episodes finish).
TINY = [
    "--num-envs",
    "4",
    "--num-steps",
    "16",
    "--total-steps",
    "3200",
    "--hidden",
    "8",
    "--cpu-opt-level",
    "0",
    "--cpu-fusion-emitters",
    "false",
]  # compiled fast: FAST_COMPILE
STUDY = [
    "--algos",
    "ppo,trpo",
    "--envs",
    "gymnax/CartPole-v1,gymnax/Acrobot-v1",
    "--seeds",
    "2",
    "--checkpoint-every",
    "25",  # one checkpoint mid-cell: an orbax save took about 0.26 s (2026-12-01, 2-core EPYC)
    "--no-progress",
    *TINY,
]
CELLS = [
    "ppo/gymnax-Acrobot-v1",
    "ppo/gymnax-CartPole-v1",
    "trpo/gymnax-Acrobot-v1",
    "trpo/gymnax-CartPole-v1",
]  # sorted by algo, then env


def study_proc(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vecpg.cli", "study", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kw,
    )


def one_error(args: list[str], capsys) -> str:
    assert command.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "s"
    assert command.main([*STUDY, "--out", str(out)]) == 0
    return out


def hand_final(metrics_npz: Path) -> np.ndarray:
    """Each seed's mean episode_return over the last 10% of iterations, NaN left out."""
    with np.load(metrics_npz) as z:
        ret = z["episode_return"].astype(np.float64)
    k = max(1, round(ret.shape[-1] * 0.1))
    return np.array([np.nanmean(r[-k:]) for r in ret])


def test_end_to_end_report_matches_the_cells(study_dir):
    cells = json.loads((study_dir / "cells.json").read_text())
    assert sorted(cells) == [
        "ppo/gymnax/Acrobot-v1",
        "ppo/gymnax/CartPole-v1",
        "trpo/gymnax/Acrobot-v1",
        "trpo/gymnax/CartPole-v1",
    ]
    assert {c["status"] for c in cells.values()} == {"done"}
    rep = json.loads((study_dir / "report" / "report.json").read_text())
    for cell in CELLS:
        algo, env_dir = cell.split("/")
        env = env_dir.replace("gymnax-", "gymnax/")
        cfg = json.loads((study_dir / "cells" / cell / "config.json").read_text())
        assert (cfg["algo"], cfg["env"], cfg["num_envs"], cfg["hidden"]) == (algo, env, 4, [8])
        want = hand_final(study_dir / "cells" / cell / "metrics.npz")
        got = rep["scores"][env][algo]["final_return"]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        # two seeds: the IQM cuts int(0.25 * 2) = 0 from each end, so it is their mean
        assert rep["per_task"][env][algo]["IQM"] == pytest.approx(want.mean())
        assert rep["cells"][f"{algo}/{env}"]["compile_s"] > 0
    a = np.array(rep["scores"]["gymnax/CartPole-v1"]["ppo"]["final_return"])
    b = np.array(rep["scores"]["gymnax/CartPole-v1"]["trpo"]["final_return"])
    poi = (a[:, None] > b[None]).mean() + 0.5 * (a[:, None] == b[None]).mean()
    assert rep["probability_of_improvement"]["gymnax/CartPole-v1"]["ppo vs trpo"] == poi
    assert rep["aggregate"] is None  # CartPole and Acrobot returns are not on one scale
    for name in (
        "report.md",
        "report.html",
        "intervals.png",
        "profiles.png",
        "improvement.png",
        "curves_gymnax_CartPole-v1.png",
    ):
        assert (study_dir / "report" / name).stat().st_size > 0
    page = (study_dir / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "<table>" in page


def test_resume_after_sigkill_equals_uninterrupted(study_dir, tmp_path):
    out = tmp_path / "s"
    proc = study_proc(*STUDY, "--out", str(out))
    first = out / "cells" / CELLS[0] / "summary.json"
    deadline = time.time() + 600
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    unfinished = [c for c in CELLS if not (out / "cells" / c / "summary.json").exists()]
    assert unfinished, "the study finished before it was killed"
    kept = {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in (out / "cells" / CELLS[0]).rglob("*")
        if p.is_file()
    }
    done = subprocess.run(
        [sys.executable, "-m", "vecpg.cli", "study", "--resume", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for p, (data, mtime) in kept.items():
        assert (p.read_bytes(), p.stat().st_mtime_ns) == (data, mtime), p
    for cell in CELLS:
        with np.load(out / "cells" / cell / "metrics.npz") as a:
            with np.load(study_dir / "cells" / cell / "metrics.npz") as b:
                for k in ("episode_return", "env_steps"):
                    np.testing.assert_array_equal(a[k], b[k])


def test_two_shards_then_report_equal_one_process(study_dir, tmp_path):
    out = tmp_path / "s"
    procs = [study_proc(*STUDY, "--out", str(out), "--shard", f"{i}/2") for i in range(2)]
    for p in procs:
        assert p.wait(timeout=900) == 0, p.stdout.read() if p.stdout else ""
    # shard 0 ran cells 0 and 2 of the sorted list, shard 1 cells 1 and 3
    report = subprocess.run(
        [sys.executable, "-m", "vecpg.cli", "study", "report", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    one = json.loads((study_dir / "report" / "report.json").read_text())
    two = json.loads((out / "report" / "report.json").read_text())
    for key in ("scores", "per_task", "probability_of_improvement", "seeds_needed"):
        assert two[key] == one[key], key


def test_a_failing_and_a_diverging_cell_are_recorded_and_the_study_goes_on(
    study_dir, tmp_path, monkeypatch
):
    """ppo on Acrobot raises mid-study and ppo on CartPole diverges (learning rate 1e30,
    one cell's override): both are recorded, the trpo cells run as in `study_dir` (the
    same numbers), the report ranks the diverged cell below trpo, lists the failure, and
    running the study again retries only the failed cell."""
    real_train = runner.vecpg.train

    def train(config, *a, **k):
        if config.algo == "ppo" and config.env == "gymnax/Acrobot-v1":
            raise RuntimeError("simulated crash\nsecond line")
        return real_train(config, *a, **k)

    monkeypatch.setattr(runner.vecpg, "train", train)
    toml = tmp_path / "study.toml"
    toml.write_text('[cell.ppo."gymnax/CartPole-v1"]\nlearning_rate = 1e30\n')
    out = tmp_path / "s"
    assert command.main([*STUDY, "--config", str(toml), "--out", str(out)]) == 0
    cells = json.loads((out / "cells.json").read_text())
    assert cells["ppo/gymnax/Acrobot-v1"]["status"] == "failed"
    assert cells["ppo/gymnax/Acrobot-v1"]["error"] == "RuntimeError: simulated crash"
    assert cells["ppo/gymnax/CartPole-v1"]["status"] == "diverged"
    assert cells["ppo/gymnax/CartPole-v1"]["diverged_seeds"] == [0, 1]
    rep = json.loads((out / "report" / "report.json").read_text())
    one = json.loads((study_dir / "report" / "report.json").read_text())
    for env in ("gymnax/CartPole-v1", "gymnax/Acrobot-v1"):
        assert rep["scores"][env]["trpo"] == one["scores"][env]["trpo"]
    assert rep["per_task"]["gymnax/CartPole-v1"]["ppo"]["all_diverged"] is True
    assert "ppo" not in rep["per_task"]["gymnax/Acrobot-v1"]
    poi = rep["probability_of_improvement"]["gymnax/CartPole-v1"]
    assert (poi["ppo vs trpo"], poi["trpo vs ppo"]) == (0.0, 1.0)
    md = (out / "report" / "report.md").read_text()
    assert "| ppo/gymnax/Acrobot-v1 | failed: RuntimeError: simulated crash |" in md
    assert "| gymnax/CartPole-v1 | ppo | 2 | diverged |" in md

    monkeypatch.setattr(runner.vecpg, "train", real_train)
    diverged_summary = out / "cells" / "ppo" / "gymnax-CartPole-v1" / "summary.json"
    mtime = diverged_summary.stat().st_mtime_ns
    assert command.main([*STUDY, "--config", str(toml), "--out", str(out)]) == 0
    cells = json.loads((out / "cells.json").read_text())
    assert cells["ppo/gymnax/Acrobot-v1"]["status"] == "done"
    assert diverged_summary.stat().st_mtime_ns == mtime  # finished cells are not rerun
    rep = json.loads((out / "report" / "report.json").read_text())
    acro = "gymnax/Acrobot-v1"
    assert rep["scores"][acro]["ppo"] == one["scores"][acro]["ppo"]


def test_shard_from_slurm_array_and_flags():
    assert runner.parse_shard("1/3") == (1, 3)
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert runner.parse_shard(None, env) == (2, 4)
    assert runner.parse_shard(None, {}) == (0, 1)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(ConfigError, match=r"^invalid shard="):
            runner.parse_shard(bad)
    cells = spec.spec_from_dict({"algos": ["ppo", "trpo", "a2c"], "envs": ["gymnax/CartPole-v1"]})
    study = cells.resolve()
    assert [c.algo for c in study.cells] == ["a2c", "ppo", "trpo"]
    assert [c.algo for c in study.shard(0, 2)] == ["a2c", "trpo"]
    assert [c.algo for c in study.shard(1, 2)] == ["ppo"]


def test_layers_precedence_and_show_config(tmp_path, capsys):
    toml = tmp_path / "study.toml"
    toml.write_text("""
algos = ["ppo", "trpo"]
envs = ["gymnax/CartPole-v1", "gymnax/Acrobot-v1"]
seeds = 3
[settings]
total_steps = 100000
num_envs = 2
learning_rate = 1
[algo.trpo]
max_kl = 0.02
num_envs = 3
[env."gymnax/CartPole-v1"]
num_envs = 16
[cell.ppo."gymnax/CartPole-v1"]
learning_rate = 1e-3
num_envs = 32
""")
    cmd = command.StudyCommand(config=str(toml), total_steps=64000)
    study = command.spec_of(cmd).resolve()
    got = {(c.algo, c.env): c.config for c in study.cells}
    pc, pa = got["ppo", "gymnax/CartPole-v1"], got["ppo", "gymnax/Acrobot-v1"]
    tc, ta = got["trpo", "gymnax/CartPole-v1"], got["trpo", "gymnax/Acrobot-v1"]
    assert (pc.num_envs, pa.num_envs, tc.num_envs, ta.num_envs) == (32, 2, 16, 3)
    assert (pc.learning_rate, pa.learning_rate) == (1e-3, 1.0)  # TOML int 1 -> float
    assert (tc.max_kl, pc.max_kl) == (0.02, 0.01)
    assert {c.config.total_steps for c in study.cells} == {64000}  # the flag wins
    assert study.seeds == 3
    a2c = spec.spec_from_dict({"algos": ["a2c"], "envs": ["gymnax/CartPole-v1"]}).resolve()
    assert a2c.cells[0].config.num_steps == 5  # a2c's own defaults come first
    assert command.main(["--config", str(toml), "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert '[cell.ppo."gymnax/CartPole-v1"]' in shown and "num_envs = 32" in shown
    assert "gamma" not in shown  # only fields that differ from the defaults
    import tomllib

    assert tomllib.loads(shown)["cell"]["trpo"]["gymnax/Acrobot-v1"]["max_kl"] == 0.02


def test_bad_toml_and_flags_are_one_line(tmp_path, capsys):
    def toml(text: str) -> str:
        path = tmp_path / "bad.toml"
        path.write_text('algos = ["ppo", "trpo"]\nenvs = ["gymnax/CartPole-v1"]\n' + text)
        return one_error(["--config", str(path), "--out", str(tmp_path / "o")], capsys)

    assert toml("[algo.trpo]\nmaxkl = 0.1\n") == (
        "vecpg: error: invalid algo.trpo.maxkl: unknown setting (did you mean max_kl?); "
        "allowed: TrainConfig fields (`vecpg train --help`)"
    )
    assert toml("[algo.trpo]\nmax_kl = -1\n").startswith(
        "vecpg: error: invalid algo.trpo.max_kl=-1.0: must be a finite number > 0"
    )
    assert toml('[env."gymnax/CartPole-v1"]\nnum_envs = "8"\n') == (
        "vecpg: error: invalid env.\"gymnax/CartPole-v1\".num_envs='8': must be an integer"
    )
    assert "invalid algo.npg: 'npg' is not in algos" in toml("[algo.npg]\nmax_kl = 0.1\n")
    assert "invalid settings.algo" in toml("[settings]\nalgo = 'ppo'\n")
    assert "unknown study key (did you mean seeds?)" in toml("sedes = 3\n")
    assert "not TOML" in toml("[algo\n")
    flags = ["--algos", "ppo", "--envs", "gymnax/CartPole-v1", "--out", str(tmp_path / "o")]
    assert one_error([*flags[:1], "ppo,nope", *flags[2:]], capsys) == (
        "vecpg: error: invalid algos entry 'nope': allowed: a2c, ppo, ppo_kl, dual, npg, trpo"
    )
    assert one_error([*flags, "--gamma", "1.5"], capsys).startswith(
        "vecpg: error: invalid --gamma=1.5: must be in (0, 1]"
    )
    assert one_error([*flags, "--normalize-obs", "maybe"], capsys) == (
        "vecpg: error: invalid --normalize-obs='maybe': must be true or false"
    )
    assert "invalid grid.num_envs" in one_error([*flags, "--grid", "num_envs=2,4"], capsys)
    assert "invalid preset='x'" in one_error([*flags, "--preset", "x"], capsys)
    assert not (tmp_path / "o").exists()  # nothing written


def test_preset_is_the_published_playground_ppo_config():
    from mujoco_playground.config import dm_control_suite_params as published

    for task in ("CartpoleBalance", "WalkerRun"):
        c = published.brax_ppo_config(task)
        study = spec.spec_from_dict(
            {"algos": ["ppo", "trpo"], "envs": [f"playground/{task}"], "preset": "playground-dmc"}
        ).resolve()
        ppo, trpo = (x.config for x in study.cells)
        assert ppo.num_envs == c.num_envs
        assert ppo.num_steps == c.unroll_length * c.batch_size * c.num_minibatches // c.num_envs
        assert ppo.batch_size == c.batch_size * c.num_minibatches * c.unroll_length
        assert (ppo.num_minibatches, ppo.update_epochs) == (
            c.num_minibatches,
            c.num_updates_per_batch,
        )
        assert (ppo.gamma, ppo.learning_rate) == (c.discounting, c.learning_rate)
        assert (ppo.ent_coef, ppo.reward_scale) == (c.entropy_cost, c.reward_scaling)
        assert (ppo.total_steps, ppo.normalize_obs) == (c.num_timesteps, True)
        assert (ppo.hidden, ppo.activation, ppo.clip_eps) == ((32, 32, 32, 32), "swish", 0.3)
        # trpo: the same rollout, its own update settings
        assert (trpo.num_envs, trpo.num_steps, trpo.gamma) == (ppo.num_envs, 480, c.discounting)
        assert (trpo.update_epochs, trpo.max_grad_norm) == (4, 0.5)
        cpu = presets.playground_ppo(task, cpu=True)
        assert (cpu["num_envs"], cpu["total_steps"]) == (32, c.num_timesteps // 64)
        assert cpu["num_steps"] == ppo.num_steps and cpu["update_epochs"] == ppo.update_epochs
    # literal published numbers (mujoco_playground 0.2): CartpoleBalance's discount and
    # budget, WalkerRun's longer budget
    assert presets.playground_ppo("CartpoleBalance")["gamma"] == 0.995
    assert presets.playground_ppo("CartpoleBalance")["total_steps"] == 60_000_000
    assert presets.playground_ppo("WalkerRun")["total_steps"] == 100_000_000
    with pytest.raises(ConfigError, match="not a playground DM Control task"):
        spec.spec_from_dict(
            {"algos": ["ppo"], "envs": ["gymnax/CartPole-v1"], "preset": "playground-dmc"}
        )


def test_seeds_needed_matches_normal_theory():
    q = scipy.stats.norm.ppf((np.arange(1000) + 0.5) / 1000)  # N(0, 1) quantiles
    for delta in (0.8, 1.0):
        hand = power.normal_theory_seeds(1.0, delta)  # 24.5 and 15.7
        got = power.seeds_needed(q, q + delta, reps=4000)
        assert got.seeds is not None and hand - 1 <= got.seeds <= hand + 2.5, (delta, got.seeds)
    same = power.seeds_needed(q, q, reps=500)
    assert same.seeds is None and same.describe().startswith("cannot at this budget")
    assert max(same.power.values()) < 0.1  # the false-positive rate, about alpha
    assert power.seeds_needed([1.0, np.nan], [2.0, 3.0]).reason.startswith("too few scores")


def test_every_train_config_field_is_a_study_flag():
    import dataclasses

    from vecpg.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"algo", "env"}
    assert set(command.TRAIN_FLAGS) == fields


def test_per_task_median_is_over_seeds_and_nan_is_no_score():
    """Within a task the median is the seeds' median (rliable's aggregate median, the
    median of per-task means, would be the mean here); a NaN seed has no score."""
    from vecpg.studies.report import Entry, task_stats

    scores = np.array([1.0, 2.0, 3.0, 10.0, np.nan])
    row = task_stats(Entry("ppo", "e", [0, 1, 2, 3, 4], scores, {}, []))
    assert row["median"] == 2.5 and row["mean"] == 4.0
    assert row["IQM"] == pytest.approx(2.5)  # rliable's IQM of 4 runs: the middle two
    lo, hi = row["median_ci95"]
    assert 1.0 <= lo <= 2.5 <= hi <= 10.0
