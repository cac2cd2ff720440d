"""The RL chapter's hard task, evaluated and scored: results-file metrics, curves and evaluation records.

:func:`run_experiment` trains (or loads) every condition of :mod:`minir1.experiments.rl_hard_task`
and runs the cached evaluations; :func:`controls_metrics` turns them into the metrics the chapter
and its verdict read (every comparison a paired bootstrap from :mod:`minir1.stats`);
:func:`controls_extra` keeps the training curves for the figures, :func:`controls_evals` the record
of every cached evaluation, :func:`total_flops` the compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from .. import artifacts, behaviours, stats
from ..evaluation import EvalResult, eval_record, evaluate_cached, per_problem_scores
from .rl_hard_task import (
    BASELINES,
    BASES,
    CLIP_MODELS,
    CONDITIONS,
    VERDICT_MODELS,
    HardTaskConfig,
    baseline_path,
    grpo_path,
    hard_base_path,
    heldout_set,
    passk_set,
    r1_many,
    samplings,
    valid_set,
)


# ----------------------------------------------------------------------------- running the conditions
@dataclass
class HardTaskRuns:
    """What :func:`run_experiment` trained and evaluated; the per-model dicts are keyed by model name
    (``base``, ``primed_base``, a condition's name, a baseline's)."""

    seeds: list[int]
    clip_mu: int
    lr: dict  # {"chosen": lr, "validation_pass_at_1": {lr: score}}
    paths: dict[str, list] = field(default_factory=dict)  # model -> artifact folder per seed
    runs: dict[str, list[dict]] = field(default_factory=dict)  # GRPO condition -> run meta per seed
    r1: dict[str, list[EvalResult]] = field(default_factory=dict)  # model -> held-out evals at R1's sampling
    settings: dict[str, dict] = field(default_factory=dict)  # base / true -> {greedy, t1: [EvalResult]}
    baselines: dict[str, list[dict]] = field(default_factory=dict)  # baseline -> meta per seed
    valid: dict[str, EvalResult] = field(default_factory=dict)  # base kind -> validation eval (room check)
    passk: dict[str, list[EvalResult]] = field(default_factory=dict)  # base / true -> many-sample evals
    base_meta: dict = field(default_factory=dict)  # the plain base's artifact meta


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


def run_experiment(cfg: HardTaskConfig, seeds: Sequence[int] = (0, 1, 2)) -> HardTaskRuns:
    """Train (or load) and score every condition for ``seeds``; raw evaluations and run metadata."""
    seeds = list(seeds)
    # 1. GRPO's learning rate, chosen on the validation split by the rule written before the runs.
    cfg, lr_scores = choose_lr(cfg)
    held, smp = heldout_set(cfg), samplings(cfg)
    lr = {"chosen": cfg.grpo.lr, "validation_pass_at_1": {str(k): v for k, v in lr_scores.items()}}
    out = HardTaskRuns(seeds=seeds, clip_mu=cfg.clip_mu, lr=lr)
    # 2. The bases, and the validation check that the task has room at both ends.
    for kind in BASES:
        path = hard_base_path(cfg, kind)
        name = "base" if kind == "plain" else "primed_base"
        out.paths[name] = [path] * len(seeds)
        if kind == "plain":  # the room check (the primed base's room shows in its held-out numbers)
            out.valid[kind] = evaluate_cached(path, valid_set(cfg), r1_many(cfg, cfg.valid_samples), 0)
        out.r1[name] = [evaluate_cached(path, held, smp["r1"], s) for s in seeds]
    out.base_meta = artifacts.load_meta(out.paths["base"][0])
    # 3. The plain base at greedy decoding and T = 1, beside R1's sampling.
    out.settings["base"] = {
        k: [evaluate_cached(out.paths["base"][0], held, smp[k], s) for s in ([0] if k == "greedy" else seeds)]
        for k in ("greedy", "t1")
    }
    # 4. Every GRPO condition (reward controls, loss type, primed base, clip control), one model per seed.
    for cond in CONDITIONS:
        name = cond.name
        paths = [cond.path(cfg, s) for s in seeds]
        out.paths[name], out.runs[name] = paths, [artifacts.load_meta(p) for p in paths]
        if name in VERDICT_MODELS:
            out.r1[name] = [evaluate_cached(p, held, smp["r1"], s) for p, s in zip(paths, seeds)]
    out.settings["true"] = {
        k: [evaluate_cached(p, held, smp[k], s if k != "greedy" else 0) for p, s in zip(out.paths["true"], seeds)]
        for k in ("greedy", "t1")
    }
    # 5. The baselines, each trained for the FLOPs of the same seed's true-reward GRPO run.
    for kind in BASELINES:
        budgets = [m["flops"] for m in out.runs["true"]]
        paths = [baseline_path(cfg, kind, s, b) for s, b in zip(seeds, budgets)]
        out.paths[kind], out.baselines[kind] = paths, [artifacts.load_meta(p) for p in paths]
        out.r1[kind] = [evaluate_cached(p, held, smp["r1"], s) for p, s in zip(paths, seeds)]
    # 6. Sharpen or expand: many samples per held-out problem, base (one model) and true-reward RL.
    many = r1_many(cfg, cfg.passk_samples)
    pk = passk_set(cfg)
    out.passk = {"base": [evaluate_cached(out.paths["base"][0], pk, many, 0)]}
    out.passk["true"] = [evaluate_cached(p, pk, many, s) for p, s in zip(out.paths["true"], seeds)]
    return out


# ----------------------------------------------------------------------------- scoring
def _s(runs: Sequence[EvalResult], name: str = "pass@1") -> np.ndarray:
    return per_problem_scores(runs, name)  # (S, P)


def _final(runs: list[dict], key: str) -> list[float]:
    return [float(r["evals"][-1][key]) for r in runs]


def _counts(runs: Sequence[EvalResult]) -> np.ndarray:
    return np.asarray([r.correct for r in runs])  # (S, P) correct samples per problem


def controls_metrics(out: HardTaskRuns) -> dict:
    """Results-file metrics of :func:`run_experiment`; every comparison a paired bootstrap."""
    m: dict = {}
    _heldout_metrics(out, m)  # room, the chosen lr, held-out R1-sampling comparisons, the clip control
    _curve_metrics(out, m)  # other evaluation settings, curves over training, behaviours
    m.update(_passk_metrics(out))  # sharpen or expand
    m["clip_mu"] = out.clip_mu
    m["grpo_flops_per_run"] = stats.over_seeds([r["flops"] for r in out.runs["true"]])
    m["hard_base_params"] = out.base_meta["params"]
    m["baseline_steps"] = {k: stats.over_seeds([b["steps"] for b in out.baselines[k]]) for k in BASELINES}
    m["rft_kept"] = stats.over_seeds([b["kept"] for b in out.baselines["rft"]])
    return m


def _heldout_metrics(out: HardTaskRuns, m: dict) -> None:
    """Room on the validation split, the chosen lr, and the held-out comparisons at R1's sampling."""
    r1 = out.r1
    # Room at both ends, on the validation split (one model, one sampling seed).
    for kind, r in out.valid.items():
        kmax = max(r.pass_at_k)
        m.setdefault("valid_pass_at_1_r1", {})[kind] = stats.rate(_s([r]), seeds="sampling")
        m.setdefault("valid_pass_at_kmax_r1", {})[kind] = stats.rate(_s([r], f"pass@{kmax}"), seeds="sampling")
    m["valid_kmax"] = max(out.valid["plain"].pass_at_k)
    # GRPO's learning rate, chosen on the validation split (choose_lr).
    m["grpo_lr"] = stats.exact(out.lr["chosen"])
    m["lr_valid_pass_at_1"] = {lr: stats.exact(v, unit="rate") for lr, v in out.lr["validation_pass_at_1"].items()}
    # Held-out, R1's sampling: bases (sampling seeds of one model) and trained models (one per seed).
    for prefix, base in (("plain", "base"), ("primed", "primed_base")):
        m[f"{prefix}_base_pass_at_1_r1"] = stats.rate(_s(r1[base]), seeds="sampling")
    for name in VERDICT_MODELS:
        if "base" not in name:
            m.setdefault("pass_at_1_r1", {})[name] = stats.rate(_s(r1[name]))
    for name in ("true", "random"):
        m.setdefault("reward_vs_base_pass_at_1_r1", {})[name] = stats.paired_diff(_s(r1[name]), _s(r1["base"]))
    m["plain_rl_vs_base_pass_at_1_r1"] = m["reward_vs_base_pass_at_1_r1"]["true"]
    m["plain_rl_vs_base_pass_at_1_lenient_r1"] = stats.paired_diff(
        _s(r1["true"], "pass@1_lenient"), _s(r1["base"], "pass@1_lenient")
    )
    m["plain_true_vs_random_pass_at_1_r1"] = stats.paired_diff(_s(r1["true"]), _s(r1["random"]))
    best = max(BASELINES, key=lambda k: m["pass_at_1_r1"][k].mean)
    m["best_baseline"] = BASELINES.index(best)  # 0 = SFT on worked solutions, 1 = RFT
    for kind in BASELINES:
        m.setdefault("rl_vs_baseline_pass_at_1_r1", {})[kind] = stats.paired_diff(_s(r1["true"]), _s(r1[kind]))
    m["plain_rl_vs_best_baseline_pass_at_1_r1"] = m["rl_vs_baseline_pass_at_1_r1"][best]
    m["primed_rl_vs_base_pass_at_1_r1"] = stats.paired_diff(_s(r1["primed_true"]), _s(r1["primed_base"]))
    m["primed_vs_plain_rl_pass_at_1_r1"] = stats.paired_diff(_s(r1["primed_true"]), _s(r1["true"]))
    # Clip control (Shao et al.): the random reward with μ > 1, clip on and off; the clip's measured reach.
    clip, noclip = CLIP_MODELS
    m["clip_random_vs_base_pass_at_1_r1"] = stats.paired_diff(_s(r1[clip]), _s(r1["base"]))
    m["noclip_random_vs_base_pass_at_1_r1"] = stats.paired_diff(_s(r1[noclip]), _s(r1["base"]))
    m["clip_vs_noclip_random_pass_at_1_r1"] = stats.paired_diff(_s(r1[clip]), _s(r1[noclip]))
    m["clip_frac"] = {  # share of completion tokens whose ratio the clip cut, mean over steps and seeds
        name: stats.over_seeds(
            [float(np.mean([h["clip_frac"] for h in r["history"]])) for r in out.runs[name]], unit="rate"
        )
        for name in ("true", "random", clip)
    }


