"""The RL chapter's hard task, evaluated and scored: results-file metrics, curves and evaluation records.

:func:`run_experiment` trains (or loads) every condition of :mod:`minir1.experiments.rl_hard_task`
and runs the cached evaluations; :func:`controls_metrics` turns them into the metrics the chapter
and its verdict read (every comparison a paired bootstrap from :mod:`minir1.stats`);
:func:`controls_extra` keeps the training curves for the figures, :func:`controls_evals` the record
of every cached evaluation, :func:`total_flops` the compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import artifacts, behaviours, stats
from ..evaluation import EvalResult, eval_record, evaluate_cached, per_problem_scores
from . import rl_hard_task_decide as decide
from .rl_hard_task import (
    BASES,
    CLIP_MODELS,
    CONDITIONS,
    DECIDING_MODELS,
    VERDICT_MODELS,
    HardTaskConfig,
    cells,
    deciding_cells,
    grpo_path,
    hard_base_path,
    heldout_set,
    passk_set,
    r1_many,
    samplings,
    valid_set,
)
from .rl_hard_task_baselines import BASELINES, baseline_path

Cell = tuple[int, int]  # (base index, seed)


# ----------------------------------------------------------------------------- running the conditions
@dataclass
class HardTaskRuns:
    """What :func:`run_experiment` trained and evaluated; per-model dicts are keyed by model name
    (``base``, ``primed_base``, a condition's name, a baseline's), then by cell (base index, seed)."""

    seeds: list[int]
    clip_mu: int
    lr: dict  # {"chosen": lr, "validation_pass_at_1": {lr: score}}
    cells: dict[str, list[Cell]] = field(default_factory=dict)  # model -> its cells
    deciding: list[Cell] = field(default_factory=list)  # the deciding arms' cells
    paths: dict[str, dict[Cell, Path]] = field(default_factory=dict)  # model -> cell -> artifact folder
    runs: dict[str, dict[Cell, dict]] = field(default_factory=dict)  # GRPO condition -> cell -> run meta
    evals: dict[str, dict[str, dict[Cell, EvalResult]]] = field(default_factory=dict)  # setting -> model -> cell
    baselines: dict[str, dict[Cell, dict]] = field(default_factory=dict)  # baseline -> cell -> meta
    valid: dict[str, EvalResult] = field(default_factory=dict)  # base kind -> validation eval (room check)
    passk: dict[str, dict[int, EvalResult]] = field(default_factory=dict)  # base / true -> base index -> eval
    base_meta: dict = field(default_factory=dict)  # plain base 0's artifact meta
    base_flops: float = 0.0  # continued pretraining of every hard base

    @property
    def r1(self) -> dict[str, dict[Cell, EvalResult]]:
        return self.evals["r1"]


def choose_lr(cfg: HardTaskConfig) -> tuple[HardTaskConfig, dict[float, float]]:
    """The rule in :class:`HardTaskConfig`: GRPO (seed 0, true reward, plain base) at each of
    ``cfg.lr_candidates``, strict pass@1 at R1's sampling on the validation split (train-split
    problems; the test split is never looked at); the best wins, ties to the smaller lr.
    Returns ``cfg`` with that lr and the validation score of each candidate."""
    samp = r1_many(cfg, cfg.lr_valid_samples)
    scores = {}
    for lr in cfg.lr_candidates:
        path = grpo_path(replace(cfg, grpo=replace(cfg.grpo, lr=lr)), 0)
        scores[lr] = evaluate_cached(path, valid_set(cfg), samp, 0).acc
    best = max(scores.values())
    lr = min(c for c, v in scores.items() if v >= best)
    return replace(cfg, grpo=replace(cfg.grpo, lr=lr)), scores


def _train_all(cfg: HardTaskConfig, out: HardTaskRuns) -> None:
    """The bases, every GRPO condition and every baseline, one artifact per (base, seed) cell."""
    seeds = out.seeds
    for kind in BASES:
        name = "base" if kind == "plain" else "primed_base"
        out.cells[name] = cells(cfg, name, seeds)
        out.paths[name] = {c: hard_base_path(cfg, kind, c[0]) for c in out.cells[name]}
    built = {p for by in (out.paths["base"], out.paths["primed_base"]) for p in by.values()}
    out.base_flops = float(sum(artifacts.load_meta(p)["flops"] for p in built))
    for cond in CONDITIONS:
        name = cond.name
        out.cells[name] = cells(cfg, name, seeds)
        out.paths[name] = {c: cond.path(cfg, c[1], c[0]) for c in out.cells[name]}
        out.runs[name] = {c: artifacts.load_meta(p) for c, p in out.paths[name].items()}
    for kind in BASELINES:  # stopped at the spent FLOPs of the same cell's true-reward GRPO run
        out.cells[kind] = cells(cfg, kind, seeds)
        budgets = {c: out.runs["true"][c]["flops"] for c in out.cells[kind]}
        out.paths[kind] = {c: baseline_path(cfg, kind, c[1], budgets[c], c[0]) for c in out.cells[kind]}
        out.baselines[kind] = {c: artifacts.load_meta(p) for c, p in out.paths[kind].items()}


def _score_all(cfg: HardTaskConfig, out: HardTaskRuns) -> None:
    """Held-out evaluations: R1's sampling for every model; greedy and T = 1 for the deciding ones;
    the room check on the validation split; pass@k per base (the base and its seed-0 GRPO run)."""
    held, smp = heldout_set(cfg), samplings(cfg)
    room = r1_many(cfg, cfg.valid_samples)
    out.valid["plain"] = evaluate_cached(out.paths["base"][(0, out.seeds[0])], valid_set(cfg), room, 0)
    out.evals["r1"] = {
        name: {c: evaluate_cached(out.paths[name][c], held, smp["r1"], c[1]) for c in out.cells[name]}
        for name in VERDICT_MODELS
    }
    for k in ("greedy", "t1"):
        out.evals[k] = {
            name: {
                c: evaluate_cached(out.paths[name][c], held, smp[k], 0 if k == "greedy" else c[1]) for c in out.deciding
            }
            for name in DECIDING_MODELS
        }
    many, pk, s0 = r1_many(cfg, cfg.passk_samples), passk_set(cfg), out.seeds[0]
    bases = sorted({b for b, _ in out.deciding})
    out.passk = {
        "base": {b: evaluate_cached(out.paths["base"][(b, s0)], pk, many, 0) for b in bases},
        "true": {b: evaluate_cached(out.paths["true"][(b, s0)], pk, many, s0) for b in bases},
    }


def run_experiment(cfg: HardTaskConfig, seeds: Sequence[int] = (0, 1, 2)) -> HardTaskRuns:
    """Train (or load) and score every condition for ``seeds``; raw evaluations and run metadata."""
    seeds = list(seeds)
    # 1. GRPO's learning rate, chosen on the validation split by the rule written before the runs.
    cfg, lr_scores = choose_lr(cfg)
    lr = {"chosen": cfg.grpo.lr, "validation_pass_at_1": {str(k): v for k, v in lr_scores.items()}}
    out = HardTaskRuns(seeds=seeds, clip_mu=cfg.clip_mu, lr=lr, deciding=deciding_cells(cfg, seeds))
    # 2. Bases, GRPO conditions and baselines (at the same cell's GRPO FLOPs), then every evaluation.
    _train_all(cfg, out)
    out.base_meta = artifacts.load_meta(out.paths["base"][(0, seeds[0])])
    _score_all(cfg, out)
    return out


# ----------------------------------------------------------------------------- scoring
def _row(by_cell: dict[Cell, EvalResult], cs: Sequence[Cell], name: str = "acc") -> np.ndarray:
    return per_problem_scores([by_cell[c] for c in cs], name)  # (S, P)


def _final(runs: dict[Cell, dict], key: str, cs: Sequence[Cell] | None = None) -> list[float]:
    return [float(runs[c]["evals"][-1][key]) for c in (cs if cs is not None else runs)]


def _per_seed(values: dict[Cell, float], cs: Sequence[Cell], unit: str = "") -> stats.Metric:
    return stats.over_seeds([float(values[c]) for c in cs], unit=unit)


def controls_metrics(out: HardTaskRuns) -> dict:
    """Results-file metrics of :func:`run_experiment`: the deciding comparisons over bases and
    seeds, the base-0 controls (paired bootstrap), curves, reward components and FLOPs."""
    ev = {k: {n: by[n] for n in DECIDING_MODELS} for k, by in out.evals.items()}
    m: dict = decide.deciding_metrics(ev, out.deciding)
    _room_metrics(out, m)  # room on the validation split, the chosen lr
    _control_metrics(out, m)  # the clip control on base 0
    _curve_metrics(out, m)  # curves over training, reward components, behaviours
    m.update(decide.passk_metrics(out.passk))  # sharpen or expand, per base
    _flops_metrics(out, m)
    m["clip_mu"] = out.clip_mu
    m["hard_base_params"] = out.base_meta["params"]
    m["n_bases"] = len({b for b, _ in out.deciding})
    m["seeds_per_base"] = len(out.deciding) // m["n_bases"]
    m["plain_base_pass_at_1_r1"] = m["pass_at_1_r1"]["base"]
    m["primed_base_pass_at_1_r1"] = m["pass_at_1_r1"]["primed_base"]
    m["plain_base_pass_at_1_lenient_r1"] = m["pass_at_1_lenient_r1"]["base"]
    m["primed_base_pass_at_1_lenient_r1"] = m["pass_at_1_lenient_r1"]["primed_base"]
    return m


def _room_metrics(out: HardTaskRuns, m: dict) -> None:
    """Room at both ends on the validation split (plain base 0), and GRPO's learning rate."""
    for kind, r in out.valid.items():
        kmax = max(r.pass_at_k)
        m.setdefault("valid_pass_at_1_r1", {})[kind] = stats.rate(per_problem_scores([r]), seeds="sampling")
        m.setdefault("valid_pass_at_kmax_r1", {})[kind] = stats.rate(
            per_problem_scores([r], f"pass@{kmax}"), seeds="sampling"
        )
    m["valid_kmax"] = max(out.valid["plain"].pass_at_k)
    m["grpo_lr"] = stats.exact(out.lr["chosen"])
    m["lr_valid_pass_at_1"] = {lr: stats.exact(v, unit="rate") for lr, v in out.lr["validation_pass_at_1"].items()}


