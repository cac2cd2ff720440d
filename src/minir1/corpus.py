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
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .tasks import Problem, completion, final_answer, get_task

KINDS = ("plain", "worked", "chat_plain", "chat_worked", "chat_tagged")


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

    def __post_init__(self):
        if len(self.mix) != len(KINDS) or any(m < 0 for m in self.mix) or abs(sum(self.mix) - 1) > 1e-6:
            raise ValueError(f"mix must be {len(KINDS)} non-negative shares of {KINDS} summing to 1; got {self.mix}")
        if self.n_docs < 1:
            raise ValueError(f"n_docs must be >= 1; got {self.n_docs}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1]; got {self.error_rate}")


def chat(question: str, reply: str) -> str:
    """A chat transcript in the compact template (the ``<bos>`` is added by the trainer)."""
    return f"User: {question}\nAssistant: {reply}"


def render(problem: Problem, kind: str, rng: random.Random, error_rate: float, task) -> str:
    """One document of ``kind`` about ``problem``."""
    steps = task.worked_solution(problem, rng, error_rate) if "worked" in kind or kind == "chat_tagged" else ""
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
    docs: list[str] = []
    weights = [w for _, _, w in cfg.tasks]
    for t_idx, (name, difficulty, _) in enumerate(cfg.tasks):
        task = get_task(name, difficulty)
        n = round(cfg.n_docs * weights[t_idx] / sum(weights))
        problems = task.sample("train", min(n, _max_distinct(task, n)), seed=cfg.seed + 101 * t_idx)
        for i in range(n):
            kind = rng.choices(KINDS, weights=cfg.mix)[0]
            docs.append(render(problems[i % len(problems)], kind, rng, cfg.error_rate, task))
    rng.shuffle(docs)
    return docs


def _max_distinct(task, n: int) -> int:
    """How many distinct train problems to draw (all of them when the space is small)."""
    cap = getattr(task, "n_train", None)
    return min(n, cap) if isinstance(cap, int) else n
