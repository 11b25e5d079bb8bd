"""vecpg compare on two small runs: tables, probability of improvement, PNGs, errors."""

import dataclasses

import jax
import numpy as np
import pytest

import vecpg
from vecpg import stats
from vecpg.analysis.compare import parse_score_ranges
from vecpg.cli import main

TINY = vecpg.TrainConfig(
    env="gymnax/CartPole-v1", num_envs=4, num_steps=16, total_steps=640, hidden=(16,)
)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    out = {}
    for algo in ("ppo", "a2c"):
        res = vecpg.train(dataclasses.replace(TINY, algo=algo), seeds=3)
        out[algo] = (res, res.save(root / algo))
    return out


def test_compare_writes_report_with_correct_numbers(two_runs, tmp_path, capsys):
    report_dir = tmp_path / "report"
    dirs = [str(two_runs["ppo"][1]), str(two_runs["a2c"][1])]
    assert main(["compare", *dirs, "--out", str(report_dir)]) == 0
    text = (report_dir / "report.md").read_text()

    def final_from_npz(run_dir):  # recompute from the files, not from memory
        r = np.load(run_dir / "metrics.npz")["episode_return"]
        k = max(1, round(r.shape[1] * 0.1))
        return r[:, -k:].mean(axis=1)

    ppo, a2c = final_from_npz(two_runs["ppo"][1]), final_from_npz(two_runs["a2c"][1])
    assert f"{stats.iqm(ppo[:, None]):.2f}" in text
    poi = stats.probability_of_improvement(a2c[:, None], ppo[:, None])
    assert f"| a2c | - | {poi:.2f} |" in text
    assert "Aggregate over 1 task(s)" in text
    for png in ("curves_gymnax_CartPole-v1.png", "intervals.png", "aggregate.png"):
        assert (report_dir / png).stat().st_size > 0
    assert "Probability of improvement" in capsys.readouterr().out


def test_compare_errors():
    with pytest.raises(vecpg.ConfigError, match="expected ENV=low,high"):
        parse_score_ranges(["gymnax/CartPole-v1=1"])
    assert parse_score_ranges(["a/b=0,10"]) == {"a/b": (0.0, 10.0)}
    assert main(["compare", "/nonexistent/run", "--out", "/tmp/x"]) == 2


def test_compare_keys_runs_uniquely_checks_them_and_allows_unequal_seed_counts(two_runs, tmp_path):
    """Two dirs both named `run` stay two runs (before: silently merged into one row);
    an edited config.json is refused (before: CartPole numbers reported as Acrobot); runs
    of 3 and 2 seeds compare (before: `ValueError: all input arrays must have the same
    shape`)."""
    import json
    import shutil

    ppo_res, ppo_dir = two_runs["ppo"]
    a, b = tmp_path / "dupA" / "run", tmp_path / "dupB" / "run"
    shutil.copytree(ppo_dir, a)
    two = dataclasses.replace(  # a second ppo run, of 2 seeds
        ppo_res,
        seeds=ppo_res.seeds[:2],
        metrics={k: v[:2] for k, v in ppo_res.metrics.items()},
        params=jax.tree.map(lambda x: x[:2], ppo_res.params),
    )
    two.save(b)
    out = tmp_path / "report"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    finals = ppo_res.final_returns()
    assert f"| gymnax/CartPole-v1 | dupA/run | 3 | {stats.iqm(finals[:, None]):.2f} |" in text
    assert f"| gymnax/CartPole-v1 | dupB/run | 2 | {stats.iqm(finals[:2, None]):.2f} |" in text
    poi = stats.probability_of_improvement(finals[:, None], finals[:2, None])
    assert f"| dupA/run | - | {poi:.2f} |" in text

    edited = tmp_path / "edited"
    shutil.copytree(ppo_dir, edited)
    cfg = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**cfg, "env": "gymnax/Acrobot-v1"}))
    with pytest.raises(vecpg.ConfigError, match="config.json names env 'gymnax/Acrobot-v1'"):
        vecpg.load(edited)
    (edited / "config.json").write_text(json.dumps({**cfg, "num_steps": 8}))
    with pytest.raises(vecpg.ConfigError, match="implies 20 iterations of 32 steps"):
        vecpg.load(edited)
    assert main(["compare", str(edited), str(a), "--out", str(tmp_path / "r2")]) == 2
    with pytest.raises(vecpg.ConfigError, match="given twice"):
        from vecpg.analysis.compare import collect

        collect([str(a), str(a)])
