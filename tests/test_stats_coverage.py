"""Coverage of the book's intervals on simulated data with known truth (issue 24).

Each replicate draws one base's seeds and one eval set from a model whose population mean is
known exactly, and asks whether the 95% interval covers it.  A seed's success probability is a
convex mix of a constant, a seed effect r ~ Beta(2, 5) and a problem difficulty q ~ Beta(1, 3),
so the truth is exact (0.3·w0 + 2/7·w_seed + 1/4·w_problem) and the mix sets which source of
variation dominates.  The rates are printed (``pytest -s``) for the record:

* the seed-level t interval (df = n − 1) covers ~93-95% everywhere;
* the hierarchical bootstrap alone covers 90-99% where problems carry most of the variation,
  but not where seeds do: a percentile bootstrap over three seeds cannot reach past the seeds'
  own range (all three draws are the lowest seed with probability 1/27 > 2.5%);
* :func:`minir1.stats_hier.conservative`, the hull of the two and the interval the book reports,
  covers 90-99% in every regime, at 3 and at 5 seeds.

Fixed RNG seeds; vectorised resampling; about 20 s on one core.
"""

import numpy as np
import pytest

from minir1.stats import seed_t_interval
from minir1.stats_hier import conservative, hierarchical_bootstrap, hierarchical_paired_diff, tost

REPS, N_BOOT, P = 200, 500, 200
# (seed weight, problem weight): problems dominate, balanced, seeds dominate, seeds only.
REGIMES = {"problems": (0.1, 0.8), "balanced": (0.3, 0.6), "seeds": (0.6, 0.3), "seeds-only": (0.9, 0.05)}


def _simulate(rng, bases: int, seeds: int, ws: float, wp: float, clusters=None, wb: float = 0.0):
    """(bases, seeds, P) 0/1 scores and the exact population mean (over bases, seeds and problems)."""
    q = rng.beta(1, 3, P) if clusters is None else rng.beta(1, 3, clusters.max() + 1)[clusters]
    r = rng.beta(2, 5, (bases, seeds))
    b = rng.beta(2, 5, bases)  # a pretrained base's effect (weight wb)
    w0 = 1 - ws - wp - wb
    pi = w0 * 0.3 + wb * b[:, None, None] + ws * r[:, :, None] + wp * q[None, None, :]
    return (rng.random((bases, seeds, P)) < pi).astype(float), w0 * 0.3 + (wb + ws) * 2 / 7 + wp * 0.25


def _coverage(seeds: int, ws: float, wp: float) -> dict[str, float]:
    rng = np.random.default_rng(seeds * 1000 + int(100 * ws))
    hits = {"hierarchical": 0, "seed-t": 0, "conservative": 0}
    for i in range(REPS):
        x, truth = _simulate(rng, 1, seeds, ws, wp)
        m = hierarchical_bootstrap(x, n_boot=N_BOOT, seed=i)
        for name, iv in (
            ("hierarchical", m),
            ("seed-t", seed_t_interval(m.per_seed)),
            ("conservative", conservative(m)),
        ):
            hits[name] += iv.lo <= truth <= iv.hi
    return {k: v / REPS for k, v in hits.items()}


@pytest.mark.parametrize("seeds", [3, 5])
def test_coverage_at_3_and_5_seeds(seeds):
    rates = {name: _coverage(seeds, *w) for name, w in REGIMES.items()}
    for name, r in rates.items():
        print(f"{seeds} seeds, {name:10s}: " + ", ".join(f"{k} {v:.1%}" for k, v in r.items()))
    for name, r in rates.items():
        assert 0.90 <= r["conservative"] <= 0.99, (name, r)  # the reported interval
        assert 0.88 <= r["seed-t"] <= 0.99, (name, r)
        assert r["conservative"] >= max(r["hierarchical"], r["seed-t"]) - 1e-12
    for name in ("problems", "balanced"):
        assert 0.90 <= rates[name]["hierarchical"] <= 0.99, (name, rates[name])
    # Where seeds dominate, the percentile bootstrap over few seeds is too narrow: the reason
    # for the rule that the reported interval is never narrower than the seed-level t interval.
    assert rates["seeds-only"]["hierarchical"] < 0.9


def test_clustered_problems_need_the_cluster_bootstrap():
    """Problems in 50 clusters of 4 share their difficulty: resampling items is too narrow."""
    clusters = np.repeat(np.arange(P // 4), 4)
    rng = np.random.default_rng(7)
    hits = {"items": 0, "clusters": 0}
    for i in range(REPS):
        x, truth = _simulate(rng, 1, 5, 0.02, 0.9, clusters=clusters)
        for name, cl in (("items", None), ("clusters", clusters)):
            m = hierarchical_bootstrap(x, clusters=cl, n_boot=N_BOOT, seed=i)
            hits[name] += m.lo <= truth <= m.hi
    rates = {k: v / REPS for k, v in hits.items()}
    print("clustered problems:", rates)
    assert 0.90 <= rates["clusters"] <= 0.99 and rates["items"] < rates["clusters"]


def test_three_bases():
    """Bases drawn from a population: resampling bases, then seeds, then problems; the rule's
    t interval is then over the three base means (df = 2)."""
    rng = np.random.default_rng(11)
    hits = {"hierarchical": 0, "conservative": 0}
    for i in range(REPS // 2):
        x, truth = _simulate(rng, 3, 3, 0.2, 0.4, wb=0.3)
        m = hierarchical_bootstrap(x, n_boot=N_BOOT, seed=i)
        units = [float(np.mean(m.per_seed[3 * b : 3 * b + 3])) for b in range(3)]
        for name, iv in (("hierarchical", m), ("conservative", conservative(m, units))):
            hits[name] += iv.lo <= truth <= iv.hi
    rates = {k: v / (REPS // 2) for k, v in hits.items()}
    print("three bases x three seeds:", rates)
    assert 0.90 <= rates["conservative"] <= 0.99, rates


def test_paired_diff_and_tost_on_simulation():
    """A − B with the same seeds and problems, B = A with 5% of its scores flipped (a shift of a
    few pp): equivalent within 10 pp, never within 0.1 pp."""
    rng = np.random.default_rng(3)
    x, _ = _simulate(rng, 1, 5, 0.3, 0.6)
    y = x.copy()
    flip = rng.random(y.shape) < 0.05
    y[flip] = 1 - y[flip]
    d, samples = hierarchical_paired_diff(x, y, n_boot=N_BOOT, return_samples=True)
    assert d.unit == "diff" and d.method == "paired-hierarchical-bootstrap" and samples.shape == (N_BOOT,)
    assert d.mean == pytest.approx(float((x - y).mean()))
    assert tost(samples, 0.10) == "equivalent" and tost(conservative(d), 0.10) == "equivalent"
    assert tost(samples, 0.001) != "equivalent" and tost(conservative(d), 0.001) != "equivalent"