def _curve_metrics(out: HardTaskRuns, m: dict) -> None:
    """Greedy and T = 1 beside R1's sampling; the end of every training curve; behaviour rates."""
    # Evaluation settings: greedy and T = 1 beside R1's (base and true-reward RL).
    for k in ("greedy", "t1"):
        b, t = out.settings["base"][k], out.settings["true"][k]
        m[f"plain_base_pass_at_1_{k}"] = stats.rate(_s(b), seeds="sampling")
        m[f"plain_rl_pass_at_1_{k}"] = stats.rate(_s(t))
        bb = np.repeat(_s(b), len(t), axis=0) if len(b) == 1 else _s(b)  # greedy: one base row per RL seed
        m[f"plain_rl_vs_base_pass_at_1_{k}"] = stats.paired_diff(_s(t), bb)
    # Reward controls and loss types over training (curve problems, R1's sampling).
    for name, runs in out.runs.items():
        for key in ("pass_at_1", "format_rate", "mean_len"):
            m.setdefault(f"final_{key}_curve", {})[name] = stats.over_seeds(
                _final(runs, key), unit="" if key == "mean_len" else "rate"
            )
    m["dr_grpo_vs_grpo_mean_len_curve"] = stats.paired_seeds(
        _final(out.runs["dr_grpo"], "mean_len"), _final(out.runs["true"], "mean_len")
    )
    for b in behaviours.BEHAVIOURS:
        for name in ("true", "primed_true"):
            runs = out.runs[name]
            m.setdefault(f"behaviour_{b}_start", {})[name] = stats.over_seeds(
                [float(r["evals"][0][f"rate_{b}"]) for r in runs], unit="rate"
            )
            m.setdefault(f"behaviour_{b}_end", {})[name] = stats.over_seeds(_final(runs, f"rate_{b}"), unit="rate")


