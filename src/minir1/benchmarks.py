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


def score_interval(score: float, n: int) -> Metric:
    """The sampling interval of a score averaged over ``n`` problems (:func:`minir1.stats.rate`)."""
    return stats.rate(score_vector(score, n))


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
    free = [i for i in range(n) if i not in set(slots)]
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
    return stats.paired_diff(va, vb)


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


__all__ = [
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