def _control_metrics(out: HardTaskRuns, m: dict) -> None:
    """Clip control (Shao et al.): the random reward with μ > 1, clip on and off, on base 0; the
    clip's measured reach.  Answer-level (lenient) and strict pass@1 at R1's sampling."""
    r1, cs = out.r1, out.cells[CLIP_MODELS[0]]
    clip, noclip = CLIP_MODELS
    for score, suffix in (("acc", ""), ("acc_lenient", "_lenient")):
        base = _row(r1["base"], cs, score)
        m[f"clip_random_vs_base_pass_at_1{suffix}_r1"] = stats.paired_diff(_row(r1[clip], cs, score), base)
        m[f"noclip_random_vs_base_pass_at_1{suffix}_r1"] = stats.paired_diff(_row(r1[noclip], cs, score), base)
        m[f"clip_vs_noclip_random_pass_at_1{suffix}_r1"] = stats.paired_diff(
            _row(r1[clip], cs, score), _row(r1[noclip], cs, score)
        )
    m["clip_frac"] = {  # share of completion tokens whose ratio the clip cut, mean over steps and runs
        name: stats.over_seeds(
            [float(np.mean([h["clip_frac"] for h in r["history"]])) for r in out.runs[name].values()], unit="rate"
        )
        for name in ("true", "random", clip)
    }


