"""Multi-digit addition and multiplication, with compact column-by-column scratchpads.

Formats (character-level models read every character, so everything is terse):

* question: ``347+589`` (addition), ``347*8`` (multiplication); ``key`` and ``answer``: ``936``.
* scratchpad: one step per column, right to left, ``digit op digit [+carry]=column value``,
  then ``=`` and the result, which is the last column value followed by the last digit of
  every earlier column, read backwards::

      347+589 ->  7+9=16 4+8+1=13 3+5+1=9 =936
      347*8   ->  7*8=56 4*8+5=37 3*8+3=27 =2776

  The carry term (``+1``, ``+5``) is written only when it is not zero.

Difficulty: addition = digits of each operand (1..6); multiplication = digits of the first
operand (1..5), times a one-digit number 2..9.  One-digit operands include 0; longer ones
have no leading zero.

A mistaken worked solution gets one column value wrong (off by one, a dropped carry, or for
multiplication a neighbouring times-table entry); the later columns carry correctly from the
wrong value, so the written result is off by ``delta * 10**column`` and always wrong.
"""

from __future__ import annotations

import random
import re
from typing import Iterable

from . import Problem, Task

_INT = re.compile(r"-?[0-9]{1,40}", re.ASCII)


def _operand_range(digits: int) -> range:
    return range(0, 10) if digits == 1 else range(10 ** (digits - 1), 10**digits)


def verify_int(key: str, answer_text: str) -> bool:
    """True when ``answer_text`` (surrounding whitespace allowed) is the integer ``key``.

    >>> verify_int("936", " 936 "), verify_int("936", "936.0"), verify_int("936", "９３６")
    (True, False, False)
    """
    if not isinstance(answer_text, str) or len(answer_text) > 100:
        return False
    text = answer_text.strip()
    return bool(_INT.fullmatch(text)) and int(text) == int(key)


def _columns(digits_a: list[int], combine) -> list[tuple[str, int]]:
    """Right-to-left steps ``(text, value)`` where ``combine(i, carry) -> (text, value)``."""
    steps, carry = [], 0
    for i in range(len(digits_a)):
        text, value = combine(i, carry)
        steps.append((text, value))
        carry = value // 10
    return steps


def _carry(carry: int, dropped: bool) -> str:
    """The carry term of a step; a dropped carry is not written (that is the mistake)."""
    return f"+{carry}" if carry and not dropped else ""


def _render(steps: list[tuple[str, int]]) -> str:
    result = str(steps[-1][1]) + "".join(str(v % 10) for _, v in reversed(steps[:-1]))
    return " ".join(f"{t}={v}" for t, v in steps) + f" ={int(result)}"


class _Arithmetic(Task):
    op = "+"

    def canonical(self, problem: Problem) -> str:
        a, b = sorted((problem.meta["a"], problem.meta["b"]))
        return f"{a}{self.op}{b}"

    def make(self, a: int, b: int) -> Problem:
        result = a + b if self.op == "+" else a * b
        return Problem(
            self.name, f"{a}{self.op}{b}", str(result), str(result), {"a": a, "b": b, "difficulty": self.difficulty}
        )

    @staticmethod
    def verify(key: str, answer_text: str) -> bool:
        return verify_int(key, answer_text)

    def _operands(self, problem: Problem) -> tuple[int, int]:
        a, b = problem.question.split(self.op)
        return int(a), int(b)

    def _steps(self, a: int, b: int, wrong: int | None, delta: int) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _solve(self, problem: Problem, rng: random.Random, error: bool) -> str:
        a, b = self._operands(problem)
        if not error:
            return _render(self._steps(a, b, None, 0))
        right = self._steps(a, b, None, 0)
        col = rng.randrange(len(right))
        deltas = [d for d in self._deltas(b, right, col) if right[col][1] + d >= 0]
        return _render(self._steps(a, b, col, rng.choice(deltas)))

    def _deltas(self, b: int, steps: list[tuple[str, int]], col: int) -> list[int]:
        """Plausible errors in column ``col``: off by one, or the carry from the previous column dropped."""
        dropped_carry = [-(steps[col - 1][1] // 10)] if col > 0 and steps[col - 1][1] >= 10 else []
        return [-1, 1] + dropped_carry


class Addition(_Arithmetic):
    """``a+b`` with both operands of ``difficulty`` digits.

    >>> t = Addition(3)
    >>> t.worked_solution(t.make(347, 589), random.Random(0))
    '7+9=16 4+8+1=13 3+5+1=9 =936'
    """

    name, op = "addition", "+"
    difficulties = range(1, 7)
    difficulty_help = "digits per operand"

    def random_problem(self, rng: random.Random) -> Problem:
        r = _operand_range(self.difficulty)
        return self.make(rng.choice(r), rng.choice(r))

    def space_size(self) -> int:
        return len(_operand_range(self.difficulty)) ** 2

    def enumerate(self) -> Iterable[Problem]:
        r = _operand_range(self.difficulty)
        return (self.make(a, b) for a in r for b in r)

    def _steps(self, a, b, wrong, delta):
        da, db = str(a)[::-1], str(b)[::-1]

        def combine(i, carry):
            value = int(da[i]) + int(db[i]) + carry + (delta if i == wrong else 0)
            return f"{da[i]}+{db[i]}" + _carry(carry, i == wrong and delta == -carry), value

        return _columns(list(da), combine)


class Multiplication(_Arithmetic):
    """``a*m`` with ``a`` of ``difficulty`` digits and ``m`` in 2..9.

    >>> t = Multiplication(3)
    >>> t.worked_solution(t.make(347, 8), random.Random(0))
    '7*8=56 4*8+5=37 3*8+3=27 =2776'
    """

    name, op = "multiplication", "*"
    difficulties = range(1, 6)
    difficulty_help = "digits of the first operand, times one digit"

    def random_problem(self, rng: random.Random) -> Problem:
        return self.make(rng.choice(_operand_range(self.difficulty)), rng.randint(2, 9))

    def space_size(self) -> int:
        return len(_operand_range(self.difficulty)) * 8

    def enumerate(self) -> Iterable[Problem]:
        return (self.make(a, m) for a in _operand_range(self.difficulty) for m in range(2, 10))

    def _steps(self, a, m, wrong, delta):
        da = str(a)[::-1]

        def combine(i, carry):
            value = int(da[i]) * m + carry + (delta if i == wrong else 0)
            return f"{da[i]}*{m}" + _carry(carry, i == wrong and delta == -carry), value

        return _columns(list(da), combine)

    def _deltas(self, m, steps, col):
        digit = int(steps[col][0][0])  # a neighbouring times-table entry, e.g. 7*8=48
        return super()._deltas(m, steps, col) + ([-m, m] if digit >= 2 else [m])
