"""Evaluation: pass@k, majority vote, bootstrap intervals, and sampling-based evaluation.

R1 reports pass@1 estimated from k samples per question at temperature 0.6 and top-p 0.95,
and cons@64 (majority vote).  We estimate pass@k with the unbiased estimator of
Chen et al. (2021) from ``n_samples`` samples per problem, and put intervals on means with a
bootstrap over problems *and* seeds (both are samples from larger populations).

Greedy accuracy is ``evaluate(..., temperature=0, n_samples=1)``.

>>> round(pass_at_k(16, 4, 1), 4), round(pass_at_k(16, 4, 16), 4)
(0.25, 1.0)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .rewards import accuracy_reward, accuracy_reward_lenient, extract_answer, format_reward, format_reward_lenient
from .tasks import Problem


def _check_int(name: str, value, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}; got {value!r}")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples: 1 - C(n-c, k) / C(n, k).

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (no huge binomials).

    >>> pass_at_k(2, 1, 1), pass_at_k(5, 0, 3), pass_at_k(5, 3, 3)
    (0.5, 0.0, 1.0)
    """
    n, c, k = _check_int("n", n, 1), _check_int("c", c, 0), _check_int("k", k, 1)
    if c > n:
        raise ValueError(f"c (correct samples) must be <= n={n}; got {c}")
    if k > n:
        raise ValueError(f"k must be <= n={n} (samples drawn); got {k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """1.0 when the most common answer among the first ``k`` samples is correct.

    ``answers[i]`` is sample i's extracted answer (None = no answer; it does not vote) and
    ``correct[i]`` whether it verified.  Ties go to the answer seen first.

    >>> maj_at_k(["7", "8", "8", None], [True, False, False, False], 4)
    0.0
    >>> maj_at_k(["7", "8", "7"], [True, False, True], 3)
    1.0
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers and correct must have the same length; got {len(answers)} and {len(correct)}")
    k = _check_int("k", k, 1)
    if k > len(answers):
        raise ValueError(f"k must be <= the number of samples ({len(answers)}); got {k}")
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return 0.0
    top = votes.most_common(1)[0][0]  # stable: ties keep first-seen order
    return float(bool(correct[list(answers[:k]).index(top)]))


def bootstrap_ci(scores, n_boot: int = 2000, seed: int = 0, axis: int | tuple[int, ...] | None = None,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``scores``.

    ``scores`` is (P,) per problem or (S, P) per seed and problem.  ``axis`` names the axes
    resampled with replacement (default: all, i.e. problems and seeds).

    >>> lo, hi = bootstrap_ci([[1, 0, 1, 1], [1, 0, 0, 1]])
    >>> lo <= 0.625 <= hi
    True
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim not in (1, 2) or x.size == 0:
        raise ValueError(f"scores must be a non-empty (P,) or (S, P) array; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite")
    n_boot = _check_int("n_boot", n_boot, 1)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    if not axes or any(a not in range(x.ndim) for a in axes):
        raise ValueError(f"axis must be None or axes of a {x.ndim}-d array; got {axis!r}")
    if x.ndim == 1:
        x, axes = x[None, :], tuple(a + 1 for a in axes)
    rng = np.random.default_rng(seed)
    weights = []  # (B, S) and (B, P): how often each row / column is drawn
    for a, n in enumerate(x.shape):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) if a in axes else np.ones((n_boot, n))
        weights.append(w.astype(float))
    means = np.einsum("bs,sp,bp->b", weights[0], x, weights[1]) / x.size  # (B,)
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [q, 100 - q])
    return float(lo), float(hi)


@dataclass
class EvalResult:
    """What :func:`evaluate` measured on ``len(questions)`` problems, ``n_samples`` each."""

    questions: list[str]
    n_samples: int
    correct: list[int]              # (P,) strictly correct samples per problem
    correct_lenient: list[int]      # (P,) leniently correct samples per problem
    format_ok: list[int]            # (P,) samples in strict R1 format per problem
    format_ok_lenient: list[int]    # (P,) samples with one <answer> block per problem
    acc: float                      # mean strict correctness (= pass@1 estimate)
    acc_lenient: float
    format_rate: float
    format_rate_lenient: float
    pass_at_k: dict[int, float]     # mean unbiased pass@k, strict
    pass_at_k_lenient: dict[int, float]
    maj_at_k: dict[int, float]      # majority vote over the first k samples, strict answers
    mean_len_correct: float | None  # completion tokens (incl. eos) of strictly correct samples
    mean_len_incorrect: float | None
    finished_rate: float            # share of samples that ended with eos
    tokens_generated: int
    samples: list[dict] = field(default_factory=list)  # a few {question, completion, correct}

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("pass_at_k", "pass_at_k_lenient", "maj_at_k"):
            d[name] = {str(k): v for k, v in d[name].items()}  # JSON keys are strings
        return d