def _curve_metrics(out: HardTaskRuns, m: dict) -> None:
    """The end of every training curve, the reward components per step, behaviour rates."""
    for name, runs in out.runs.items():
        for key in ("pass_at_1", "pass_at_1_lenient", "format_rate", "mean_len"):
            m.setdefault(f"final_{key}_curve", {})[name] = stats.over_seeds(
                _final(runs, key), unit="" if key == "mean_len" else "rate"
            )
        # Reward components (issue 24): accuracy and format, logged at every step whatever is optimised.
        for comp, key in (("accuracy", "acc_strict"), ("accuracy_lenient", "acc_lenient"), ("format", "acc_format")):
            for when, i in (("first", 0), ("last", -1)):
                m.setdefault(f"reward_component_{comp}_{when}", {})[name] = stats.over_seeds(
                    [float(r["history"][i][key]) for r in runs.values()], unit="rate"
                )
    cs = [c for c in out.cells["dr_grpo"] if c in out.runs["true"]]
    m["dr_grpo_vs_grpo_mean_len_curve"] = stats.paired_seeds(
        _final(out.runs["dr_grpo"], "mean_len", cs), _final(out.runs["true"], "mean_len", cs)
    )
    for b in behaviours.BEHAVIOURS:
        for name in ("true", "primed_true"):
            runs = out.runs[name]
            m.setdefault(f"behaviour_{b}_start", {})[name] = stats.over_seeds(
                [float(r["evals"][0][f"rate_{b}"]) for r in runs.values()], unit="rate"
            )
            m.setdefault(f"behaviour_{b}_end", {})[name] = stats.over_seeds(_final(runs, f"rate_{b}"), unit="rate")