def _passk_metrics(out: HardTaskRuns) -> dict:
    """pass@k (k = 1..n) of base and true-reward RL, the crossover k, per-problem coverage."""
    pb, pr = out.passk["base"], out.passk["true"]
    n = pb[0].n_samples
    ks = sorted(pb[0].pass_at_k)
    cb, cr = _counts(pb), _counts(pr)
    base_k = stats.pass_at_k(cb, n, ks, seeds="sampling")
    rl_k = stats.pass_at_k(cr, n, ks)
    m = {
        "passk_base": {str(k): v for k, v in base_k.items()},
        "passk_rl": {str(k): v for k, v in rl_k.items()},
        "passk_n": n,
        # The smallest k at which the base's pass@k reaches RL's (0 = never, up to n).
        "passk_crossover_k": stats.crossover_k(rl_k, base_k) or 0,
        f"passk_rl_vs_base_at_{n}": stats.paired_diff(
            stats.pass_at_k_scores(cr, n, n), np.repeat(stats.pass_at_k_scores(cb, n, n), len(pr), axis=0)
        ),
        "passk_rl_vs_base_at_1": stats.paired_diff(
            stats.pass_at_k_scores(cr, n, 1), np.repeat(stats.pass_at_k_scores(cb, n, 1), len(pr), axis=0)
        ),
    }
    base_solved = cb > 0  # (1, P)
    # Problems RL (seed s) solves in n samples that the base never solved, and the reverse.
    m["coverage_rl_only"] = stats.rate(((cr > 0) & ~base_solved).astype(float))
    m["coverage_base_only"] = stats.rate((base_solved & ~(cr > 0)).astype(float))
    m["coverage_base_solved"] = stats.rate(base_solved.astype(float), seeds="sampling")
    return m


