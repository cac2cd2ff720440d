"""minir1.stats_hier and the seed-level t interval: shapes, rules and edge cases (issue 24)."""

import numpy as np
import pytest

from minir1 import stats
from minir1.results import SCHEMA
from minir1.stats import Metric, seed_t_interval, t_quantile
from minir1.stats_hier import conservative, equivalence, hierarchical_bootstrap, hierarchical_paired_diff, tost


def test_t_quantile_matches_tables():
    table = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 10: 2.2281, 30: 2.0423, 120: 1.9799}
    for df, q in table.items():
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
        assert t_quantile(0.025, df) == pytest.approx(-q, abs=1e-4)
    assert t_quantile(0.95, 2) == pytest.approx(2.9200, abs=1e-4)
    for bad in ((0.975, 0), (0.975, 2.5), (1.0, 3), (0.0, 3)):
        with pytest.raises(ValueError):
            t_quantile(*bad)


def test_seed_t_interval():
    m = seed_t_interval([0.094, 0.330, 0.108], unit="diff")  # censorship's 5% dose, per seed
    half = 4.302652729749411 * np.std([0.094, 0.330, 0.108], ddof=1) / np.sqrt(3)
    assert m.method == "seed-t" and m.n == 3 and m.unit == "diff"
    assert m.lo == pytest.approx(m.mean - half) and m.hi == pytest.approx(m.mean + half)
    assert m.fmt() == "+17.7 pp [-15.2, +50.6]"
    assert seed_t_interval([0.5, 0.5]).lo == 0.5  # no spread, no width
    for bad in ([0.5], [], [0.1, float("nan")]):
        with pytest.raises(ValueError):
            seed_t_interval(bad)
    assert {"seed-t", "hierarchical-bootstrap", "paired-hierarchical-bootstrap", "conservative"} <= set(stats.METHODS)
    metric_schema = SCHEMA["$defs"]["metric"]["oneOf"][1]["properties"]["method"]["enum"]
    assert "conservative" in metric_schema and "seed-t" in metric_schema


def test_hierarchical_bootstrap_shapes_and_determinism():
    rng = np.random.default_rng(0)
    x = (rng.random((2, 3, 40)) < 0.4).astype(float)
    m = hierarchical_bootstrap(x, n_boot=300)
    assert m.mean == pytest.approx(x.mean()) and len(m.per_seed) == 6 and m.n == 240
    assert m == hierarchical_bootstrap(x.tolist(), n_boot=300)  # array or nested lists, same answer
    assert 0 <= m.lo <= m.mean <= m.hi <= 1
    one = hierarchical_bootstrap(x[0], n_boot=300)  # (seeds, problems): one base
    assert one.mean == pytest.approx(x[0].mean())
    ragged = [[x[0, 0], x[0, 1, :20]], [x[1, 0, :30]]]  # bases with 2 and 1 seeds, ragged problems
    r = hierarchical_bootstrap(ragged, problems="nested", n_boot=300)
    assert r.mean == pytest.approx(np.mean([np.mean([x[0, 0].mean(), x[0, 1, :20].mean()]), x[1, 0, :30].mean()]))
    with pytest.raises(ValueError, match="same problems"):
        hierarchical_bootstrap(ragged, n_boot=10)  # crossed needs the same problems everywhere
    with pytest.raises(ValueError, match="problems must be one of"):
        hierarchical_bootstrap(x, problems="mixed")
    for bad in ([], [[]], [[[]]], np.zeros((2, 2, 2, 2)), [[[0.1, float("inf")]]]):
        with pytest.raises(ValueError):
            hierarchical_bootstrap(bad, n_boot=10)


def test_clusters_resample_whole_clusters():
    # 4 clusters of 3 identical items: the cluster bootstrap sees 4 units, the item bootstrap 12.
    x = np.repeat([[1.0, 0.0, 1.0, 0.0]], 3, axis=1).reshape(1, 1, 12)
    ids = np.repeat(np.arange(4), 3)
    items = hierarchical_bootstrap(x, n_boot=2000)
    clusters = hierarchical_bootstrap(x, clusters=ids, n_boot=2000)
    assert clusters.mean == items.mean == 0.5
    assert clusters.hi - clusters.lo > items.hi - items.lo
    _, s = hierarchical_bootstrap(x, clusters=ids, n_boot=2000, return_samples=True)
    assert set(np.round(s * 4).astype(int)) <= {0, 1, 2, 3, 4}  # only whole clusters move
    with pytest.raises(ValueError, match="one id per problem"):
        hierarchical_bootstrap(x, clusters=ids[:5])


def test_paired_diff_broadcasts_a_fixed_model():
    rng = np.random.default_rng(1)
    a = (rng.random((1, 3, 50)) < 0.6).astype(float)
    b = (rng.random((1, 1, 50)) < 0.4).astype(float)  # a fixed model, measured once
    d = hierarchical_paired_diff(a, b, n_boot=300)
    assert d.mean == pytest.approx(a.mean() - b.mean()) and d.unit == "diff" and len(d.per_seed) == 3
    with pytest.raises(ValueError, match="same problems"):
        hierarchical_paired_diff(a, b[:, :, :10])
    with pytest.raises(ValueError, match="same bases"):
        hierarchical_paired_diff(a, np.concatenate([b, b]))


def test_conservative_is_never_narrower_than_either():
    b = Metric(0.177, 0.12, 0.25, per_seed=(0.094, 0.330, 0.108), n=216, method="bootstrap", unit="diff")
    c = conservative(b)
    t = seed_t_interval(b.per_seed)
    assert c.lo == t.lo and c.hi == t.hi and c.mean == b.mean and c.method == "conservative"
    wide = Metric(0.2, -0.9, 0.9, per_seed=(0.19, 0.2, 0.21), n=10, method="bootstrap")
    assert conservative(wide).lo == -0.9  # the bootstrap is wider: kept
    assert conservative(b, units=[0.1, 0.3]).hi == pytest.approx(
        0.2 + 12.7062 * np.std([0.1, 0.3], ddof=1) / 2**0.5, abs=1e-3
    )
    with pytest.raises(ValueError, match="two"):
        conservative(Metric(0.5, 0.4, 0.6, per_seed=(0.5,), method="bootstrap"))


def test_tost_outcomes():
    assert equivalence(-0.02, 0.03, 0.05) == "equivalent"
    assert equivalence(-0.06, 0.03, 0.05) == "inconclusive"
    assert equivalence(-0.2, 0.2, 0.05) == "inconclusive"  # a wide interval is never a match
    assert equivalence(0.05, 0.2, 0.05) == "not equivalent" and equivalence(-0.3, -0.05, 0.05) == "not equivalent"
    assert equivalence(0.01, 0.09, (0.0, 0.1)) == "equivalent"  # asymmetric margin
    samples = np.random.default_rng(0).normal(0.01, 0.01, 4000)
    assert tost(samples, 0.05) == "equivalent" and tost(samples, 0.02) == "inconclusive"
    assert tost(samples + 0.2, 0.05) == "not equivalent"
    for bad_margin in (0, -0.1, (0.1, -0.1), (0.0, float("inf"))):
        with pytest.raises(ValueError, match="margin"):
            equivalence(-0.01, 0.01, bad_margin)
    with pytest.raises(ValueError, match="alpha"):
        tost(samples, 0.05, alpha=0.6)
    with pytest.raises(ValueError):
        tost([], 0.05)