def _mean_or_none(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def _score(texts: list[str], problems: Sequence[Problem], g: int) -> dict[str, np.ndarray]:
    """Per-sample 0/1 arrays (P, G) from completions in row order i * G + j."""
    tasks = [p.task for p in problems for _ in range(g)]
    keys = [p.key for p in problems for _ in range(g)]
    shape = (len(problems), g)
    return {
        "correct": np.array(accuracy_reward(texts, task=tasks, key=keys)).reshape(shape),
        "correct_lenient": np.array(accuracy_reward_lenient(texts, task=tasks, key=keys)).reshape(shape),
        "format_ok": np.array(format_reward(texts)).reshape(shape),
        "format_ok_lenient": np.array(format_reward_lenient(texts)).reshape(shape),
    }


def _check_eval_args(problems, n_samples, ks) -> list[int]:
    if not problems or not all(isinstance(p, Problem) for p in problems):
        raise ValueError("problems must be a non-empty list of minir1.tasks.Problem")
    _check_int("n_samples", n_samples, 1)
    for k in ks:
        _check_int("ks entries", k, 1)
    return sorted({int(k) for k in ks if k <= n_samples})  # pass@k needs k <= n_samples


def evaluate(model, tokenizer, problems: Sequence[Problem], *, n_samples: int = 16, temperature: float = 1.0,
             top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0, ks: Sequence[int] = (1, 16),
             template: str = "compact", batch_size: int = 256, n_show: int = 4) -> EvalResult:
    """Sample ``n_samples`` completions per problem and score them with the rewards.

    pass@k and maj@k are reported for the ``ks`` that do not exceed ``n_samples``.
    """
    from .sampling import generate  # lazy: sampling imports torch models
    from .tokenizer import format_prompt

    ks = _check_eval_args(problems, n_samples, ks)
    prompts = [format_prompt(tokenizer, p.question, template) for p in problems]
    gen = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                   top_p=top_p, num_return_sequences=n_samples, seed=seed, batch_size=batch_size)
    g = n_samples
    s = _score(list(gen.texts), problems, g)
    counts = {name: s[name].sum(axis=1).astype(int) for name in s}  # (P,)
    lens = np.asarray(gen.n_tokens, dtype=float).reshape(len(problems), g)  # (P, G)
    answers = [extract_answer(t) for t in gen.texts]
    maj = {k: float(np.mean([maj_at_k(answers[i * g:(i + 1) * g], s["correct"][i], k)
                             for i in range(len(problems))])) for k in ks}
    return EvalResult(
        questions=[p.question for p in problems], n_samples=g,
        correct=counts["correct"].tolist(), correct_lenient=counts["correct_lenient"].tolist(),
        format_ok=counts["format_ok"].tolist(), format_ok_lenient=counts["format_ok_lenient"].tolist(),
        acc=float(s["correct"].mean()), acc_lenient=float(s["correct_lenient"].mean()),
        format_rate=float(s["format_ok"].mean()), format_rate_lenient=float(s["format_ok_lenient"].mean()),
        pass_at_k={k: float(np.mean([pass_at_k(g, int(c), k) for c in counts["correct"]])) for k in ks},
        pass_at_k_lenient={k: float(np.mean([pass_at_k(g, int(c), k) for c in counts["correct_lenient"]]))
                           for k in ks},
        maj_at_k=maj,
        mean_len_correct=_mean_or_none(lens[s["correct"] == 1].tolist()),
        mean_len_incorrect=_mean_or_none(lens[s["correct"] == 0].tolist()),
        finished_rate=float(np.mean(gen.finished)), tokens_generated=int(lens.sum()),
        samples=[{"question": problems[i].question, "completion": gen.texts[i * g],
                  "correct": bool(s["correct"][i, 0])} for i in range(min(n_show, len(problems)))],
    )


def per_problem_scores(results: Sequence[EvalResult], name: str = "acc") -> np.ndarray:
    """(S, P) per-seed, per-problem scores: ``acc``, ``acc_lenient``, ``format``,
    ``format_lenient``, ``pass@k`` or ``pass@k_lenient``."""
    rows = []
    for r in results:
        n = r.n_samples
        if name.startswith("pass@"):
            k_text, _, lenient = name[5:].partition("_")
            counts = r.correct_lenient if lenient else r.correct
            rows.append([pass_at_k(n, c, int(k_text)) for c in counts])
            continue
        counts = {"acc": r.correct, "acc_lenient": r.correct_lenient, "format": r.format_ok,
                  "format_lenient": r.format_ok_lenient}.get(name)
        if counts is None:
            raise ValueError(f"name must be acc, acc_lenient, format, format_lenient or pass@k[_lenient]; got {name!r}")
        rows.append([c / n for c in counts])
    return np.asarray(rows, dtype=float)


def summarize(results: Sequence[EvalResult], *, n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Metrics for a results file from one :class:`EvalResult` per seed (same problems).

    Each metric is ``minir1.results.metric(per_seed, ci95)`` with a bootstrap interval over
    problems and seeds.  Names: ``acc``, ``acc_lenient``, ``format``, ``format_lenient``,
    ``pass@k`` and ``pass@k_lenient`` for the ks all results share.
    """
    from .results import metric

    if not results:
        raise ValueError("results must hold at least one EvalResult (one per seed)")
    if len({tuple(r.questions) for r in results}) != 1:
        raise ValueError("results must all be on the same problems (same questions, same order)")
    ks = sorted(set.intersection(*(set(r.pass_at_k) for r in results)))
    names = ["acc", "acc_lenient", "format", "format_lenient"]
    names += [f"pass@{k}" for k in ks] + [f"pass@{k}_lenient" for k in ks]
    out = {}
    for name in names:
        scores = per_problem_scores(results, name)  # (S, P)
        out[name] = metric(scores.mean(axis=1).tolist(), ci95=bootstrap_ci(scores, n_boot=n_boot, seed=seed))
    return out


__all__ = ["pass_at_k", "maj_at_k", "bootstrap_ci", "EvalResult", "evaluate", "summarize",
           "per_problem_scores"]
