"""The search space: parsing with one-line errors, and samplers against their
definitions (bounds, log-uniformity by a KS test, choice frequencies, Sobol's balance)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vecpg.errors import ConfigError
from vecpg.tuning.space import Dimension, parse_space, sample, unit_points


def test_parse_space_reads_each_kind_and_alias():
    space = parse_space(["lr=log:1e-5:1e-2", "clip-eps=uniform:0.1:0.3",
                         "max_kl=choice:0.005,0.01,0.02"])  # fmt: skip
    assert space == (
        Dimension("learning_rate", "log", 1e-5, 1e-2),
        Dimension("clip_eps", "uniform", 0.1, 0.3),
        Dimension("max_kl", "choice", values=(0.005, 0.01, 0.02)),
    )
    assert space[0].describe() == "learning_rate=log:1e-05:0.01"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["num_envs=choice:8,16"], "invalid space 'num_envs=choice:8,16': only traced "
         "hyperparameters can be searched in one program ("),
        (["lr=normal:0:1"], "invalid space 'lr=normal:0:1': expected name=log:LOW:HIGH"),
        (["lr"], "invalid space 'lr': expected name=log:LOW:HIGH"),
        (["lr=log:1e-2:1e-5"], "invalid space 'lr=log:1e-2:1e-5': log needs LOW:HIGH with "
         "LOW < HIGH"),
        (["ent_coef=log:0:0.1"], "invalid space 'ent_coef=log:0:0.1': log needs LOW > 0"),
        (["lr=log:1e-5"], "invalid space 'lr=log:1e-5': log needs LOW:HIGH"),
        (["lr=uniform:a:b"], "invalid space 'lr=uniform:a:b': 'a:b' must be numbers"),
        (["gamma=uniform:0.9:1.5"], "invalid space 'gamma=uniform:0.9:1.5': invalid "
         "gamma=1.5: must be in (0, 1]"),
        (["max_kl=choice:0.01,0.01"], "invalid space 'max_kl=choice:0.01,0.01': the choices "
         "must be distinct"),
        (["lr=log:1e-5:1e-2", "lr=log:1e-4:1e-3"], "invalid space 'lr=log:1e-4:1e-3': "
         "learning_rate is given twice"),
        ([], "invalid space: give at least one --space"),
    ],
)  # fmt: skip
def test_bad_space_specs_are_one_line(items, message):
    with pytest.raises(ConfigError) as e:
        parse_space(items)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_samples_follow_their_distributions(sampler):
    space = parse_space(["lr=log:1e-5:1e-2", "clip_eps=uniform:0.1:0.3",
                         "max_kl=choice:0.005,0.01,0.02"])  # fmt: skip
    draws = sample(space, 4096, sampler, seed=3)
    lr = np.array([d["learning_rate"] for d in draws])
    clip = np.array([d["clip_eps"] for d in draws])
    kl = np.array([d["max_kl"] for d in draws])
    assert lr.min() >= 1e-5 and lr.max() <= 1e-2 and clip.min() >= 0.1 and clip.max() <= 0.3
    # log-uniform: log10(lr) is uniform on [-5, -2]; uniform: clip on [0.1, 0.3]
    assert stats.kstest(np.log10(lr), stats.uniform(-5, 3).cdf).pvalue > 0.01
    assert stats.kstest(clip, stats.uniform(0.1, 0.2).cdf).pvalue > 0.01
    # ... and lr is NOT uniform on the raw scale (the test can tell them apart)
    assert stats.kstest(lr, stats.uniform(1e-5, 1e-2 - 1e-5).cdf).pvalue < 1e-6
    counts = np.array([np.sum(kl == v) for v in (0.005, 0.01, 0.02)])
    assert stats.chisquare(counts).pvalue > 0.01 and counts.sum() == 4096
    # the same seed gives the same draws; another seed others
    assert sample(space, 8, sampler, seed=3) == draws[:8]
    assert sample(space, 8, sampler, seed=3) == sample(space, 8, sampler, seed=3)
    assert sample(space, 8, sampler, seed=4) != sample(space, 8, sampler, seed=3)


def test_sobol_points_are_balanced_where_random_ones_are_not():
    """A scrambled Sobol set of 2^k points puts exactly 2^(k-m) points in each of the
    2^m equal slices of every coordinate (a (t, m, s)-net property)."""
    pts = unit_points(256, 3, "sobol", seed=0)
    for j in range(3):
        counts = np.bincount((pts[:, j] * 16).astype(int), minlength=16)
        assert (counts == 16).all(), counts
    rnd = unit_points(256, 3, "random", seed=0)
    assert not all((np.bincount((rnd[:, j] * 16).astype(int), minlength=16) == 16).all()
                   for j in range(3))  # fmt: skip
    with pytest.raises(ConfigError, match="invalid sampler='grid': allowed: random, sobol"):
        unit_points(4, 1, "grid", 0)
