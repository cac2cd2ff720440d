"""Refusal measurements and their summaries over seeds: per-prompt rows, rates with intervals,
and how often two detectors disagree.

:class:`RefusalMeasurement` is what :func:`minir1.refusal.measure` returns for one model and one
sampling seed; intervals come from :func:`minir1.stats.rate`. Every name here is re-exported by
:mod:`minir1.refusal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import stats


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
