"""The pretraining corpus that makes our base model a plausible "vanilla" LM.

R1-Zero started from DeepSeek-V3-Base, a model that had read the web: problems with
answers, some worked solutions of uneven quality, and chat transcripts, but that was never
fine-tuned to reason on demand.  Our corpus imitates that mixture in miniature, built only
from the *train* split of each task (held-out problems never appear):

=================  ============================================  ==============
kind               example (addition)                            default share
=================  ============================================  ==============
``plain``          ``347+589=936``                               0.35
``worked``         ``347+589: <scratchpad> =936``                0.30
``chat_plain``     ``User: 347+589\\nAssistant: 936``             0.20
``chat_worked``    ``User: 347+589\\nAssistant: <scratchpad>``    0.11
``chat_tagged``    ``... Assistant: <think>...</think> <answer>936</answer>``  0.04
=================  ============================================  ==============

Worked solutions contain a mistake with probability ``error_rate`` ("mixed quality").
The ``chat_tagged`` share stands for the reasoning-format text that web corpora now
contain; it is what gives RL a foothold on our strict R1 format, since a character-level
model of a million parameters cannot follow a written instruction the way V3-Base could
follow R1's preamble.  It is small, and the chapter measures what the base does with it.

Behaviour priming (Gandhi et al. 2025, arXiv 2503.01307: a base whose pretraining shows
*verification* and *backtracking* improves under RL where one without them does not).  With
``behaviour_rate > 0``, that share of the scratchpads of the arithmetic tasks
(:data:`BEHAVIOUR_TASKS`; in every kind that has one: ``worked``, ``chat_worked``,
``chat_tagged``) checks and corrects itself, in plain ASCII (the tokenizer has no ``✓``)::

    correct       7+9=16 4+8+1=13 3+5+1=9 =936 check: 936-589=347 ok =936
    + backtrack   7+9=16 4+8+1=12 wait 4+8+1=13 3+5+1=9 =936 check: 936-589=347 ok =936
    caught error  7+9=16 4+8=12 3+5+1=9 =926 check: 926-589=337 no wait 7+9=16 4+8+1=13 3+5+1=9 =936
                  check: 936-589=347 ok =936
    missed error  7+9=16 4+8=12 3+5+1=9 =926 check: 926-589=337 ok =926

The check undoes the operation (``sum - second operand``; ``product / multiplier``, with a
remainder ``r`` when it does not divide) and compares with the first operand.  Half of the
correct solutions also get a wrong column value followed by ``wait`` and the redo
(:data:`BACKTRACK_SHARE`).  A solution that holds a mistake (``error_rate``) has its check
catch it and redo the whole sum with probability :data:`CATCH_SHARE`; otherwise the
check is computed but misread and the wrong answer stands (Gandhi found that even traces
with wrong answers prime the behaviours).  Every scratchpad still ends in ``=<answer>``.

The priming decisions come from their own random stream: at any ``behaviour_rate`` the
corpus has the same documents (problems, kinds, mistakes, order) as at 0, and only the
chosen scratchpads grow.  ``behaviour_rate=0`` (the default) gives exactly the corpus of
earlier versions.  Pretraining packs documents into windows for a fixed number of steps,
so a primed and an unprimed base see the same number of tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .tasks import Problem, completion, final_answer, get_task

KINDS = ("plain", "worked", "chat_plain", "chat_worked", "chat_tagged")
SCRATCHPAD_KINDS = ("worked", "chat_worked", "chat_tagged")
BEHAVIOUR_TASKS = ("addition", "multiplication")  # tasks whose scratchpads can be primed
BACKTRACK_SHARE = 0.5  # primed correct solutions that also show a wrong column, "wait" and the redo
CATCH_SHARE = 0.5  # primed mistaken solutions whose check catches the mistake (else it stands)


@dataclass(frozen=True)
class CorpusConfig:
    tasks: tuple[tuple[str, int, float], ...] = (
        ("addition", 3, 0.8),
        ("countdown", 3, 0.2),
    )  # (task, difficulty, weight)
    n_docs: int = 40_000  # documents (each becomes <bos> doc <eos>)
    mix: tuple[float, ...] = (0.35, 0.30, 0.20, 0.11, 0.04)  # shares of KINDS
    error_rate: float = 0.2  # share of worked solutions with a mistake
    seed: int = 0
    behaviour_rate: float = 0.0  # share of arithmetic scratchpads that check and correct themselves

    def __post_init__(self):
        if len(self.mix) != len(KINDS) or any(m < 0 for m in self.mix) or abs(sum(self.mix) - 1) > 1e-6:
            raise ValueError(f"mix must be {len(KINDS)} non-negative shares of {KINDS} summing to 1; got {self.mix}")
        if self.n_docs < 1:
            raise ValueError(f"n_docs must be >= 1; got {self.n_docs}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1]; got {self.error_rate}")
        rate = self.behaviour_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"behaviour_rate must be a number in [0, 1]; got {rate!r}")


def chat(question: str, reply: str) -> str:
    """A chat transcript in the compact template (the ``<bos>`` is added by the trainer)."""
    return f"User: {question}\nAssistant: {reply}"


def _check_line(problem: Problem, result: int) -> tuple[str, bool]:
    """``"check: <result undone>"`` and whether it gives back the first operand."""
    a, b = (int(x) for x in problem.question.split("+" if problem.task == "addition" else "*"))
    if problem.task == "addition":
        back = result - b
        return f"check: {result}-{b}={back}", back == a
    q, r = divmod(result, b)
    return f"check: {result}/{b}={q}" + (f" r{r}" if r else ""), q == a and r == 0


def _backtrack(columns: str, rng: random.Random) -> str:
    """One column step of ``columns`` (``"7+9=16 4+8+1=13"``) written wrong, then ``wait`` and redone."""
    steps = columns.split(" ")
    i = rng.randrange(len(steps))
    expr, value = steps[i].rsplit("=", 1)
    wrong = int(value) + (rng.choice((-1, 1)) if int(value) > 0 else 1)
    steps[i] = f"{expr}={wrong} wait {expr}={value}"
    return " ".join(steps)


def prime_behaviours(problem: Problem, steps: str, task, rng: random.Random) -> str:
    """``steps`` (a worked solution of ``problem``, maybe mistaken) rewritten to check and correct itself.

    See the module docstring for the four shapes.  Only :data:`BEHAVIOUR_TASKS` can be primed.

    >>> t = get_task("addition", 3)
    >>> prime_behaviours(t.make(347, 589), "7+9=16 4+8+1=13 3+5+1=9 =936", t, random.Random(0))
    '7+9=16 4+8+1=13 3+5+1=9 =936 check: 936-589=347 ok =936'
    """
    if task.name not in BEHAVIOUR_TASKS:
        raise ValueError(f"task must be one of {BEHAVIOUR_TASKS} to prime behaviours; got {task.name!r}")
    right = task.worked_solution(problem, random.Random(0), 0.0)
    right_cols, right_sum = right.rsplit(" =", 1)
    cols, result = steps.rsplit(" =", 1)
    check, agrees = _check_line(problem, int(result))
    if agrees:
        if rng.random() < BACKTRACK_SHARE:
            cols = _backtrack(cols, rng)
        return f"{cols} ={result} {check} ok ={result}"
    if rng.random() < CATCH_SHARE:
        again, _ = _check_line(problem, int(right_sum))
        return f"{cols} ={result} {check} no wait {right_cols} ={right_sum} {again} ok ={right_sum}"
    return f"{cols} ={result} {check} ok ={result}"


def render(
    problem: Problem,
    kind: str,
    rng: random.Random,
    error_rate: float,
    task,
    *,
    behaviour_rate: float = 0.0,
    behaviour_rng: random.Random | None = None,
) -> str:
    """One document of ``kind`` about ``problem``.

    With ``behaviour_rate > 0`` a scratchpad of a :data:`BEHAVIOUR_TASKS` task is primed
    (:func:`prime_behaviours`) with that probability, drawn from ``behaviour_rng`` (never
    from ``rng``, so the rest of the document is the same at every rate).
    """
    steps = task.worked_solution(problem, rng, error_rate) if kind in SCRATCHPAD_KINDS else ""
    if steps and behaviour_rate > 0 and task.name in BEHAVIOUR_TASKS:
        if behaviour_rng is None:
            raise ValueError("behaviour_rng must be a random.Random when behaviour_rate > 0")
        if behaviour_rng.random() < behaviour_rate:
            steps = prime_behaviours(problem, steps, task, behaviour_rng)
    if kind == "plain":
        return f"{problem.question}={problem.answer}"
    if kind == "worked":
        return f"{problem.question}: {steps}"
    if kind == "chat_plain":
        return chat(problem.question, problem.answer)
    if kind == "chat_worked":
        return chat(problem.question, steps)
    if kind == "chat_tagged":
        return chat(problem.question, completion(steps, final_answer(steps)))
    raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")


def build_corpus(cfg: CorpusConfig = CorpusConfig()) -> list[str]:
    """Documents of the mixture, from train-split problems only, deterministic in ``cfg.seed``."""
    rng = random.Random(cfg.seed)
    behaviour_rng = random.Random(f"behaviour/{cfg.seed}")  # its own stream: see the module docstring
    docs: list[str] = []
    weights = [w for _, _, w in cfg.tasks]
    for t_idx, (name, difficulty, _) in enumerate(cfg.tasks):
        task = get_task(name, difficulty)
        n = round(cfg.n_docs * weights[t_idx] / sum(weights))
        problems = task.sample("train", min(n, _max_distinct(task, n)), seed=cfg.seed + 101 * t_idx)
        for i in range(n):
            kind = rng.choices(KINDS, weights=cfg.mix)[0]
            problem = problems[i % len(problems)]
            docs.append(
                render(
                    problem,
                    kind,
                    rng,
                    cfg.error_rate,
                    task,
                    behaviour_rate=cfg.behaviour_rate,
                    behaviour_rng=behaviour_rng,
                )
            )
    rng.shuffle(docs)
    return docs


def _max_distinct(task, n: int) -> int:
    """How many distinct train problems to draw (all of them when the space is small)."""
    cap = getattr(task, "n_train", None)
    return min(n, cap) if isinstance(cap, int) else n
