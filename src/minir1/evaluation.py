"""Evaluation: one way to score a model on an eval set, computed once and cached.

R1 reports pass@1 estimated from k samples per question at temperature 0.6 and top-p 0.95
(:data:`R1_SAMPLING`), and cons@64 (majority vote).  We estimate pass@k with the unbiased
estimator of Chen et al. (2021) from ``n_samples`` samples per problem; intervals come from
:mod:`minir1.stats` (a bootstrap over problems and seeds).

:func:`evaluate_cached` scores a trained artifact on an :class:`EvalSet` with a
:class:`Sampling` and a seed exactly once: the result is stored in ``.artifacts/evals/`` under
a key made of the model's artifact key, the eval set, the sampling settings, the seed and the
source of the modules that score it.  Every chapter that reports the same model on the same
eval set therefore reads the same numbers.

Greedy accuracy is ``evaluate(..., temperature=0, n_samples=1)`` (:data:`GREEDY`).

>>> round(pass_at_k(16, 4, 1), 4), round(pass_at_k(16, 4, 16), 4)
(0.25, 1.0)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from . import artifacts, models, stats
from .rewards import accuracy_reward, accuracy_reward_lenient, extract_answer, format_reward, format_reward_lenient
from .sampling import generate
from .tasks import Problem, get_task
from .tokenizer import format_prompt
from .utils import atomic_write_json, stable_hash


def _check_int(name: str, value, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}; got {value!r}")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples (see :func:`minir1.stats.pass_at_k_estimate`).

    >>> pass_at_k(2, 1, 1), pass_at_k(5, 0, 3), pass_at_k(5, 3, 3)
    (0.5, 0.0, 1.0)
    """
    return stats.pass_at_k_estimate(n, c, k)


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


@dataclass
class EvalResult:
    """What :func:`evaluate` measured on ``len(questions)`` problems, ``n_samples`` each."""

    questions: list[str]
    n_samples: int
    correct: list[int]  # (P,) strictly correct samples per problem
    correct_lenient: list[int]  # (P,) leniently correct samples per problem
    format_ok: list[int]  # (P,) samples in strict R1 format per problem
    format_ok_lenient: list[int]  # (P,) samples with one <answer> block per problem
    acc: float  # mean strict correctness (= pass@1 estimate)
    acc_lenient: float
    format_rate: float
    format_rate_lenient: float
    pass_at_k: dict[int, float]  # mean unbiased pass@k, strict
    pass_at_k_lenient: dict[int, float]
    maj_at_k: dict[int, float]  # majority vote over the first k samples, strict answers
    mean_len_correct: float | None  # completion tokens (incl. eos) of strictly correct samples
    mean_len_incorrect: float | None
    finished_rate: float  # share of samples that ended with eos
    tokens_generated: int
    samples: list[dict] = field(default_factory=list)  # a few {question, completion, correct}

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("pass_at_k", "pass_at_k_lenient", "maj_at_k"):
            d[name] = {str(k): v for k, v in d[name].items()}  # JSON keys are strings
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        d = dict(d)
        for name in ("pass_at_k", "pass_at_k_lenient", "maj_at_k"):
            d[name] = {int(k): float(v) for k, v in d[name].items()}
        return cls(**d)


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


def evaluate(
    model,
    tokenizer,
    problems: Sequence[Problem],
    *,
    n_samples: int = 16,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    ks: Sequence[int] = (1, 16),
    template: str = "compact",
    batch_size: int = 256,
    n_show: int = 4,
) -> EvalResult:
    """Sample ``n_samples`` completions per problem and score them with the rewards.

    pass@k and maj@k are reported for the ``ks`` that do not exceed ``n_samples``.
    """
    ks = _check_eval_args(problems, n_samples, ks)
    prompts = [format_prompt(tokenizer, p.question, template) for p in problems]
    gen = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        num_return_sequences=n_samples,
        seed=seed,
        batch_size=batch_size,
    )
    return _eval_result(problems, gen, n_samples, ks, n_show)


