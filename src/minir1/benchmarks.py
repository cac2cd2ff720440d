"""How much a benchmark score of n problems can tell: sampling intervals and "match" tests.

A published score (R1's 79.8% on AIME 2024) is a mean over a benchmark's n problems.  The
problems are a sample of the problems the benchmark stands for, so the score carries a
sampling interval that narrows as 1/√n: about ±15 points on AIME's 30 problems, ±1.5 on
MATH-500.  Model cards print no interval; this module computes one with :mod:`minir1.stats`
(the only way the book computes intervals), from the only thing published — the score and n.

Choices, stated rather than hidden:

- *Per-problem view.* A published pass@1 is averaged over k samples per problem, so each
  problem's score is a fraction; the per-problem scores are not published.  We treat each
  problem as solved or not (:func:`score_vector`: ⌊s·n⌋ solved, one problem holding the
  fractional rest so the mean is exact).  That is the widest interval the score allows;
  per-problem fractions would narrow it somewhat.
- *Pairing.* Two models' scores on the same problems are correlated (hard problems are hard
  for both), which narrows the interval of their difference; how much is not published.
  :func:`difference` gives the two ends: ``"independent"`` (overlap of solved problems as
  if independent, the wider interval) and ``"nested"`` (the weaker model solves a subset of
  what the stronger solves, the narrowest).
- *Simulation.* :func:`population` builds per-problem correctness vectors of two models with
  known true accuracies on a large pool of problems; :func:`match_or_exceed` draws
  benchmarks of n problems from such vectors (the same problems for both models, as a real
  benchmark is) and counts how often the truly worse model scores at least as high.  It
  takes any per-problem vectors, so measured vectors of real models can replace the
  generated ones.
- *Match.* "Match or exceed" is judged by :func:`noninferiority` against a margin declared
  before the run, so a wide interval that includes 0 is "inconclusive", never a match.

>>> m = score_interval(0.8, 30)
>>> round(m.mean, 3), m.lo < 0.7 and m.hi > 0.9
(0.8, True)
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from . import stats
from .stats import Metric
from .stats_hier import equivalence

Pairing = Literal["independent", "nested"]
PAIRINGS: tuple[str, ...] = ("independent", "nested")


def _check_score(name: str, s: float) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 <= s <= 1:
        raise ValueError(f"{name} must be a share in [0, 1] (79.8% is 0.798); got {s!r}")
    return float(s)


def _check_n(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} (problems) must be an int >= 1; got {n!r}")
    return int(n)


def score_vector(score: float, n: int) -> np.ndarray:
    """Per-problem scores (n,) in [0, 1] whose mean is ``score``: ⌊score·n⌋ ones, one
    problem with the fractional rest, zeros after (sorted descending).

    >>> score_vector(0.5, 4).tolist(), float(score_vector(0.798, 30).mean())
    ([1.0, 1.0, 0.0, 0.0], 0.798)
    """
    score, n = _check_score("score", score), _check_n(n)
    total = score * n
    k = min(int(math.floor(total + 1e-9)), n)
    v = np.zeros(n)
    v[:k] = 1.0
    if k < n:
        v[k] = max(0.0, total - k)
    return v


def _bootstrap(values: np.ndarray, unit: str, method: str) -> Metric:
    """The percentile bootstrap over problems of :func:`minir1.stats.rate` (same resampling
    distribution, same level and seed rule), drawn per distinct value: resampling n problems
    whose scores take K distinct values is a multinomial draw of K counts, so MMLU's 14,042
    problems cost K numbers per resample instead of 14,042."""
    vals, counts = np.unique(values, return_counts=True)
    n = values.size
    draws = np.random.default_rng(stats.SEED).multinomial(n, counts / n, size=stats.N_BOOT)  # (B, K)
    q = 100 * (1 - stats.LEVEL) / 2
    lo, hi = np.percentile(draws @ vals / n, [q, 100 - q])
    mean = float(values.mean())
    return Metric(mean, min(float(lo), mean), max(float(hi), mean), (mean,), n, method, unit)


def score_interval(score: float, n: int) -> Metric:
    """The sampling interval of a score averaged over ``n`` problems (problems resampled)."""
    return _bootstrap(score_vector(score, n), "rate", "bootstrap")


def _overlap_order(va: np.ndarray, vb: np.ndarray, overlap: int) -> np.ndarray:
    """Reorder ``vb`` (sorted descending) so that ``overlap`` of its solved problems sit on
    ``va``'s solved problems and the rest on ``va``'s unsolved ones."""
    n = len(va)
    a_top = [i for i in range(n) if va[i] >= 1.0]  # problems a solved
    a_rest = [i for i in range(n) if va[i] < 1.0][::-1]  # unsolved first (zeros at the end of va)
    kb = int((vb >= 1.0).sum())
    overlap = max(0, min(overlap, kb, len(a_top)))
    if kb - overlap > len(a_rest):  # not enough room: overlap more
        overlap = kb - len(a_rest)
    slots = a_top[:overlap] + a_rest[: kb - overlap]
    taken = set(slots)
    free = [i for i in range(n) if i not in taken]
    out = np.zeros(n)
    out[slots] = 1.0
    rest = vb[kb:]  # the fractional problem, then zeros
    out[free[: len(rest)]] = rest
    return out


def paired_vectors(a: float, b: float, n: int, pairing: Pairing = "independent") -> tuple[np.ndarray, np.ndarray]:
    """Per-problem vectors (n,) of two scores on the same n problems, arranged by ``pairing``."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}; got {pairing!r}")
    va, vb = score_vector(a, n), score_vector(b, n)
    if pairing == "nested":
        return va, vb  # both sorted: solved sets nested
    ka, kb = int((va >= 1).sum()), int((vb >= 1).sum())
    return va, _overlap_order(va, vb, int(round(ka * kb / n)))


