"""minir1.stats: the one way the book puts intervals on numbers (pure maths, property tests)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minir1 import stats
from minir1.stats import Metric


def test_rate_hand_made():
    m = stats.rate([[1, 0, 1, 1], [1, 1, 0, 1]])
    assert m.mean == 0.75 and m.per_seed == (0.75, 0.75) and m.n == 8 and m.unit == "rate"
    assert 0 <= m.lo <= 0.75 <= m.hi <= 1
    assert stats.rate(np.ones((2, 5))).lo == 1.0  # no variation, no interval
    assert stats.rate([[0.5, 0.25]]) == stats.rate([[0.5, 0.25]])  # deterministic


def test_rate_shrinks_with_problems_and_errors():
    rng = np.random.default_rng(0)
    small, big = rng.random((3, 20)), rng.random((3, 2000))
    ws, wb = stats.rate(small), stats.rate(big)
    assert (wb.hi - wb.lo) < (ws.hi - ws.lo) / 3
    with pytest.raises(ValueError, match="scores"):
        stats.rate([])
    with pytest.raises(ValueError, match="finite"):
        stats.rate([1.0, float("nan")])
    with pytest.raises(ValueError, match=r"lie in \[0.0, 1.0\]"):
        stats.rate([1.5, 0.2])


def test_paired_diff_and_ratio():
    a = np.array([[1, 1, 1, 0], [1, 1, 0, 1]], float)
    b = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], float)
    d = stats.paired_diff(a, b)
    assert d.mean == pytest.approx(0.5) and d.unit == "diff" and d.method == "paired-bootstrap"
    assert -1 <= d.lo <= d.mean <= d.hi <= 1
    r = stats.paired_ratio(a, b)
    assert r.mean == pytest.approx(3.0) and r.unit == "ratio" and r.lo <= 3.0 <= r.hi
    # a fixed comparator measured once is repeated against every seed
    assert stats.paired_diff(a, b[:1]).mean == pytest.approx(a.mean() - b[0].mean())
    with pytest.raises(ValueError, match="same problems"):
        stats.paired_diff(a, b[:, :3])
    # identical sides: the difference is exactly 0
    z = stats.paired_diff(a, a)
    assert (z.mean, z.lo, z.hi) == (0.0, 0.0, 0.0)


def test_pairing_is_narrower_than_independent():
    rng = np.random.default_rng(1)
    skill = rng.random(300)  # problem difficulty shared by both models
    a = (rng.random((3, 300)) < np.clip(skill + 0.05, 0, 1)).astype(float)
    b = (rng.random((3, 300)) < skill).astype(float)
    d = stats.paired_diff(a, b)
    ra, rb = stats.rate(a), stats.rate(b)
    assert d.hi - d.lo < (ra.hi - ra.lo) + (rb.hi - rb.lo)


def test_over_seeds_exact_and_format():
    m = stats.over_seeds([1.0, 2.0, 3.0])
    assert m.mean == 2.0 and 1.0 <= m.lo <= 2.0 <= m.hi <= 3.0 and m.method == "seeds"
    one = stats.over_seeds([4.0])
    assert one.lo == one.hi == 4.0
    e = stats.exact(5.576e6)
    assert e.method == "exact" and e.lo == e.hi and str(e) == "5.58e+06"
    assert stats.paired_seeds([2, 3], [1, 1]).mean == 1.5
    assert str(Metric(0.846, 0.817, 0.876, unit="rate", method="bootstrap", n=10)) == "84.6% [81.7, 87.6]"
    assert str(Metric(0.8, 0.784, 0.815, unit="diff", method="paired-bootstrap", n=10)) == "+80.0 pp [+78.4, +81.5]"
    assert str(Metric(1.04, 0.98, 1.10, unit="ratio", method="paired-bootstrap", n=10)) == "1.04× [0.98, 1.10]"
    with pytest.raises(ValueError, match="method"):
        Metric(1, 1, 1, method="t")
    with pytest.raises(ValueError, match="lo <= hi"):
        Metric(1, 2, 1.5)
    assert Metric.from_dict(m.to_dict()) == m and Metric.from_dict(3.0) == stats.exact(3.0)


def test_pass_at_k_unbiased_and_curve():
    from itertools import combinations

    n, c = 6, 2
    for k in range(1, n + 1):  # brute force: share of k-subsets holding a correct sample
        subsets = list(combinations(range(n), k))
        brute = np.mean([any(i < c for i in s) for s in subsets])
        assert stats.pass_at_k_estimate(n, c, k) == pytest.approx(brute)
    curve = stats.pass_at_k([[0, 2, 6], [1, 2, 5]], 6, [1, 2, 4, 8])
    assert set(curve) == {1, 2, 4} and curve[1].mean <= curve[2].mean <= curve[4].mean
    with pytest.raises(ValueError, match="k must be <="):
        stats.pass_at_k_estimate(2, 1, 3)
    low = {1: Metric(0.1, 0.1, 0.1), 4: Metric(0.5, 0.5, 0.5)}
    high = {1: Metric(0.3, 0.3, 0.3), 4: Metric(0.4, 0.4, 0.4)}
    assert stats.crossover_k(high, low) == 4 and stats.crossover_k(low, high) == 1


# ----------------------------------------------------------------------------- coverage (property tests)
def _coverage(make, truth, trials=400):
    hits = 0
    for t in range(trials):
        m = make(np.random.default_rng(1000 + t))
        hits += m.lo <= truth <= m.hi
    return hits / trials


def test_rate_interval_covers_the_truth_sampling_seeds():
    # One model, 3 sampling seeds x 150 problems; each problem has its own difficulty.
    def make(rng):
        p = rng.beta(2, 3, size=150)
        return stats.rate((rng.random((3, 150)) < p).astype(float), seeds="sampling", n_boot=400)

    cov = _coverage(make, truth=2 / 5)
    assert 0.90 <= cov <= 0.99, cov


def test_rate_interval_covers_the_truth_training_seeds():
    # 3 separately trained models (a random effect per seed, sd 0.04) x 150 problems.
    def make(rng):
        p = rng.beta(2, 3, size=150)
        shift = rng.normal(0, 0.04, size=(3, 1))
        return stats.rate((rng.random((3, 150)) < np.clip(p + shift, 0, 1)).astype(float), n_boot=400)

    cov = _coverage(make, truth=2 / 5)
    assert 0.90 <= cov <= 0.99, cov


def test_sampling_seeds_alone_would_undercover_trained_seeds():
    # Why training seeds are resampled: ignoring a real seed effect gives too narrow intervals.
    def make(rng):
        p = rng.beta(2, 3, size=150)
        shift = rng.normal(0, 0.04, size=(3, 1))
        return stats.rate((rng.random((3, 150)) < np.clip(p + shift, 0, 1)).astype(float), seeds="sampling", n_boot=400)

    assert _coverage(make, truth=2 / 5, trials=200) < 0.90


def test_paired_diff_interval_covers_the_truth():
    def make(rng):
        p = rng.beta(2, 3, size=150)
        a = (rng.random((3, 150)) < np.clip(p + 0.1, 0, 1)).astype(float)
        b = (rng.random((3, 150)) < p).astype(float)
        return stats.paired_diff(a, b, seeds="sampling", n_boot=400)

    # E[min(0.1, 1 - p)] for p ~ Beta(2, 3), by a 4-million-draw Monte Carlo (error ~1e-5)
    p = np.random.default_rng(7).beta(2, 3, size=4_000_000)
    truth = float(np.minimum(0.1, 1 - p).mean())
    cov = _coverage(make, truth=truth)
    assert 0.90 <= cov <= 0.99, cov


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=5, max_size=5), min_size=1, max_size=4))
def test_rates_never_leave_0_1(rows):
    m = stats.rate(rows, n_boot=200)
    assert 0.0 <= m.lo <= m.mean <= m.hi <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(2, 30), st.integers(0, 10_000))
def test_differences_never_leave_minus1_1(s, p, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.random((s, p)) < 0.5).astype(float), (rng.random((s, p)) < 0.5).astype(float)
    d = stats.paired_diff(a, b, n_boot=200)
    assert -1.0 <= d.lo <= d.mean <= d.hi <= 1.0


def test_as_metric_is_the_one_coercion():
    m = Metric(mean=0.5, lo=0.4, hi=0.6, per_seed=(0.45, 0.55), n=2, method="seeds", unit="rate")
    assert stats.as_metric(m) is m  # a Metric passes through
    assert stats.as_metric(m.to_dict()) == m  # its JSON form comes back equal
    assert stats.as_metric(3) == stats.exact(3.0)  # a plain number is exact
    with pytest.raises(ValueError, match="not a metric"):
        stats.as_metric({"lo": 0.1})
