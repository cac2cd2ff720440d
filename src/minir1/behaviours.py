"""A rule-based detector of cognitive behaviours in completions.

Gandhi et al. 2025 ("Cognitive Behaviors that Enable Self-Improving Reasoners", arXiv
2503.01307) found that RL improves a base model on Countdown only when the base already
shows some reasoning behaviours, chief among them *verification* (checking an intermediate
result) and *backtracking* (abandoning a step and redoing it).  They counted the behaviours
with an LLM judge; our completions are terse arithmetic, so two regular expressions do:

* ``verification`` — the word ``check``/``checking``/``verify``/``verifying`` followed by an
  equation (``check: 936-589=347 ok``), or an equation followed by ``✓``
  (``936-589=347 ✓``);
* ``backtracking`` — a correction marker (``wait``, ``actually``, ``oops``, ``correction``,
  ``redo``, as whole words) followed by an equation, i.e. a redo
  (``4+8=12 wait 4+8+1=13``).  A marker with nothing redone after it does not count.

An equation is ``number (op number)+ = number`` with ``op`` one of ``+ - * /``.  Words are
matched case-insensitively and whole (``checked`` or ``awaiting`` do not count).  The word
``no`` that ends a failed attempt in a Countdown scratchpad is *not* a marker, so Countdown's
native search traces are not counted as backtracking; the detector measures the behaviours
:mod:`minir1.corpus` can plant with ``behaviour_rate``.

Model output is untrusted text: it is matched with bounded regular expressions (linear in
the length of the text), never evaluated, and the arithmetic it claims is not checked (a
check that is itself wrong still counts as checking).

>>> detect("7+9=16 4+8=12 wait 4+8+1=13 3+5+1=9 =936 check: 936-589=347 ok =936")
{'verification': True, 'backtracking': True}
>>> rates(["check: 2+2=4", "wait", "x"])
{'verification': 0.3333333333333333, 'backtracking': 0.0}
"""

from __future__ import annotations

import re
from typing import Sequence

BEHAVIOURS: tuple[str, ...] = ("verification", "backtracking")
CHECK_WORDS: tuple[str, ...] = ("check", "checking", "verify", "verifying")
BACKTRACK_MARKERS: tuple[str, ...] = ("wait", "actually", "oops", "correction", "redo")

_NUM = r"-?[0-9]{1,40}"
_EQUATION = rf"{_NUM}(?:[ ]{{0,3}}[-+*/][ ]{{0,3}}{_NUM}){{1,12}}[ ]{{0,3}}=[ ]{{0,3}}{_NUM}"
_VERIFICATION = re.compile(
    rf"(?<![A-Za-z])(?:{'|'.join(CHECK_WORDS)})(?![A-Za-z])[ :,]{{0,5}}{_EQUATION}"  # check: 936-589=347
    rf"|{_EQUATION}(?![0-9])[ ]{{0,3}}\u2713",  # 936-589=347 ✓
    re.IGNORECASE,
)
# A marker, then at most 40 characters with no "=" (", ", "no", a restated step), then an equation.
_BACKTRACKING = re.compile(
    rf"(?<![A-Za-z])(?:{'|'.join(BACKTRACK_MARKERS)})(?![A-Za-z])[^=]{{0,40}}?{_EQUATION}",
    re.IGNORECASE,
)


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string; got {type(text).__name__}")
    return text


def detect(text: str) -> dict[str, bool]:
    """Which of :data:`BEHAVIOURS` ``text`` shows: ``{"verification": bool, "backtracking": bool}``.

    >>> detect("check: 632-285=347 \u2713")
    {'verification': True, 'backtracking': False}
    >>> detect("wait, that was wrong")
    {'verification': False, 'backtracking': False}
    """
    text = _check_text(text)
    return {
        "verification": _VERIFICATION.search(text) is not None,
        "backtracking": _BACKTRACKING.search(text) is not None,
    }


def rates(texts: Sequence[str]) -> dict[str, float]:
    """The share of ``texts`` that show each behaviour (0.0 for an empty sequence).

    >>> rates(["wait 1+1=2", "7+9=16"])
    {'verification': 0.0, 'backtracking': 0.5}
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a sequence of strings; got {type(texts).__name__}")
    counts = dict.fromkeys(BEHAVIOURS, 0)
    for i, t in enumerate(texts):
        found = detect(_check_text(t, f"texts[{i}]"))
        for b in BEHAVIOURS:
            counts[b] += found[b]
    n = len(texts)
    return {b: (counts[b] / n if n else 0.0) for b in BEHAVIOURS}