def _flops_metrics(out: HardTaskRuns, m: dict) -> None:
    """Spent FLOPs per arm (:mod:`minir1.flops`), aligned by deciding cell: the equal-FLOPs pairs."""
    cs = out.deciding
    spent = {"grpo": {c: out.runs["true"][c]["flops"] for c in cs}}
    spent.update({kind: {c: out.baselines[kind][c]["flops"] for c in cs} for kind in BASELINES})
    m["flops_spent"] = {arm: _per_seed(v, cs) for arm, v in spent.items()}
    m["flops_ratio_to_grpo"] = {  # baseline / GRPO per cell (1.0 = equal)
        kind: stats.over_seeds([spent[kind][c] / spent["grpo"][c] for c in cs]) for kind in BASELINES
    }
    m["grpo_flops_per_run"] = m["flops_spent"]["grpo"]
    m["baseline_steps"] = {k: _per_seed({c: b["steps"] for c, b in out.baselines[k].items()}, cs) for k in BASELINES}
    m["rft_kept"] = _per_seed({c: b["kept"] for c, b in out.baselines["rft"].items()}, cs)


def equal_flops(out: HardTaskRuns) -> list[list[str]]:
    """``extra["equal_flops"]``: the pairs the chapter calls "equal FLOPs" (each within 5% per cell).
    A baseline with nothing to train on in some cell (RFT keeping no verified sample) could not
    spend its budget: it is left out of the list and reported as such (``unequal_flops``)."""
    return [["grpo", k] for k in BASELINES if all(b["kept"] > 0 for b in out.baselines[k].values())]


CURVE_KEYS = (
    "step",
    "reward",
    "acc_strict",
    "acc_lenient",
    "acc_format",
    "len",
    "len_correct",
    "len_incorrect",
    "clip_frac",
    "entropy",
)


def controls_extra(out: HardTaskRuns) -> dict:
    """Curves (per condition, per run), sample completions, the lr rule, the FLOPs ledgers."""
    return {
        "curves": {
            name: [
                {"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"], "cell": c}
                for c, r in runs.items()
            ]
            for name, runs in out.runs.items()
        },
        "samples": {name: next(iter(runs.values())).samples for name, runs in out.r1.items()},
        "lr": out.lr,
        "ledgers": {
            "grpo": [out.runs["true"][c].get("ledger") for c in out.deciding],
            **{k: [out.baselines[k][c].get("ledger") for c in out.deciding] for k in BASELINES},
        },
        "cells": [list(c) for c in out.deciding],
        "unequal_flops": [k for k in BASELINES if ["grpo", k] not in equal_flops(out)],
    }


def controls_evals(cfg: HardTaskConfig, out: HardTaskRuns) -> dict:
    """``evals`` records of every cached evaluation the metrics use."""
    held, smp = heldout_set(cfg), samplings(cfg)
    recs = {}

    def add(path, eset, samp, runs, seeds):
        eid, rec = eval_record(path, eset, samp, runs, seeds)
        recs[eid] = rec

    room = r1_many(cfg, cfg.valid_samples)
    add(out.paths["base"][(0, out.seeds[0])], valid_set(cfg), room, [out.valid["plain"]], [0])
    for setting, by_model in out.evals.items():
        for name, by_cell in by_model.items():
            for c, r in by_cell.items():
                add(out.paths[name][c], held, smp[setting], [r], [0 if setting == "greedy" else c[1]])
    many, pk, s0 = r1_many(cfg, cfg.passk_samples), passk_set(cfg), out.seeds[0]
    for b, r in out.passk["base"].items():
        add(out.paths["base"][(b, s0)], pk, many, [r], [0])
    for b, r in out.passk["true"].items():
        add(out.paths["true"][(b, s0)], pk, many, [r], [s0])
    return recs


def total_flops(out: HardTaskRuns) -> float:
    """Training FLOPs of every run and baseline, every base's continued pretraining, and 2·N per
    sampled evaluation token."""
    fl = sum(r["flops"] for runs in out.runs.values() for r in runs.values())
    fl += sum(b["flops"] for by in out.baselines.values() for b in by.values())
    evs = list(out.valid.values()) + [r for by in out.evals.values() for m in by.values() for r in m.values()]
    evs += [r for by in out.passk.values() for r in by.values()]
    fl += 2.0 * out.base_meta["params"] * sum(r.tokens_generated for r in evs)
    return float(fl + out.base_flops)


__all__ = [
    "HardTaskRuns",
    "choose_lr",
    "run_experiment",
    "controls_metrics",
    "controls_extra",
    "controls_evals",
    "total_flops",
    "CURVE_KEYS",
    "equal_flops",
]
