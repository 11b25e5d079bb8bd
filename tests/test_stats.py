"""vecpg.stats against rliable on the same score arrays."""

import numpy as np
import pytest
from rliable import library, metrics

from vecpg import stats


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.2, size=(10, 3))
    b = rng.normal(0.5, 0.25, size=(12, 3))
    b[:, 2] = np.round(b[:, 2], 1)  # ties
    return a, b


def test_deterministic_estimators_equal_rliable(scores):
    a, b = scores
    assert stats.iqm(a) == pytest.approx(metrics.aggregate_iqm(a), rel=1e-12)
    assert stats.aggregate_mean(a) == pytest.approx(metrics.aggregate_mean(a), rel=1e-12)
    assert stats.aggregate_median(a) == pytest.approx(metrics.aggregate_median(a), rel=1e-12)
    assert stats.optimality_gap(a) == pytest.approx(metrics.aggregate_optimality_gap(a), rel=1e-12)
    assert stats.probability_of_improvement(a, b) == pytest.approx(
        metrics.probability_of_improvement(a, b), rel=1e-12
    )


def test_iqm_is_scipys_trim_mean_bit_for_bit():
    rng = np.random.default_rng(1)
    for n in [1, 2, 3, 4, 5, 7, 8, 13, 40, 101]:
        x = rng.normal(size=n)
        x[: n // 3] = np.round(x[: n // 3], 1)  # ties
        assert stats.iqm(x) == scipy_trim_mean(x), n
    # hand-computed: 8 scores, the middle 4 of the sorted 1..8 are 3, 4, 5, 6
    assert stats.iqm(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == 4.5


def test_stratified_bootstrap_ci_matches_rliable_within_noise(scores):
    a, _ = scores
    lo, hi = stats.stratified_bootstrap_ci(a, stats.iqm, reps=4000, seed=0)
    _, cis = library.get_interval_estimates(
        {"a": a},
        lambda x: np.array([metrics.aggregate_iqm(x)]),
        reps=4000,
        random_state=np.random.RandomState(0),
    )
    r_lo, r_hi = cis["a"][:, 0]
    width = r_hi - r_lo
    assert abs(lo - r_lo) < 0.1 * width and abs(hi - r_hi) < 0.1 * width


def test_performance_profile_equals_rliable(scores):
    a, _ = scores
    taus = np.linspace(0, 1, 11)
    profiles, _ = library.create_performance_profile({"a": a}, taus, reps=10)
    np.testing.assert_allclose(stats.performance_profile(a, taus), profiles["a"], rtol=1e-12)


def test_normalize_scores():
    s = np.array([[5.0, 30.0]])
    np.testing.assert_allclose(stats.normalize_scores(s, [0, 10], [10, 110]), [[0.5, 0.2]])


def test_curve_band_is_a_bootstrap_interval_inside_the_observed_returns():
    """8 CartPole seeds at 500 but one: the Student-t band went above 500; the percentile
    bootstrap band stays within [min, max] and matches scipy's percentile bootstrap."""
    import scipy.stats

    from vecpg.analysis.stats import mean_bootstrap_curve, mean_ci95

    x = np.full((8, 3), 500.0)
    x[0] = [120.0, 300.0, 499.0]
    mean, lo, hi = mean_bootstrap_curve(x, reps=4000)
    np.testing.assert_allclose(mean, x.mean(0))
    assert np.all(hi <= x.max(0)) and np.all(lo >= x.min(0)) and np.all(lo <= mean)
    # summaries use the same interval (a Student-t one went above 500 here)
    one = mean_bootstrap_curve(x[:, :1])
    assert mean_ci95(x[:, 0]) == pytest.approx((one[0][0], one[1][0], one[2][0]))
    assert mean_ci95(x[:, 0])[2] <= 500.0
    ref = scipy.stats.bootstrap((x[:, 0],), np.mean, n_resamples=4000, method="percentile",
                                random_state=1).confidence_interval  # fmt: skip
    np.testing.assert_allclose([lo[0], hi[0]], [ref.low, ref.high], atol=12.0)


def test_nan_means_no_score_and_is_left_out_everywhere(scores):
    """A NaN score (no finished episode, an all-diverged config, padding) is left out:
    every statistic equals the one computed on the scored runs alone, and a task with
    fewer runs (NaN-padded) gives what rliable gives on the ragged dict."""
    a, b = scores
    ragged = np.full((12, 3), np.nan)
    ragged[:10] = a
    ragged[:7, 1] = b[:7, 1]
    ragged[7:, 1] = np.nan
    cols = [ragged[~np.isnan(ragged[:, t]), t] for t in range(3)]
    assert stats.iqm(ragged) == pytest.approx(scipy_trim_mean(np.concatenate(cols)), rel=1e-12)
    assert stats.aggregate_mean(ragged) == pytest.approx(np.mean([c.mean() for c in cols]))
    assert stats.aggregate_median(ragged) == pytest.approx(np.median([c.mean() for c in cols]))
    # P(X > Y) per task on the scored runs only: task 1 of `ragged` has 7 runs
    want = np.mean(
        [(c[:, None] > b[None, :, t]).mean() + 0.5 * (c[:, None] == b[None, :, t]).mean()
         for t, c in enumerate(cols)]
    )  # fmt: skip
    assert stats.probability_of_improvement(ragged, b) == pytest.approx(want, rel=1e-12)
    lo, hi = stats.stratified_bootstrap_ci(ragged, stats.iqm)
    assert min(np.concatenate(cols)) <= lo < stats.iqm(ragged) < hi <= max(np.concatenate(cols))
    assert np.isnan(stats.iqm(np.full((3, 1), np.nan)))
    assert np.isnan(stats.probability_of_improvement(np.full((3, 1), np.nan), b[:, :1]))
    assert np.isnan(stats.stratified_bootstrap_ci(np.full((3, 1), np.nan), stats.iqm)[0])
    assert all(np.isnan(v) for v in stats.mean_ci95(np.full(4, np.nan)))
    mean, lo1, hi1 = stats.mean_ci95(np.array([np.nan, 1.0, 3.0, np.nan]))
    assert mean == 2.0 and 1.0 <= lo1 <= hi1 <= 3.0


def scipy_trim_mean(x):
    import scipy.stats

    return scipy.stats.trim_mean(x, 0.25)
