"""The RL chapter's hard task: the deciding comparisons over bases, seeds and problems (issue 24).

Every arm that decides the verdict was run on several hard-task bases x seeds (the cells of
:func:`minir1.experiments.rl_hard_task.deciding_cells`).  Each comparison here is the interval
rule of the book (:func:`minir1.stats_hier.conservative`): the hull of the hierarchical
bootstrap (bases, then seeds, then the same held-out problems) and the Student t interval over
the per-base means.  The bootstrap's own interval is kept too (``bootstrap_only``): a variant of
the verdict.  Answer-level ("lenient": the final answer right, tags or not) pass@1 decides;
strict pass@1 (the answer inside R1's tags) and the format rate are reported beside it, at R1's
sampling, greedy decoding and T = 1.  pass@k (sharpen or expand) is computed per base too: each
base against its seed-0 true-reward GRPO run.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .. import stats
from ..evaluation import EvalResult, per_problem_scores
from ..stats_hier import conservative, hierarchical_bootstrap, hierarchical_paired_diff

Cell = tuple[int, int]  # (base index, seed)
SETTINGS = ("r1", "greedy", "t1")
SCORES = {"acc_lenient": "pass_at_1_lenient", "acc": "pass_at_1", "format": "format_rate"}  # score -> metric
BASELINE_ORDER = ("sft_worked", "rft")  # best_baseline indexes this tuple


def grid(by_cell: Mapping[Cell, EvalResult], cells: Sequence[Cell], score: str) -> list[list[np.ndarray]]:
    """bases -> seeds -> per-problem ``score`` (see :func:`minir1.evaluation.per_problem_scores`)."""
    bases = sorted({b for b, _ in cells})
    return [[per_problem_scores([by_cell[c]], score)[0] for c in cells if c[0] == b] for b in bases]


def _units(g: list[list[np.ndarray]]) -> list[float] | None:
    """Per-base means (the t interval's units) when there are several bases, else None (per seed)."""
    return [float(np.mean([x.mean() for x in base])) for base in g] if len(g) > 1 else None


def _within(m: stats.Metric, low: float, high: float) -> stats.Metric:
    """``m`` with its interval cut to the range its quantity can take (a t interval over a few
    seeds of a rate near 0 reaches below 0: no rate does)."""
    return stats.Metric(m.mean, max(m.lo, low), min(m.hi, high), m.per_seed, m.n, m.method, m.unit)


def rate(g: list[list[np.ndarray]]) -> stats.Metric:
    """A model's rate over bases, seeds and problems, by the reporting rule, inside [0, 1]."""
    return _within(conservative(hierarchical_bootstrap(g), _units(g)), 0.0, 1.0)


def diff(ga: list[list[np.ndarray]], gb: list[list[np.ndarray]]) -> tuple[stats.Metric, stats.Metric]:
    """A − B paired on bases, seeds and problems: (the reporting rule's interval, the bootstrap's alone)."""
    boot = hierarchical_paired_diff(ga, gb)
    d = [[x - y for x, y in zip(ba, bb if len(bb) == len(ba) else bb * len(ba))] for ba, bb in zip(ga, gb)]
    return _within(conservative(boot, _units(d)), -1.0, 1.0), boot


def deciding_metrics(evals: Mapping[str, Mapping[str, Mapping[Cell, EvalResult]]], cells: Sequence[Cell]) -> dict:
    """Rates of every deciding model and the verdict's four comparisons, per setting and score.

    ``evals``: setting -> model -> cell -> evaluation.  Names: ``<metric>_<setting>`` (a dict by
    model) for rates; ``plain_rl_vs_base_<metric>_<setting>``, ``plain_true_vs_random_...``,
    ``plain_rl_vs_best_baseline_...``, ``primed_rl_vs_base_...``, ``rl_vs_baseline_...`` (by kind),
    ``reward_vs_base_...`` (random) for the comparisons; ``bootstrap_only`` the bootstrap alone."""
    m: dict = {"bootstrap_only": {}}
    for setting in SETTINGS:
        ev = evals[setting]
        for score, key in SCORES.items():
            g = {name: grid(by, cells, score) for name, by in ev.items()}
            m[f"{key}_{setting}"] = {name: rate(x) for name, x in g.items()}
            if score == "format":
                continue
            comps = {
                f"plain_rl_vs_base_{key}_{setting}": ("true", "base"),
                f"plain_true_vs_random_{key}_{setting}": ("true", "random"),
                f"primed_rl_vs_base_{key}_{setting}": ("primed_true", "primed_base"),
            }
            for name, (a, b) in comps.items():
                m[name], m["bootstrap_only"][name] = diff(g[a], g[b])
            per_kind = {kind: diff(g["true"], g[kind]) for kind in BASELINE_ORDER}
            m[f"rl_vs_baseline_{key}_{setting}"] = {kind: v[0] for kind, v in per_kind.items()}
            m[f"reward_vs_base_{key}_{setting}"] = {"random": diff(g["random"], g["base"])[0]}
            best = max(BASELINE_ORDER, key=lambda k: m[f"{key}_{setting}"][k].mean)
            name = f"plain_rl_vs_best_baseline_{key}_{setting}"
            m[name], m["bootstrap_only"][name] = per_kind[best]
            m[f"best_baseline_{key}_{setting}"] = BASELINE_ORDER.index(best)
    m["best_baseline"] = m["best_baseline_pass_at_1_lenient_r1"]  # the verdict's (answer-level, R1's sampling)
    return m


def passk_metrics(passk: Mapping[str, Mapping[int, EvalResult]]) -> dict:
    """Answer-level pass@k (k = 1..n) of each base and its seed-0 true-reward GRPO run, over bases;
    the crossover k; per-problem coverage (solved in n samples only by RL / only by the base)."""
    bases = sorted(passk["base"])
    pb, pr = [passk["base"][b] for b in bases], [passk["true"][b] for b in bases]
    n = pb[0].n_samples
    ks = sorted(pb[0].pass_at_k_lenient)

    def g(runs, k):
        return [[per_problem_scores([r], f"pass@{k}_lenient")[0]] for r in runs]

    base_k = {k: rate(g(pb, k)) for k in ks}
    rl_k = {k: rate(g(pr, k)) for k in ks}
    m = {
        "passk_base": {str(k): v for k, v in base_k.items()},
        "passk_rl": {str(k): v for k, v in rl_k.items()},
        "passk_n": n,
        "passk_bases": len(bases),
        "passk_crossover_k": stats.crossover_k(rl_k, base_k) or 0,  # smallest k where the base reaches RL
        f"passk_rl_vs_base_at_{n}": diff(g(pr, n), g(pb, n))[0],
        "passk_rl_vs_base_at_1": diff(g(pr, 1), g(pb, 1))[0],
    }
    solved_b = [[(np.asarray(r.correct_lenient) > 0).astype(float)] for r in pb]
    solved_r = [[(np.asarray(r.correct_lenient) > 0).astype(float)] for r in pr]
    m["coverage_rl_only"] = rate([[r[0] * (1 - b[0])] for r, b in zip(solved_r, solved_b)])
    m["coverage_base_only"] = rate([[b[0] * (1 - r[0])] for r, b in zip(solved_r, solved_b)])
    m["coverage_base_solved"] = rate(solved_b)
    return m


__all__ = ["SETTINGS", "SCORES", "BASELINE_ORDER", "grid", "rate", "diff", "deciding_metrics", "passk_metrics"]