def _eval_result(problems: Sequence[Problem], gen, g: int, ks: list[int], n_show: int) -> EvalResult:
    """Score a :class:`~minir1.sampling.Generation` of ``g`` samples per problem into an :class:`EvalResult`."""
    s = _score(list(gen.texts), problems, g)
    counts = {name: s[name].sum(axis=1).astype(int) for name in s}  # (P,)
    lens = np.asarray(gen.n_tokens, dtype=float).reshape(len(problems), g)  # (P, G)
    answers = [extract_answer(t) for t in gen.texts]
    maj = {
        k: float(np.mean([maj_at_k(answers[i * g : (i + 1) * g], s["correct"][i], k) for i in range(len(problems))]))
        for k in ks
    }
    return EvalResult(
        questions=[p.question for p in problems],
        n_samples=g,
        correct=counts["correct"].tolist(),
        correct_lenient=counts["correct_lenient"].tolist(),
        format_ok=counts["format_ok"].tolist(),
        format_ok_lenient=counts["format_ok_lenient"].tolist(),
        acc=float(s["correct"].mean()),
        acc_lenient=float(s["correct_lenient"].mean()),
        format_rate=float(s["format_ok"].mean()),
        format_rate_lenient=float(s["format_ok_lenient"].mean()),
        pass_at_k={k: float(np.mean([pass_at_k(g, int(c), k) for c in counts["correct"]])) for k in ks},
        pass_at_k_lenient={k: float(np.mean([pass_at_k(g, int(c), k) for c in counts["correct_lenient"]])) for k in ks},
        maj_at_k=maj,
        mean_len_correct=_mean_or_none(lens[s["correct"] == 1].tolist()),
        mean_len_incorrect=_mean_or_none(lens[s["correct"] == 0].tolist()),
        finished_rate=float(np.mean(gen.finished)),
        tokens_generated=int(lens.sum()),
        samples=[
            {"question": problems[i].question, "completion": gen.texts[i * g], "correct": bool(s["correct"][i, 0])}
            for i in range(min(n_show, len(problems)))
        ],
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
        counts = {
            "acc": r.correct,
            "acc_lenient": r.correct_lenient,
            "format": r.format_ok,
            "format_lenient": r.format_ok_lenient,
        }.get(name)
        if counts is None:
            raise ValueError(f"name must be acc, acc_lenient, format, format_lenient or pass@k[_lenient]; got {name!r}")
        rows.append([c / n for c in counts])
    return np.asarray(rows, dtype=float)


def summarize(results: Sequence[EvalResult]) -> dict[str, stats.Metric]:
    """Metrics from one :class:`EvalResult` per seed (same problems), intervals from :mod:`minir1.stats`.

    Names: ``acc``, ``acc_lenient``, ``format``, ``format_lenient``, ``pass@k`` and
    ``pass@k_lenient`` for the ks all results share.
    """
    if not results:
        raise ValueError("results must hold at least one EvalResult (one per seed)")
    if len({tuple(r.questions) for r in results}) != 1:
        raise ValueError("results must all be on the same problems (same questions, same order)")
    ks = sorted(set.intersection(*(set(r.pass_at_k) for r in results)))
    names = ["acc", "acc_lenient", "format", "format_lenient"]
    names += [f"pass@{k}" for k in ks] + [f"pass@{k}_lenient" for k in ks]
    # The seeds re-draw samples from one model: the problems are the independent units.
    return {name: stats.rate(per_problem_scores(results, name), seeds="sampling") for name in names}


# ----------------------------------------------------------------------------- cached evaluation
@dataclass(frozen=True)
class EvalSet:
    """Held-out problems: ``n`` problems of ``task`` at ``difficulty`` from ``split``."""

    task: str = "addition"
    difficulty: int = 3
    n: int = 200
    split: str = "test"
    seed: int = 1234  # which problems (fixed across chapters)
    template: str = "compact"  # prompt template (minir1.tokenizer.format_prompt)

    def __post_init__(self):
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"EvalSet.n must be an int >= 1; got {self.n!r}")
        if self.split not in ("train", "test"):
            raise ValueError(f"EvalSet.split must be 'train' or 'test'; got {self.split!r}")

    def problems(self) -> list[Problem]:
        return get_task(self.task, self.difficulty).sample(self.split, self.n, seed=self.seed)


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: ``n_samples`` per problem at ``temperature`` / ``top_p``."""

    n_samples: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    ks: tuple[int, ...] = (1, 16)

    def __post_init__(self):
        _check_int("Sampling.n_samples", self.n_samples, 1)
        if not self.temperature >= 0:
            raise ValueError(f"Sampling.temperature must be >= 0; got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"Sampling.top_p must be in (0, 1]; got {self.top_p!r}")


GREEDY = Sampling(n_samples=1, temperature=0.0, ks=(1,))
# R1's evaluation setting: T = 0.6, top-p 0.95 (DeepSeek-AI 2025, §3.1 "Evaluation Setup").
R1_SAMPLING = Sampling(n_samples=16, temperature=0.6, top_p=0.95, ks=(1, 16))
T1_SAMPLING = Sampling(n_samples=16, temperature=1.0, top_p=1.0, ks=(1, 16))


def model_key(model_dir: str | os.PathLike) -> str:
    """The artifact key of a cached model (its ``meta.json``), which names the model everywhere."""
    return str(artifacts.load_meta(model_dir)["key"])


def eval_key(model: str, eval_set: EvalSet, sampling: Sampling, seed: int) -> str:
    return stable_hash(
        {
            "model": model,
            "eval_set": asdict(eval_set),
            "sampling": asdict(sampling),
            "seed": int(seed),
            "code": artifacts.module_version(__name__),
        }
    )  # this module + its imports


def evaluate_cached(
    model_dir: str | os.PathLike,
    eval_set: EvalSet,
    sampling: Sampling,
    seed: int = 0,
    *,
    model=None,
    tokenizer=None,
    device: str | None = None,
) -> EvalResult:
    """:func:`evaluate` of a cached model artifact, computed once per (model, eval set, sampling,
    seed) and stored in ``.artifacts/evals/`` (atomically).  ``model``/``tokenizer`` may be
    passed when already loaded (they must be the artifact's)."""
    key = eval_key(model_key(model_dir), eval_set, sampling, seed)
    path = artifacts.artifacts_dir() / "evals" / f"{key}.json"
    if path.exists():
        try:
            return EvalResult.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError):
            path.unlink()  # a damaged cache entry is recomputed, never trusted
    if model is None or tokenizer is None:
        model, tokenizer = models.load(model_dir, device=device)
    res = evaluate_on(model, tokenizer, eval_set, sampling, seed)
    atomic_write_json(path, res.to_dict())
    return res


