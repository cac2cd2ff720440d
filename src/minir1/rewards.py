"""Rule-based rewards in TRL's signature: ``f(completions, **kwargs) -> list[float]``.

R1-Zero used two rewards and no neural reward model: an *accuracy* reward (the final answer,
in a specified format, checked by rules) and a *format* reward (reasoning between
``<think>`` and ``</think>``).  ``kwargs`` are dataset columns, one entry per completion:
``task`` (a task name from :data:`minir1.tasks.TASKS`) and ``key`` (its verifier key).

* :func:`accuracy_reward` — strict: the text inside the **last** ``<answer>...</answer>``
  block, checked by the task's verifier.
* :func:`accuracy_reward_lenient` — if the completion has an answer block, as strict;
  otherwise the last arithmetic run of the text (the last number, or the last expression).
  It measures what the model knows regardless of the format it uses.  Answers are read by
  :mod:`minir1.answers`, the book's one answer extractor (``extract_answer`` is re-exported here).
* :func:`format_reward` — strict R1 format: optional whitespace, ``<think>...</think>``,
  optional whitespace, ``<answer>...</answer>``, optional whitespace, nothing else; no tag
  inside either block.
* :func:`format_reward_lenient` — exactly one ``<answer>`` and one ``</answer>``, in order.

Spurious-reward controls (Shao et al. 2025, "Spurious Rewards", arXiv 2506.10947): rewards that
carry no information about correctness, to test whether RL's gain needs the true signal.

* :func:`make_random_reward` — Bernoulli(``p``) rewards, independent of the completion.
* *format only* — :func:`format_reward` alone (no new function: it is the strict format reward
  with no accuracy term).
* :func:`incorrect_reward` — 1.0 for a strict answer that is present and *wrong*.

Completions may be strings or, as TRL passes conversational data, lists of messages (the
last message's ``content`` is scored).  Model output is untrusted: nothing here evaluates it.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, Sequence

from .answers import answer_candidates, extract_answer
from .tasks import verify

_STRICT_FORMAT = re.compile(
    r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>"
    r"\s*<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*",
    re.DOTALL,
)


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise ValueError(f"completions must be strings or lists of messages; got {type(completion).__name__}")


def _columns(completions: Sequence, **columns: Sequence) -> list[list]:
    for name, col in columns.items():
        if col is None or isinstance(col, str) or len(col) != len(completions):
            got = "a string" if isinstance(col, str) else ("missing" if col is None else f"length {len(col)}")
            raise ValueError(f"{name} must be a list with one entry per completion ({len(completions)}); got {got}")
    return [list(col) for col in columns.values()]


def accuracy_reward(
    completions: list, task: list[str] | None = None, key: list[str] | None = None, **kwargs
) -> list[float]:
    """1.0 when the last ``<answer>`` block verifies against ``key``, else 0.0.

    >>> accuracy_reward(["<think>.</think><answer>936</answer>", "936"], task=["addition"] * 2,
    ...                 key=["936"] * 2)
    [1.0, 0.0]
    """
    tasks, keys = _columns(completions, task=task, key=key)
    out = []
    for c, t, k in zip(completions, tasks, keys):
        ans = extract_answer(_text(c), strict=True)
        out.append(float(ans is not None and verify(t, k, ans)))
    return out


def accuracy_reward_lenient(
    completions: list, task: list[str] | None = None, key: list[str] | None = None, **kwargs
) -> list[float]:
    """Like :func:`accuracy_reward`; without an answer block, the text's last number or expression.

    >>> accuracy_reward_lenient(["7+9=16 =16", "<answer>15</answer> 16"], task=["addition"] * 2,
    ...                         key=["16"] * 2)
    [1.0, 0.0]
    """
    tasks, keys = _columns(completions, task=task, key=key)
    out = []
    for c, t, k in zip(completions, tasks, keys):
        candidates = answer_candidates(_text(c))  # the block, else the last run and the last expression
        out.append(float(any(verify(t, k, a) for a in candidates)))
    return out


def format_reward(completions: list, **kwargs) -> list[float]:
    """1.0 for exactly ``<think>...</think> <answer>...</answer>`` (whitespace allowed around).

    >>> format_reward([" <think>a</think>\\n<answer>1</answer>", "<think>a</think><answer>1</answer>!"])
    [1.0, 0.0]
    """
    return [float(_STRICT_FORMAT.fullmatch(_text(c)) is not None) for c in completions]


def format_reward_lenient(completions: list, **kwargs) -> list[float]:
    """1.0 when the completion holds exactly one ``<answer>...</answer>`` block.

    >>> format_reward_lenient(["so <answer>1</answer>!", "<answer>1</answer><answer>2</answer>"])
    [1.0, 0.0]
    """
    out = []
    for c in completions:
        text = _text(c)
        one = text.count("<answer>") == 1 and text.count("</answer>") == 1
        out.append(float(one and text.index("<answer>") < text.index("</answer>")))
    return out


RewardFn = Callable[..., list[float]]


def make_random_reward(p: float = 0.5, seed: int = 0) -> RewardFn:
    """A reward function that ignores the completions: each gets 1.0 with probability ``p``.

    It owns a ``random.Random(seed)``, so the rewards are a fixed function of ``seed`` and of
    the order of calls (the n-th reward drawn is the same in every run).  Its ``__name__`` is
    ``"random_reward"`` (TRL logs rewards by function name).

    >>> r = make_random_reward(0.5, seed=0)
    >>> r(["a", "b", "c", "d"]), r.__name__
    ([0.0, 0.0, 1.0, 1.0], 'random_reward')
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1]; got {p!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int; got {seed!r}")
    rng = random.Random(seed)
    prob = float(p)

    def random_reward(completions: list, **kwargs) -> list[float]:
        if isinstance(completions, str) or not isinstance(completions, Sequence):
            raise ValueError(f"completions must be a list; got {type(completions).__name__}")
        for c in completions:
            _text(c)  # the same input contract as the other rewards
        return [float(rng.random() < prob) for _ in completions]

    random_reward.__qualname__ = "random_reward"
    return random_reward


def incorrect_reward(
    completions: list, task: list[str] | None = None, key: list[str] | None = None, **kwargs
) -> list[float]:
    """1.0 when the last ``<answer>`` block holds a non-empty answer that does NOT verify, else 0.0.

    Shao et al.'s "incorrect label" control: the reward pays for a wrong answer.  A missing
    answer block, or an empty one, earns 0.0 (it is no answer), and so does a correct answer.

    >>> incorrect_reward(["<answer>935</answer>", "<answer>936</answer>", "935", "<answer> </answer>"],
    ...                  task=["addition"] * 4, key=["936"] * 4)
    [1.0, 0.0, 0.0, 0.0]
    """
    tasks, keys = _columns(completions, task=task, key=key)
    out = []
    for c, t, k in zip(completions, tasks, keys):
        ans = extract_answer(_text(c), strict=True)
        out.append(float(bool(ans) and not verify(t, k, ans)))
    return out
