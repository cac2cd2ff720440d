"""Verifiable tasks: problems with keys that a rule-based verifier checks.

R1-Zero's accuracy reward needs only a checker, not a reward model: "for math problems
with deterministic results, the model is required to provide the final answer in a
specified format ... enabling reliable rule-based verification".  Our tasks are the
smallest that still need several steps: multi-digit ``addition`` and ``multiplication``
(:mod:`minir1.tasks.arithmetic`) and the ``countdown`` numbers game
(:mod:`minir1.tasks.countdown`, as in TinyZero).

A :class:`Problem` carries a ``key`` from which the verifier checks *any* answer, and one
correct ``answer``.  The split of a problem is a function of its content (sha256 of a
canonical form, mod 100, below :data:`TEST_PERCENT` means test), so train and test are
disjoint for every seed and every caller.

Every worked solution (scratchpad) ends with ``=`` and the final answer, e.g.
``7+9=16 4+8+1=13 3+5+1=9 =936``; :func:`completion` wraps it in R1's output format.

>>> task = get_task("addition", 3)
>>> p = task.sample("test", 2, seed=0)[0]
>>> task.verify(p.key, p.answer), verify("addition", p.key, " " + p.answer + " ")
(True, True)
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field
from typing import Iterable

SPLITS = ("train", "test")
TEST_PERCENT = 20  # share of each task's problem space held out for evaluation (%)
ENUMERATE_LIMIT = 100_000  # problem spaces up to this size are enumerated exactly


@dataclass(frozen=True)
class Problem:
    """One problem: ``question`` is what the model sees; ``key`` is what the verifier needs."""

    task: str  # task name, e.g. "addition"
    question: str  # e.g. "347+589" or "3 5 7 -> 22"
    key: str  # e.g. "936" or "3,5,7=22"
    answer: str  # one correct answer, e.g. "936" or "(7-3)*5+2"
    meta: dict = field(default_factory=dict, compare=False)


def split_of(task: str, canonical: str) -> str:
    """``"test"`` for :data:`TEST_PERCENT` % of canonical forms, else ``"train"`` (deterministic)."""
    h = int.from_bytes(hashlib.sha256(f"{task}|{canonical}".encode()).digest()[:8], "big")
    return "test" if h % 100 < TEST_PERCENT else "train"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    return split


def check_error_rate(error_rate: float) -> float:
    if not isinstance(error_rate, (int, float)) or not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be a number in [0, 1]; got {error_rate!r}")
    return float(error_rate)


def completion(scratchpad: str, answer: str) -> str:
    """R1's output format, compact: ``<think>{scratchpad}</think> <answer>{answer}</answer>``.

    >>> completion("7+9=16 =16", "16")
    '<think>7+9=16 =16</think> <answer>16</answer>'
    """
    return f"<think>{scratchpad}</think> <answer>{answer}</answer>"


def final_answer(scratchpad: str) -> str:
    """The answer a worked solution arrives at: the text after its last ``=``.

    >>> final_answer("7*3=21 21+5=26 no 5*3=15 15+7=22 ok =5*3+7")
    '5*3+7'
    """
    return scratchpad.rsplit("=", 1)[-1].strip()


class Task:
    """Base class: a family of problems at one ``difficulty``.

    Subclasses set ``name`` and ``difficulties`` and implement :meth:`random_problem`,
    :meth:`canonical`, :meth:`verify` and :meth:`_solve`; small problem spaces also implement
    :meth:`enumerate` and :meth:`space_size` so that sampling is exact.
    """

    name: str = ""
    difficulties: range = range(0)
    difficulty_help: str = ""

    def __init__(self, difficulty: int):
        if not isinstance(difficulty, int) or isinstance(difficulty, bool) or difficulty not in self.difficulties:
            lo, hi = self.difficulties[0], self.difficulties[-1]
            raise ValueError(
                f"difficulty for {self.name} ({self.difficulty_help}) must be an int in {lo}..{hi}; got {difficulty!r}"
            )
        self.difficulty = difficulty

    def __repr__(self) -> str:
        return f"get_task({self.name!r}, {self.difficulty})"

    # -- to implement -------------------------------------------------------------------
    def random_problem(self, rng: random.Random) -> Problem:
        raise NotImplementedError

    def canonical(self, problem: Problem) -> str:
        """A form shared by trivially equivalent problems (e.g. ``a+b`` and ``b+a``)."""
        raise NotImplementedError

    @staticmethod
    def verify(key: str, answer_text: str) -> bool:
        raise NotImplementedError

    def _solve(self, problem: Problem, rng: random.Random, error: bool) -> str:
        raise NotImplementedError

    def space_size(self) -> int | None:
        """The number of distinct questions, when it is small enough to enumerate."""
        return None

    def enumerate(self) -> Iterable[Problem]:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def split(self, problem: Problem) -> str:
        return split_of(self.name, self.canonical(problem))

    def n_distinct(self, split: str) -> int | None:
        """Distinct problems in ``split``, or None when the space is too large to count."""
        pool = _pool(self, check_split(split))
        return None if pool is None else len(pool)

    @property
    def n_train(self) -> int | None:
        return self.n_distinct("train")

    @property
    def n_test(self) -> int | None:
        return self.n_distinct("test")

    def sample(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """``n`` distinct problems of ``split``, the same for the same ``seed``."""
        check_split(split)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int; got {n!r}")
        rng = random.Random(f"{self.name}/{self.difficulty}/{split}/{seed}")
        pool = _pool(self, split)
        if pool is not None:
            if n > len(pool):
                raise ValueError(
                    f"n={n} exceeds the {len(pool)} distinct {split} problems of {self!r}; "
                    f"ask for at most {len(pool)} or raise the difficulty"
                )
            return rng.sample(pool, n)
        out: dict[str, Problem] = {}
        budget = 50 * n + 1000
        while len(out) < n:
            budget -= 1
            if budget < 0:
                raise ValueError(
                    f"n={n}: found only {len(out)} distinct {split} problems of {self!r} "
                    f"after many draws; ask for fewer"
                )
            p = self.random_problem(rng)
            if p.question not in out and self.split(p) == split:
                out[p.question] = p
        return list(out.values())

    def worked_solution(self, problem: Problem, rng: random.Random, error_rate: float = 0.0) -> str:
        """A compact scratchpad ending in ``=<final answer>``.

        With probability ``error_rate`` one step holds a plausible mistake that carries
        through to a wrong final answer ("worked steps of mixed quality").
        """
        error = rng.random() < check_error_rate(error_rate)
        return self._solve(problem, rng, error)

    def completion(self, problem: Problem, rng: random.Random, error_rate: float = 0.0) -> str:
        """A full R1-format completion: worked solution in ``<think>``, its answer in ``<answer>``."""
        steps = self.worked_solution(problem, rng, error_rate)
        return completion(steps, final_answer(steps))


@functools.lru_cache(maxsize=64)
def _pool_cached(cls: type, difficulty: int, split: str) -> tuple[Problem, ...]:
    task = cls(difficulty)
    return tuple(p for p in task.enumerate() if task.split(p) == split)


def _pool(task: Task, split: str) -> list[Problem] | None:
    size = task.space_size()
    if size is None or size > ENUMERATE_LIMIT:
        return None
    return list(_pool_cached(type(task), task.difficulty, split))


from .arithmetic import Addition, Multiplication  # noqa: E402  (they subclass Task)
from .countdown import Countdown  # noqa: E402

TASKS: dict[str, type[Task]] = {t.name: t for t in (Addition, Multiplication, Countdown)}


def get_task(name: str, difficulty: int) -> Task:
    """The task ``name`` (one of :data:`TASKS`) at ``difficulty``."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}; got {name!r}")
    return TASKS[name](difficulty)


def verify(task: str, key: str, answer_text: str) -> bool:
    """Check ``answer_text`` against ``key`` with the verifier of ``task``; never raises on the answer."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}; got {task!r}")
    return TASKS[task].verify(key, answer_text)


__all__ = [
    "Problem",
    "Task",
    "TASKS",
    "SPLITS",
    "TEST_PERCENT",
    "get_task",
    "verify",
    "split_of",
    "completion",
    "final_answer",
    "Addition",
    "Multiplication",
    "Countdown",
]