def evaluate_on(model, tokenizer, eval_set: EvalSet, sampling: Sampling, seed: int = 0) -> EvalResult:
    """:func:`evaluate` of a loaded model on ``eval_set`` with ``sampling`` (not cached)."""
    return evaluate(
        model,
        tokenizer,
        eval_set.problems(),
        n_samples=sampling.n_samples,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_new_tokens=sampling.max_new_tokens,
        seed=seed,
        ks=sampling.ks,
        template=eval_set.template,
    )


def evaluate_seeds(
    model_dir: str | os.PathLike | None, eval_set: EvalSet, sampling: Sampling, seeds: Sequence[int], **kw
) -> list[EvalResult]:
    """One :class:`EvalResult` per sampling seed (greedy decoding needs only one): cached for a
    model artifact ``model_dir``; computed directly from ``model=``/``tokenizer=`` when
    ``model_dir`` is None (a checkpoint that is not an artifact)."""
    seeds = [0] if sampling.temperature == 0 else list(seeds)
    if model_dir is None:
        if kw.get("model") is None or kw.get("tokenizer") is None:
            raise ValueError("evaluate_seeds: without model_dir, pass model= and tokenizer=")
        return [evaluate_on(kw["model"], kw["tokenizer"], eval_set, sampling, s) for s in seeds]
    return [evaluate_cached(model_dir, eval_set, sampling, s, **kw) for s in seeds]


def eval_record(
    model_dir: str | os.PathLike,
    eval_set: EvalSet,
    sampling: Sampling,
    results: Sequence[EvalResult],
    seeds: Sequence[int],
) -> tuple[str, dict]:
    """``(eval_id, record)`` for a results file's ``evals`` section: which model, eval set,
    sampling and seeds, and the metrics they gave (so the project test can check that two
    chapters reporting the same evaluation report the same numbers)."""
    seeds = [0] if sampling.temperature == 0 else [int(s) for s in seeds]
    mk = model_key(model_dir)
    eid = stable_hash({"model": mk, "eval_set": asdict(eval_set), "sampling": asdict(sampling), "seeds": seeds})
    return eid, {
        "model": mk,
        "eval_set": asdict(eval_set),
        "sampling": asdict(sampling),
        "seeds": seeds,
        "metrics": summarize(results),
    }


__all__ = [
    "pass_at_k",
    "maj_at_k",
    "EvalResult",
    "evaluate",
    "summarize",
    "per_problem_scores",
    "EvalSet",
    "Sampling",
    "GREEDY",
    "R1_SAMPLING",
    "T1_SAMPLING",
    "evaluate_cached",
    "evaluate_seeds",
    "eval_record",
    "model_key",
]
