"""Uncertainty from every source a comparison has: bases, then seeds, then problems.

:mod:`minir1.stats` resamples problems and seeds of one pretrained base.  This module adds
what a verdict needs when seeds are few, bases are several, or problems cluster:

* :func:`hierarchical_bootstrap` — the nested bootstrap (Davison & Hinkley 1997, §3.8;
  Saravanan et al. 2020): resample bases with replacement, then, inside each drawn base, its
  seeds, then the problems.  Problems are *crossed* by default (every seed answered the same
  eval set: one problem resample per replicate, shared by every seed, as :func:`minir1.stats.rate`
  does) or *nested* (each seed its own problems: resampled per seed).  ``clusters`` names each
  problem's cluster (censorship's 72 prompts in 18 events): whole clusters are resampled, not items.
* :func:`hierarchical_paired_diff` — the same for A − B on the same bases, seeds and problems.
* :func:`conservative` — **the reporting rule**: the reported interval is the hull of the
  hierarchical bootstrap's and the seed-level t interval (:func:`minir1.stats.seed_t_interval`),
  so it is never narrower than the seed-to-seed variation justifies.  A percentile bootstrap
  over three seeds cannot reach beyond the seeds' own range; the t interval (df = 2) can.
* :func:`tost` — two one-sided tests for equivalence against a margin declared before the run:
  ``equivalent``, ``not equivalent`` or ``inconclusive``.

Scores may be an array (bases, seeds, problems), (seeds, problems) for one base, or a nested
list bases → seeds → problems with ragged sizes.  The point estimate is the hierarchical mean:
the mean over bases of the mean over seeds of the mean over problems (the grand mean when the
array is rectangular and there are no clusters).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .stats import LEVEL, N_BOOT, SEED, Metric, _interval, seed_t_interval

PROBLEM_DESIGNS = ("crossed", "nested")
TOST_OUTCOMES = ("equivalent", "not equivalent", "inconclusive")


def _cells(scores) -> list[list[np.ndarray]]:
    """bases → seeds → 1-D float arrays of problem scores, checked."""
    if isinstance(scores, np.ndarray):
        if scores.ndim == 2:
            scores = scores[None]
        if scores.ndim != 3:
            raise ValueError(f"scores must be (bases, seeds, problems) or (seeds, problems); got shape {scores.shape}")
    if len(scores) == 0:
        raise ValueError("scores must hold at least one base")
    out = []
    for b, base in enumerate(scores):
        if len(base) == 0:
            raise ValueError(f"base {b} has no seeds")
        seeds = [np.asarray(x, dtype=float) for x in base]
        for s, x in enumerate(seeds):
            if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
                raise ValueError(f"base {b}, seed {s}: problem scores must be a non-empty 1-D list of finite numbers")
        out.append(seeds)
    return out


def _problem_weights(rng, n: int, n_problems: int, clusters) -> np.ndarray:
    """(n, P) bootstrap multiplicities of the problems: items, or whole clusters."""
    if clusters is None:
        return rng.multinomial(n_problems, np.full(n_problems, 1.0 / n_problems), size=n).astype(float)
    ids = np.asarray(clusters)
    if ids.shape != (n_problems,):
        raise ValueError(f"clusters must give one id per problem ({n_problems}); got shape {ids.shape}")
    _, which = np.unique(ids, return_inverse=True)
    k = int(which.max()) + 1
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n).astype(float)
    return counts[:, which]


def _cell_means(cells, rng, n_boot: int, problems: str, clusters) -> tuple[np.ndarray, list[float]]:
    """(n_boot, cells) resampled problem means of every (base, seed) cell, and their observed means."""
    flat = [x for base in cells for x in base]
    sizes = {x.size for x in flat}
    if (problems == "crossed" or clusters is not None) and len(sizes) > 1:
        raise ValueError(
            f"{problems} problems{' with clusters' if clusters is not None else ''} need the same problems "
            f"in every seed; got sizes {sorted(sizes)}"
        )
    if problems == "crossed":
        w = _problem_weights(rng, n_boot, flat[0].size, clusters)  # one resample shared by every cell
        boot = (w @ np.stack(flat).T) / w.sum(1, keepdims=True)
    else:
        cols = []
        for x in flat:  # each cell resamples its own problems
            w = _problem_weights(rng, n_boot, x.size, clusters)
            cols.append((w @ x) / w.sum(1))
        boot = np.stack(cols, axis=1)
    observed = [float(x.mean()) for x in flat]  # all weights one: the plain mean, clusters or not
    return boot, observed


def _nested_mean(cells, cell_boot: np.ndarray, rng, n_boot: int) -> np.ndarray:
    """(n_boot,) hierarchical means: draw bases, then for each drawn base its seeds."""
    n_bases = len(cells)
    n_seeds = np.array([len(b) for b in cells])
    first = np.concatenate([[0], np.cumsum(n_seeds)[:-1]])  # column of each base's first seed
    s_max = int(n_seeds.max())
    base = rng.integers(0, n_bases, size=(n_boot, n_bases))  # (n_boot, slots)
    seed = np.floor(rng.random((n_boot, n_bases, s_max)) * n_seeds[base][..., None]).astype(int)
    used = np.arange(s_max) < n_seeds[base][..., None]  # a slot averages only its base's seed count
    col = np.where(used, first[base][..., None] + seed, 0)
    vals = np.take_along_axis(cell_boot, col.reshape(n_boot, -1), axis=1).reshape(col.shape)
    slot = (vals * used).sum(-1) / n_seeds[base]
    return slot.mean(-1)


def _hier(cells, *, clusters, problems: str, n_boot: int, seed: int, level: float):
    if problems not in PROBLEM_DESIGNS:
        raise ValueError(f"problems must be one of {PROBLEM_DESIGNS}; got {problems!r}")
    rng = np.random.default_rng(seed)
    # Stage 1: problems (or clusters) resampled, per cell.  Stage 2: bases, then seeds.
    cell_boot, observed = _cell_means(cells, rng, n_boot, problems, clusters)
    samples = _nested_mean(cells, cell_boot, rng, n_boot)
    per_seed, i = [], 0
    for base in cells:
        per_seed.append(observed[i : i + len(base)])
        i += len(base)
    mean = float(np.mean([np.mean(b) for b in per_seed]))
    lo, hi = _interval(samples, level)
    return mean, min(lo, mean), max(hi, mean), tuple(v for b in per_seed for v in b), samples


def hierarchical_bootstrap(
    scores,
    *,
    clusters: Sequence | None = None,
    problems: str = "crossed",
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    unit: str = "rate",
    return_samples: bool = False,
):
    """Hierarchical mean of ``scores`` with the nested bootstrap's percentile interval.

    ``scores``: (bases, seeds, problems), (seeds, problems), or nested lists with ragged sizes.
    ``clusters``: one id per problem; whole clusters are resampled.  ``problems``: ``"crossed"``
    (the same problems in every seed; default) or ``"nested"``.  ``per_seed`` holds every seed's
    mean, base by base.  With ``return_samples`` also the (n_boot,) resampled means (for :func:`tost`).

    >>> m = hierarchical_bootstrap([[[1, 0, 1, 1], [1, 1, 0, 1]]])
    >>> m.mean, m.method, 0 <= m.lo <= m.mean <= m.hi <= 1
    (0.75, 'hierarchical-bootstrap', True)
    """
    cells = _cells(scores)
    mean, lo, hi, per_seed, samples = _hier(
        cells, clusters=clusters, problems=problems, n_boot=n_boot, seed=seed, level=level
    )
    n = sum(x.size for base in cells for x in base)
    m = Metric(mean=mean, lo=lo, hi=hi, per_seed=per_seed, n=n, method="hierarchical-bootstrap", unit=unit)
    return (m, samples) if return_samples else m


def hierarchical_paired_diff(a, b, *, return_samples: bool = False, **kw):
    """A − B on the same bases, seeds and problems: the hierarchical bootstrap of the cell-wise
    differences (the same resampled bases, seeds and problems for both).  A side measured with
    one seed per base (a fixed model) is repeated for every seed of the other.  ``kw``: as
    :func:`hierarchical_bootstrap` (``unit`` is ``"diff"``).
    """
    ca, cb = _cells(a), _cells(b)
    if len(ca) != len(cb):
        raise ValueError(f"a and b must have the same bases; got {len(ca)} and {len(cb)}")
    diff = []
    for i, (ba, bb) in enumerate(zip(ca, cb)):
        if len(ba) != len(bb) and 1 not in (len(ba), len(bb)):
            raise ValueError(f"base {i}: a and b need the same number of seeds (or one); got {len(ba)} and {len(bb)}")
        s = max(len(ba), len(bb))
        ba, bb = (ba * s if len(ba) == 1 else ba), (bb * s if len(bb) == 1 else bb)
        for x, y in zip(ba, bb):
            if x.shape != y.shape:
                raise ValueError(f"base {i}: a and b must be on the same problems; got {x.size} and {y.size}")
        diff.append([x - y for x, y in zip(ba, bb)])
    kw.setdefault("unit", "diff")
    m, samples = hierarchical_bootstrap(diff, return_samples=True, **kw)
    m = Metric(m.mean, m.lo, m.hi, m.per_seed, m.n, "paired-hierarchical-bootstrap", m.unit)
    return (m, samples) if return_samples else m


def conservative(boot: Metric, units: Sequence[float] | None = None, *, level: float = LEVEL) -> Metric:
    """The reported interval: never narrower than the seed-level t interval.

    **Rule.** Report the hull of ``boot``'s interval (a hierarchical or problem bootstrap) and
    the Student t interval (df = n − 1) over the top-level units: ``units`` if given (one value
    per base when there are several bases), else ``boot.per_seed`` (one value per seed).
    lo = min(lo_boot, lo_t), hi = max(hi_boot, hi_t); the mean stays ``boot.mean``.  The
    bootstrap carries the problems' sampling error, the t interval what few seeds can say.
    Needs at least two units (one seed says nothing about seed-to-seed variation).

    >>> b = Metric(0.177, 0.12, 0.25, per_seed=(0.094, 0.330, 0.108), n=216, method="bootstrap", unit="diff")
    >>> c = conservative(b)
    >>> round(c.lo, 3), round(c.hi, 3), c.method
    (-0.152, 0.506, 'conservative')
    """
    t = seed_t_interval(boot.per_seed if units is None else units, level)
    lo, hi = min(boot.lo, t.lo, boot.mean), max(boot.hi, t.hi, boot.mean)
    return Metric(boot.mean, lo, hi, boot.per_seed, boot.n, "conservative", boot.unit)


def _margin(margin) -> tuple[float, float]:
    if isinstance(margin, (int, float)) and not isinstance(margin, bool):
        low, high = -float(margin), float(margin)
    else:
        low, high = (float(v) for v in margin)
    if not low < high or not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"margin must be δ > 0 or a pair (low, high) with low < high; got {margin!r}")
    return low, high


def tost(x, margin, alpha: float = 0.05) -> str:
    """Two one-sided tests for equivalence of a difference to 0 within ``margin``.

    ``margin``: δ > 0 (the region (−δ, +δ)) or a pair (low, high), declared before the run.
    ``x``: bootstrap samples of the difference (then the interval is their percentile
    (1 − 2α) interval: each one-sided test at level α) or a :class:`Metric` (then its interval is
    used as it is: the book's 95% interval makes each one-sided test one at α = 0.025, stricter
    than 0.05; ``alpha`` is not used).  With [lo, hi] that interval:

    * ``"equivalent"`` — low < lo and hi < high: both one-sided tests reject "the difference is
      at least the margin", on either side.
    * ``"not equivalent"`` — hi <= low or lo >= high: the whole interval lies outside the margin.
    * ``"inconclusive"`` — otherwise: the interval crosses a margin's edge (too wide, or centred
      near it); a wide interval is never read as a match.

    >>> tost(Metric(0.01, -0.02, 0.03, method="seed-t", unit="diff"), 0.05)
    'equivalent'
    >>> tost(Metric(0.0, -0.2, 0.2, method="seed-t", unit="diff"), 0.05)
    'inconclusive'
    >>> tost(Metric(-0.1, -0.15, -0.06, method="seed-t", unit="diff"), 0.05)
    'not equivalent'
    """
    if isinstance(x, Metric):
        lo, hi = x.lo, x.hi
    else:
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5); got {alpha!r}")
        v = np.asarray(x, dtype=float).ravel()
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError("samples must be a non-empty array of finite numbers")
        lo, hi = _interval(v, 1 - 2 * alpha)
    return equivalence(lo, hi, margin)


def equivalence(lo: float, hi: float, margin) -> str:
    """The TOST outcome for an interval [lo, hi] and a margin (see :func:`tost`).

    >>> equivalence(-0.02, 0.03, 0.05), equivalence(0.04, 0.2, 0.05), equivalence(0.05, 0.2, 0.05)
    ('equivalent', 'inconclusive', 'not equivalent')
    """
    low, high = _margin(margin)
    if not lo <= hi:
        raise ValueError(f"interval must have lo <= hi; got [{lo}, {hi}]")
    if low < lo and hi < high:
        return "equivalent"
    if hi <= low or lo >= high:
        return "not equivalent"
    return "inconclusive"


__all__ = [
    "hierarchical_bootstrap",
    "hierarchical_paired_diff",
    "conservative",
    "tost",
    "equivalence",
    "PROBLEM_DESIGNS",
    "TOST_OUTCOMES",
]
