"""`vecpg search`: trials selected on their seeds, the top ones confirmed on fresh,
disjoint seeds, both scores reported; bad input in one line before compiling."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import numpy as np
import pytest

import vecpg
from vecpg.analysis.stats import iqm
from vecpg.cli import TrainCommand, config_from, main
from vecpg.cli_args import parse
from vecpg.errors import ConfigError
from vecpg.run import files
from vecpg.tuning.run import load_search

TINY = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(16,))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "s"
    res = vecpg.search(TINY, ["lr=log:1e-4:1e-1", "clip_eps=uniform:0.1:0.3"], trials=4,
                       seeds=2, top=2, confirm_seeds=3, sampler="sobol", out=out)  # fmt: skip
    return res, out


def test_top_configs_are_confirmed_on_fresh_seeds(searched):
    res, out = searched
    s = json.loads((out / "summary.json").read_text())
    assert s["selection_seeds"] == [0, 1] and s["confirmation_seeds"] == [2, 3, 4]
    assert not set(s["selection_seeds"]) & set(s["confirmation_seeds"])
    assert res.confirmation.seeds == [2, 3, 4] and res.selection.seeds == [0, 1]
    # every trial's config and score; the top 2 are the 2 best selection scores
    scores = [t["selection_iqm"] for t in s["trials"]]
    assert len(scores) == 4 and all(np.isfinite(scores))
    assert [r["trial"] for r in s["top"]] == list(np.argsort(-np.array(scores), kind="stable")[:2])
    finals = res.selection.final_returns()
    for t in s["trials"]:
        assert t["selection_iqm"] == pytest.approx(iqm(finals[t["trial"]][:, None]))
        assert 1e-4 <= t["config"]["learning_rate"] <= 1e-1
    # the confirmation sweep ran exactly the top configs, scored on its own seeds
    assert res.confirmation.points == [s["trials"][r["trial"]]["config"] for r in s["top"]]
    for r, final in zip(s["top"], res.confirmation.final_returns(), strict=True):
        assert r["confirmed_iqm"] == pytest.approx(iqm(final[:, None]))
        lo, hi = r["confirmed_ci95"]
        assert lo <= r["confirmed_iqm"] <= hi
    # the best: the top config with the best confirmed IQM; its flags line is the whole
    # config for `vecpg train`, values exact
    confirmed = [r["confirmed_iqm"] for r in s["top"]]
    assert s["best"]["trial"] == s["top"][int(np.argmax(confirmed))]["trial"]
    best = s["trials"][s["best"]["trial"]]["config"]
    assert s["best"]["config"] == best
    cmd = parse(TrainCommand, s["best"]["flags"].split(), "vecpg train", None)
    assert config_from(cmd) == dataclasses.replace(TINY, **best)
    toml = tomllib.loads("\n".join(s["best"]["toml"]))
    assert vecpg.TrainConfig.from_dict(toml) == dataclasses.replace(TINY, **best)
    assert (out / ".vecpg-run").exists()  # a later --overwrite may replace it
    # rebuilt from its directory, the search reports the same
    assert json.loads(files.dumps(load_search(out).summary())) == s
    report = (out / "report.md").read_text()
    assert "selection IQM" in report and "confirmed IQM" in report
    assert (out / "select" / "summary.json").exists() and (out / "confirm").is_dir()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, "invalid trials=0: must be an integer >= 1"),
        ({"top": 5}, "invalid top=5: must be at most trials=4"),
        ({"sampler": "tpe", "rounds": 5}, "invalid rounds=5: must be at most trials=4"),
        ({"sampler": "grid"}, "invalid sampler='grid': allowed: random, sobol, tpe, cmaes"),
        ({"space": ["hidden=choice:8,16"]}, "invalid space 'hidden=choice:8,16': only traced"),
        ({"confirm_seeds": -1}, "invalid confirm_seeds=-1: must be an integer >= 1"),
        (
            {"space": ["clip_eps=choice:0.1,0.2"], "top": 3},
            "invalid top=3: the space holds only 2 distinct configs",
        ),
        ({"space": "lr=log:1e-4:1e-1"}, "invalid space='lr=log:1e-4:1e-1': must be a list"),
    ],
)
def test_bad_search_arguments_are_one_line_and_write_nothing(tmp_path, kwargs, message):
    args = {"space": ["lr=log:1e-4:1e-1"], "trials": 4, "out": tmp_path / "s", **kwargs}
    with pytest.raises(ConfigError) as e:
        vecpg.search(TINY, **args)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "s").exists()


def test_search_cli_refuses_a_static_field_in_one_line(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["search", "--space", "num_envs=choice:4,8", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("vecpg: error: invalid space 'num_envs=choice:4,8'")
    assert err.count("\n") == 1 and not out.exists()


def test_optuna_rounds_ask_a_batch_tell_the_scores_and_follow_them():
    """TPE asked 6 batches of 8, each scored by a stand-in for a compiled call (a peak in
    the learning rate), the scores told back: the last two batches gather at the peak,
    wherever it is (a sampler not told would stay spread over the 4 decades, median
    1e-3); a config with no score (NaN) is told as failed."""
    from vecpg.tuning.optuna_rounds import ask_tell_rounds
    from vecpg.tuning.space import parse_space

    space = parse_space(["lr=log:1e-5:1e-1", "clip_eps=uniform:0.1:0.3"])
    for peak in (-4.0, -2.0):
        seen = []

        def evaluate(r, batch, peak=peak, seen=seen):
            seen.append((r, len(batch)))
            lr = np.log10([p["learning_rate"] for p in batch])
            return [float("nan") if i == 0 else float(-((x - peak) ** 2))
                    for i, x in enumerate(lr)]  # fmt: skip

        batches = ask_tell_rounds(space, 48, 6, "tpe", 0, evaluate)
        assert seen == [(r, 8) for r in range(6)]
        late = np.log10([p["learning_rate"] for b in batches[-2:] for p in b])
        assert abs(np.median(late) - peak) < 0.5 and np.mean(np.abs(late - peak)) < 0.8, late
        for b in batches:
            assert all(1e-5 <= p["learning_rate"] <= 1e-1 and 0.1 <= p["clip_eps"] <= 0.3
                       for p in b)  # fmt: skip
        assert ask_tell_rounds(space, 48, 6, "tpe", 0, evaluate) == batches  # seeded
    cma = ask_tell_rounds(space, 12, 3, "cmaes", 0, lambda r, b: [0.0] * len(b))
    assert [len(b) for b in cma] == [4, 4, 4]


def test_tpe_search_runs_its_rounds_end_to_end(tmp_path):
    out = tmp_path / "t"
    res = vecpg.search(TINY, ["lr=log:1e-4:1e-1"], trials=4, seeds=2, top=2, confirm_seeds=3,
                       sampler="tpe", rounds=2, out=out)  # fmt: skip
    assert (out / "select-1").is_dir() and (out / "select-2").is_dir()
    s = json.loads((out / "summary.json").read_text())
    assert s["rounds"] == 2 and s["sampler"] == "tpe" and len(s["trials"]) == 4
    assert res.selection.final_returns().shape == (4, 2)
    assert json.loads(files.dumps(load_search(out).summary())) == s
    with pytest.raises(ConfigError, match="invalid rounds=2: random samples every trial"):
        vecpg.search(TINY, ["lr=log:1e-4:1e-1"], trials=4, rounds=2, out=tmp_path / "r")


def test_search_cli_top_defaults_to_three_or_the_trials(tmp_path, monkeypatch, capsys):
    """`--trials 1` alone was refused for a --top the user never gave (default 3)."""
    import vecpg.tuning.run

    seen: list[int] = []

    def stop(*args, **kwargs):
        seen.append(kwargs["top"])
        raise ConfigError("stopped before any work")

    monkeypatch.setattr(vecpg.tuning.run, "search", stop)
    base = ["search", "--space", "lr=log:1e-4:1e-1", "--out", str(tmp_path / "s")]
    for extra in (["--trials", "1"], ["--trials", "2"], ["--trials", "8"], ["--top", "5"]):
        assert main([*base, *extra]) == 2
    assert seen == [1, 2, 3, 5]
    assert capsys.readouterr().err.count("stopped before any work") == 4


def test_the_rounds_a_search_records_are_the_rounds_it_asks():
    """5 trials over the default 4 rounds ask 2 + 2 + 1: 3 rounds recorded, not 4 (a
    recorded round that never ran made the search unreadable: no select-4)."""
    from vecpg.tuning.optuna_rounds import ask_tell_rounds
    from vecpg.tuning.run import _check_rounds
    from vecpg.tuning.space import parse_space

    space = parse_space(["lr=log:1e-4:1e-1"])
    for trials, given in [(1, None), (2, None), (5, None), (6, None), (9, None), (5, 4), (7, 7)]:
        rounds = _check_rounds("tpe", given, trials)
        batches = ask_tell_rounds(space, trials, rounds, "tpe", 0, lambda r, b: [0.0] * len(b))
        assert len(batches) == rounds and sum(map(len, batches)) == trials, (trials, given)
    assert _check_rounds("tpe", None, 5) == 3 and _check_rounds("tpe", None, 32) == 4
