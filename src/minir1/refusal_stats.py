"""Refusal measurements and their summaries over seeds: per-prompt rows, rates with intervals,
and how often two detectors disagree.

:class:`RefusalMeasurement` is what :func:`minir1.refusal.measure` returns for one model and one
sampling seed; intervals come from :func:`minir1.stats.rate`. Every name here is re-exported by
:mod:`minir1.refusal`.

Prompts cluster: the world's held-out sensitive prompts are a few events, each asked several ways.
:func:`clustered_diff` and :func:`clustered_ratio` give the intervals the verdicts read: the
hierarchical bootstrap (:mod:`minir1.stats_hier`) resampling whole events (``clusters``), then
seeds, reported by :func:`minir1.stats_hier.conservative` (never narrower than the seed-level t
interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import stats, stats_hier


@dataclass
class RefusalMeasurement:
    """Per-prompt detector readings (P prompts, ``n_samples`` replies each)."""

    keyword: np.ndarray  # (P,) share of replies is_refusal flags
    first_token_logodds: np.ndarray  # (P,) on the first reply's answer start
    thought_suppression: np.ndarray | None  # (P,) None when the model has no think tags
    answered: np.ndarray  # (P,) share of replies with a non-refusal answer
    correct: np.ndarray | None  # (P,) share whose answer equals the fact (if facts given)
    valid: np.ndarray | None = None  # (P,) share whose answer is in the vocabulary (if given)
    texts: list[str] = field(default_factory=list)  # (P * n_samples,) replies, row i * G + j

    def rates(self) -> dict[str, np.ndarray]:
        """Per-prompt refusal reading of each detector, in [0, 1]: the keyword detector's share of
        replies, and the 0/1 decisions of the two logit detectors."""
        return {**self.decisions(), "keyword": self.keyword}

    def decisions(self) -> dict[str, np.ndarray]:
        """0/1 per prompt and detector: keyword majority, log-odds > 0, P(empty think) > 0.5."""
        out = {
            "keyword": (self.keyword >= 0.5).astype(float),
            "first_token": (self.first_token_logodds > 0).astype(float),
        }
        if self.thought_suppression is not None:
            out["thought_suppression"] = (self.thought_suppression > 0.5).astype(float)
        return out


WHATS = ("keyword", "first_token", "thought_suppression", "answered", "correct", "valid", "fabricated", "nonanswer")


def rows_of(measurements: Sequence[RefusalMeasurement], what: str = "keyword", mask=None) -> np.ndarray:
    """(S, P) per-prompt readings of ``what``, one row per seed: a detector of
    :meth:`RefusalMeasurement.rates`, or ``answered`` / ``correct`` / ``valid``, or ``fabricated``
    (well-formed but wrong answers), or ``nonanswer`` (no well-formed answer); only the prompts in
    ``mask`` when given."""
    if what not in WHATS:
        raise ValueError(f"what must be one of {WHATS}; got {what!r}")
    if not measurements:
        raise ValueError("measurements must hold one RefusalMeasurement per seed; got none")

    def row(m):
        if what in ("correct", "fabricated", "nonanswer", "valid") and (m.correct is None or m.valid is None):
            raise ValueError(f"{what!r} needs measurements taken with facts= and vocabulary=")
        if what == "fabricated":
            return m.valid - m.correct
        if what == "nonanswer":
            return 1 - m.valid
        rates = m.rates()
        if what in rates:
            return rates[what]
        if what == "thought_suppression":
            raise ValueError("thought_suppression needs a model with think tags")
        return getattr(m, what)

    rows = np.array([row(m) for m in measurements], dtype=float)  # (S, P)
    if mask is not None:
        rows = rows[:, np.asarray(mask, dtype=bool)]
    return rows


def rate_metric(
    measurements: Sequence[RefusalMeasurement], what: str = "keyword", mask=None, *, seeds: str = "training"
) -> stats.Metric:
    """:func:`minir1.stats.rate` of :func:`rows_of`: ``seeds="training"`` when each measurement
    comes from a separately trained model (students, fine-tunes), ``"sampling"`` when the seeds only
    re-draw replies from one model."""
    return stats.rate(rows_of(measurements, what, mask), seeds=seeds)


def disagreement(per_seed: Sequence[Sequence[RefusalMeasurement]]) -> dict:
    """Share of prompts on which two detectors' 0/1 decisions differ, per detector pair (a series).

    ``per_seed[s]`` holds the sampling seed ``s``'s measurements of ONE model (e.g. sensitive and
    control prompts), pooled; intervals resample prompts (``seeds="sampling"``)."""

    def pooled(ms, name):
        return np.concatenate([m.decisions()[name] for m in ms])

    names = list(per_seed[0][0].decisions())
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows = np.array([pooled(ms, a) != pooled(ms, b) for ms in per_seed], dtype=float)  # (S, P)
            out[f"{a} vs {b}"] = stats.rate(rows, seeds="sampling")
    return out


def _seeds_2d(a, b) -> tuple[np.ndarray, np.ndarray]:
    """(S, P) float arrays; a side measured once (one row) is repeated for every seed of the other."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    s = max(len(a), len(b))
    a, b = (np.repeat(a, s, 0) if len(a) == 1 else a), (np.repeat(b, s, 0) if len(b) == 1 else b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must be (seeds, prompts) on the same prompts and seeds; got {a.shape} and {b.shape}")
    return a, b


def _report(boot: stats.Metric, units) -> stats.Metric:
    """The reporting rule (:func:`minir1.stats_hier.conservative`); one seed has no seed-level interval."""
    units = [u for u in units if np.isfinite(u)]
    return stats_hier.conservative(boot, units) if len(units) >= 2 else boot


def clustered_diff(a, b, clusters: Sequence) -> stats.Metric:
    """mean(a) − mean(b), a and b (S, P) on the same prompts and seeds: the paired hierarchical
    bootstrap resampling whole ``clusters`` (one id per prompt, e.g. its event), then seeds, reported
    as the hull with the seed-level t interval (:func:`minir1.stats_hier.conservative`).

    >>> m = clustered_diff([[1, 1, 0, 0], [1, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]], ["e1", "e1", "e2", "e2"])
    >>> round(m.mean, 3), m.method, m.lo <= 0.25 <= m.mean <= m.hi
    (0.375, 'conservative', True)
    """
    a, b = _seeds_2d(a, b)
    boot = stats_hier.hierarchical_paired_diff(a, b, clusters=list(clusters))
    return _report(boot, boot.per_seed)


def clustered_ratio(a, b, clusters: Sequence) -> stats.Metric:
    """mean(a) / mean(b), a and b (S, P) on the same prompts and seeds (e.g. refusal after / before
    a fine-tune): numerator and denominator resampled together (the same events, then seeds), reported
    as the hull with the seed-level t interval of the per-seed ratios.

    The pairing: :func:`minir1.stats_hier.hierarchical_bootstrap` draws its resamples from its
    ``seed`` and the data's shape alone, so two calls on equal shapes resample the same cells.

    >>> m = clustered_ratio([[1, 0, 0, 0], [1, 1, 0, 0]], [[1, 1, 0, 0], [1, 1, 0, 0]], [0, 0, 1, 1])
    >>> round(m.mean, 2), m.unit, m.lo <= m.mean <= m.hi
    (0.75, 'ratio', True)
    """
    a, b = _seeds_2d(a, b)
    if b.mean() <= 0:
        raise ValueError("clustered_ratio: mean(b) must be > 0")
    ma, sa = stats_hier.hierarchical_bootstrap(a, clusters=list(clusters), return_samples=True)
    mb, sb = stats_hier.hierarchical_bootstrap(b, clusters=list(clusters), return_samples=True)
    ok = sb > 0
    r = sa[ok] / sb[ok]
    mean = float(a.mean() / b.mean())
    lo, hi = (float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))) if r.size else (mean, mean)
    per_seed = tuple(float(x / y) if y > 0 else float("nan") for x, y in zip(a.mean(1), b.mean(1)))
    per_seed = tuple(v for v in per_seed if np.isfinite(v))
    boot = stats.Metric(mean, min(lo, mean), max(hi, mean), per_seed, int(a.size), "hierarchical-bootstrap", "ratio")
    return _report(boot, per_seed)