CURVE_KEYS = ("step", "reward", "acc_strict", "acc_lenient", "len", "len_correct", "len_incorrect", "clip_frac")


def controls_extra(out: HardTaskRuns) -> dict:
    """Curves (per condition, per seed) and sample completions for the figures."""
    return {
        "curves": {
            name: [
                {"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"]}
                for r in runs
            ]
            for name, runs in out.runs.items()
        },
        "samples": {name: runs[0].samples for name, runs in out.r1.items()},
        "lr": out.lr,
    }


def controls_evals(cfg: HardTaskConfig, out: HardTaskRuns) -> dict:
    """``evals`` records of every cached evaluation the metrics use."""
    held, smp, seeds = heldout_set(cfg), samplings(cfg), out.seeds
    recs = {}
    for kind, r in out.valid.items():
        path = out.paths["base" if kind == "plain" else "primed_base"][0]
        eid, rec = eval_record(path, valid_set(cfg), r1_many(cfg, cfg.valid_samples), [r], [0])
        recs[eid] = rec
    for name, runs in out.r1.items():
        if "base" in name:
            eid, rec = eval_record(out.paths[name][0], held, smp["r1"], runs, seeds)
            recs[eid] = rec
        else:
            for p, r, s in zip(out.paths[name], runs, seeds):
                eid, rec = eval_record(p, held, smp["r1"], [r], [s])
                recs[eid] = rec
    for k in ("greedy", "t1"):
        eid, rec = eval_record(out.paths["base"][0], held, smp[k], out.settings["base"][k], seeds)
        recs[eid] = rec
        for p, r, s in zip(out.paths["true"], out.settings["true"][k], seeds):
            eid, rec = eval_record(p, held, smp[k], [r], [s])
            recs[eid] = rec
    many = r1_many(cfg, cfg.passk_samples)
    pk = passk_set(cfg)
    eid, rec = eval_record(out.paths["base"][0], pk, many, out.passk["base"], [0])
    recs[eid] = rec
    for p, r, s in zip(out.paths["true"], out.passk["true"], seeds):
        eid, rec = eval_record(p, pk, many, [r], [s])
        recs[eid] = rec
    return recs


def total_flops(out: HardTaskRuns) -> float:
    """Training FLOPs of every run and baseline, plus 2·N per sampled evaluation token."""
    fl = sum(r["flops"] for runs in out.runs.values() for r in runs)
    fl += sum(b["flops"] for runs in out.baselines.values() for b in runs)
    evs = list(out.valid.values()) + [r for runs in out.r1.values() for r in runs]
    evs += [r for by in out.settings.values() for runs in by.values() for r in runs]
    evs += [r for runs in out.passk.values() for r in runs]
    fl += 2.0 * out.base_meta["params"] * sum(r.tokens_generated for r in evs)
    fl += 2 * out.base_meta["flops"]  # pretraining the two bases
    return float(fl)


__all__ = [
    "choose_lr",
    "run_experiment",
    "controls_metrics",
    "controls_extra",
    "controls_evals",
    "total_flops",
    "CURVE_KEYS",
]