def difference(a: float, b: float, n: int, pairing: Pairing = "independent") -> Metric:
    """a − b on the same ``n`` problems with a paired-bootstrap interval (:func:`minir1.stats.paired_diff`).

    >>> d = difference(0.8, 0.8, 30)
    >>> d.mean, d.lo < -0.1 and d.hi > 0.1
    (0.0, True)
    """
    va, vb = paired_vectors(a, b, n, pairing)
    return _bootstrap(va - vb, "diff", "paired-bootstrap")


def compare(diff: Metric) -> str:
    """``"leads"`` when the difference's interval lies above 0, ``"trails"`` below, else ``"tie"``."""
    if diff.lo > 0:
        return "leads"
    if diff.hi < 0:
        return "trails"
    return "tie"


def smallest_distinguishable_gap(score: float, n: int, pairing: Pairing = "independent", step: float = 0.001) -> float:
    """The smallest gap g (in steps of ``step``) for which ``score`` vs ``score − g`` on ``n``
    problems has an interval that excludes 0; 1.0 if none does."""
    score = _check_score("score", score)
    g = step
    while g <= score + 1e-12:
        if difference(score, score - g, n, pairing).lo > 0:
            return round(g, 6)
        g += step
    return 1.0


# ----------------------------------------------------------------------------- simulation
def population(
    acc_better: float, acc_worse: float, size: int, *, shared: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem correctness (size,) of two models with true accuracies ``acc_better`` and
    ``acc_worse`` on a pool of ``size`` problems.

    Each problem has a difficulty u ~ U(0, 1); a model solves it when u < its accuracy.  The
    better model uses u; the worse uses the same u with probability ``shared`` and its own
    draw otherwise, so ``shared = 1`` nests its solved problems inside the better model's
    (the most correlated pair) and ``shared = 0`` makes them independent.  Marginal
    accuracies are exact in expectation whatever ``shared`` is.
    """
    for name, v in (("acc_better", acc_better), ("acc_worse", acc_worse), ("shared", shared)):
        _check_score(name, v)
    if acc_worse > acc_better:
        raise ValueError(f"acc_worse must be <= acc_better; got {acc_worse} > {acc_better}")
    size = _check_n(size, "size")
    rng = np.random.default_rng(seed)
    u = rng.random(size)
    own = rng.random(size)
    u_w = np.where(rng.random(size) < shared, u, own)
    return (u < acc_better).astype(float), (u_w < acc_worse).astype(float)


def match_or_exceed(correct_better, correct_worse, n: int, *, draws: int, seed: int) -> Metric:
    """How often the truly worse model scores >= the better one on a benchmark of ``n``
    problems drawn (with replacement) from the pool both vectors were measured on.

    ``correct_better``, ``correct_worse``: per-problem scores (P,) in [0, 1] of the two models
    on the same P problems (measured, or from :func:`population`).  Each draw picks n
    problem indices, the same for both models.  Returns the share of draws as a rate with
    its bootstrap interval over draws.
    """
    a, b = np.asarray(correct_better, dtype=float), np.asarray(correct_worse, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"correct_better and correct_worse must be (P,) vectors on the same problems; "
            f"got shapes {a.shape} and {b.shape}"
        )
    n = _check_n(n)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an int >= 1; got {draws!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(draws, n))  # (D, n) the benchmark of each draw
    wins = (b[idx].mean(axis=1) >= a[idx].mean(axis=1) - 1e-12).astype(float)  # (D,)
    return stats.rate(wins)


# ----------------------------------------------------------------------------- "match" by equivalence
MATCH_CALLS: tuple[str, ...] = ("matches", "trails", "inconclusive")


def noninferiority(diff: Metric, margin: float) -> str:
    """A − B judged against a margin δ declared before the run, by a one-sided equivalence
    (non-inferiority) test on its interval (:func:`minir1.stats_hier.equivalence` with the
    region (−δ, 2): a difference of two shares never reaches 2): ``"matches"`` when lo > −δ (A
    is not worse by δ or more: matches or exceeds), ``"trails"`` when hi <= −δ, else
    ``"inconclusive"`` (the interval crosses −δ: too wide, or centred near it).  A wide
    interval around 0 is never a match.

    >>> noninferiority(Metric(0.006, -0.2, 0.21, unit="diff"), 0.05)
    'inconclusive'
    >>> noninferiority(Metric(-0.01, -0.017, -0.003, unit="diff"), 0.05)
    'matches'
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin must be a share in (0, 1) (5 points is 0.05); got {margin!r}")
    out = equivalence(diff.lo, diff.hi, (-margin, 2.0))
    return {"equivalent": "matches", "not equivalent": "trails", "inconclusive": "inconclusive"}[out]


def count_calls(calls) -> dict[str, float]:
    """``{n_match, n_trail, n_inconclusive, n_decided, n_benchmarks}`` of a list of calls."""
    calls = list(calls)
    bad = sorted(set(calls) - set(MATCH_CALLS))
    if bad:
        raise ValueError(f"calls must be among {MATCH_CALLS}; got {bad}")
    n = {c: float(calls.count(c)) for c in MATCH_CALLS}
    return {
        "n_match": n["matches"],
        "n_trail": n["trails"],
        "n_inconclusive": n["inconclusive"],
        "n_decided": n["matches"] + n["trails"],
        "n_benchmarks": float(len(calls)),
    }


# ----------------------------------------------------------------------------- cost per solved problem
def _log_se(m: Metric, floor: float) -> float:
    """The standard error on the log scale implied by a 95% interval (0 for an exact value)."""
    lo, hi = max(m.lo, floor), max(m.hi, floor)
    return (math.log(hi) - math.log(lo)) / (2 * 1.96)


def solved_cost_ratio(cost_a: Metric, acc_a: Metric, cost_b: Metric, acc_b: Metric) -> Metric:
    """(cost per answer ÷ accuracy) of A over that of B: what A spends per solved problem
    relative to B, with the book's reporting interval (:func:`minir1.stats_hier.conservative`'s
    rule): the hull of a problem-level interval (the four inputs' intervals combined on the log
    scale, as independent) and the seed-level t interval of the per-seed ratios (when every
    input has the same number ≥ 2 of per-seed values).  An accuracy interval reaching 0 is
    floored at half a problem (0.5 / n).  Computed from samples: never ``exact``.

    >>> e = lambda x: Metric(x, x, x, per_seed=(x, x), n=2, method="seeds")
    >>> round(solved_cost_ratio(e(2.0), e(1.0), e(1.0), e(0.5)).mean, 6)
    1.0
    """
    ms = (cost_a, acc_a, cost_b, acc_b)
    floors = [1e-300, 0.5 / max(acc_a.n, 1), 1e-300, 0.5 / max(acc_b.n, 1)]
    if min(acc_a.mean, acc_b.mean) <= 0 or min(cost_a.mean, cost_b.mean) <= 0:
        raise ValueError("accuracies and costs must be > 0 to price a solved problem")
    point = (cost_a.mean / acc_a.mean) / (cost_b.mean / acc_b.mean)
    se = math.sqrt(sum(_log_se(m, f) ** 2 for m, f in zip(ms, floors)))
    lo, hi = point * math.exp(-1.96 * se), point * math.exp(1.96 * se)
    seeds = {len(m.per_seed) for m in ms}
    per_seed: tuple[float, ...] = ()
    if len(seeds) == 1 and seeds.pop() >= 2 and all(min(m.per_seed) > 0 for m in ms):
        per_seed = tuple((ca / aa) / (cb / ab) for ca, aa, cb, ab in zip(*(m.per_seed for m in ms)))
        t = stats.seed_t_interval(per_seed)
        lo, hi = min(lo, t.lo), max(hi, t.hi)
    n = min(m.n for m in ms)
    return Metric(point, min(lo, point), max(hi, point), per_seed, n, "conservative", "ratio")


__all__ = [
    "MATCH_CALLS",
    "noninferiority",
    "count_calls",
    "solved_cost_ratio",
    "PAIRINGS",
    "score_vector",
    "score_interval",
    "paired_vectors",
    "difference",
    "compare",
    "smallest_distinguishable_gap",
    "population",
    "match_or_exceed",
]
