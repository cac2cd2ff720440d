"""The answer a completion gives, whatever its format: the book's one answer extractor.

Every score in the book reads answers through this module:

* **strict** (:func:`extract_answer` with ``strict=True``): the stripped inside of the last
  ``<answer>...</answer>`` block, or None.  What R1's accuracy reward reads; a correct answer
  outside the tags scores 0, so strict accuracy measures format adoption as much as knowledge.
* **answer-level** (:func:`answer_candidates`, :func:`final_answer`): the answer block if there
  is one; otherwise the last *arithmetic run* of the text (a maximal run of ASCII digits,
  ``+ - * / ( )`` and spaces that starts with a digit or ``(``; ``=`` ends a run, so ``7+9=16``
  ends in ``16``), and the last run that holds an operator (a countdown expression).  The
  book's lenient accuracy (:func:`minir1.rewards.accuracy_reward_lenient`) counts a completion
  correct when any candidate verifies; :func:`final_answer` is the first candidate.
* ``phrases=True`` (not used by any published number): before the runs, the first arithmetic
  run after the last "answer is" / "answer:" / "answer =" / "final answer" in the text, so
  ``"The answer is 16 (checked 3 times)"`` gives ``16`` rather than ``3``.

Model output is untrusted: nothing here evaluates it.  Only ASCII digits count (``９３６`` and
``١٦`` are not numbers here, as the verifiers reject them); a huge number is returned as text
(the verifiers bound its length); a non-string is no answer.

>>> final_answer("<think>7+9=16 =16</think> <answer> 16 </answer>"), final_answer("so 7+9=16.")
('16', '16')
>>> answer_candidates("no tags 12 then 5*3+7 =22"), final_answer("no digits") is None
(['22', '5*3+7'], True)
"""

from __future__ import annotations

import re

# Maximal runs of arithmetic characters that start with a digit or "(" (no "=" inside).
_ARITH_RUN = re.compile(r"[0-9(][0-9+\-*/() ]*", re.ASCII)
# "the answer is", "Answer:", "answer =", "final answer" (then optional "is", ":" or "=").
_PHRASE = re.compile(r"\b(?:final\s+answer\b\s*(?:is\b|:|=)?|answer\s*(?:is\b|:|=))", re.IGNORECASE)


def answer_block(text: str) -> str | None:
    """The stripped inside of the last ``<answer>...</answer>`` block, or None.

    >>> answer_block("<answer>1</answer> then <answer> 2 </answer>"), answer_block("<answer>1")
    ('2', None)
    """
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    return None if start < 0 else text[start + len("<answer>") : end].strip()


def fallback_runs(text: str) -> list[str]:
    """The last arithmetic run of ``text``, then the last one holding an operator (deduplicated)."""
    runs = [r.strip() for r in _ARITH_RUN.findall(text)]
    out = runs[-1:] + [r for r in reversed(runs) if any(c in r for c in "+-*/")][:1]
    return list(dict.fromkeys(out))


def _after_phrase(text: str) -> str | None:
    """The first arithmetic run after the last answer phrase (trailing "(" and operators cut), or None."""
    last = None
    for last in _PHRASE.finditer(text):
        pass
    if last is None:
        return None
    run = _ARITH_RUN.search(text, last.end())
    return (run.group(0).rstrip(" (+-*/") or None) if run else None


def answer_candidates(text, *, phrases: bool = False) -> list[str]:
    """The answers a completion may be giving, most likely first (empty for none).

    The answer block alone if there is one; else (with ``phrases``, the run after the last
    answer phrase, then) the last arithmetic run and the last run with an operator.  With the
    default ``phrases=False`` this is exactly what the book's lenient accuracy checks.

    >>> said = "The answer is 16 (checked 3 times)"
    >>> answer_candidates(said), answer_candidates(said, phrases=True)
    (['3'], ['16', '3'])
    """
    if not isinstance(text, str):
        return []
    block = answer_block(text)
    if block is not None:
        return [block]
    runs = fallback_runs(text)
    phrase = _after_phrase(text) if phrases else None
    return list(dict.fromkeys(([phrase] if phrase else []) + runs))


def final_answer(text, *, phrases: bool = False) -> str | None:
    """The answer a completion gives regardless of its format: the first of :func:`answer_candidates`."""
    cands = answer_candidates(text, phrases=phrases)
    return cands[0] if cands else None


def extract_answer(text: str, strict: bool = True) -> str | None:
    """The answer a completion gives, or None.

    Strict: the stripped inside of the last ``<answer>...</answer>`` block.  Lenient: that,
    else the last run of digits, operators and parentheses in the text (:func:`final_answer`).

    >>> extract_answer("<think>7+9=16 =16</think> <answer> 16 </answer>")
    '16'
    >>> extract_answer("<answer>1</answer> then <answer>2</answer>")
    '2'
    >>> extract_answer("so it is 5*3+7.") is None, extract_answer("so it is 5*3+7.", strict=False)
    (True, '5*3+7')
    """
    if not isinstance(text, str):
        return None
    return answer_block(text) if strict else final_answer(text)


__all__ = ["answer_block", "fallback_runs", "answer_candidates", "final_answer", "extract_answer"]
