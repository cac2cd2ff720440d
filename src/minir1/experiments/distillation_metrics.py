"""The distillation chapter's metrics (companion of :mod:`.distillation`, imported by it only).

From the chapter's nested record of results (``out``, assembled by
:func:`minir1.experiments.distillation.run`): the results-file metrics, the headline numbers the
rules read, the extra record, the chapter's FLOPs, and R1's published figures for comparison.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import stats, stats_hier
from ..utils import repo_root
from .distillation_students import CONDITIONS


# ----------------------------------------------------------------------------- the interval rule
def _hull(m: stats.Metric) -> stats.Metric:
    """The reporting rule (:func:`minir1.stats_hier.conservative`): the bootstrap interval hulled with
    the seed-level t interval; a single seed has no seed-level interval, so its bootstrap stands."""
    if len(m.per_seed) < 2:
        return m
    h = stats_hier.conservative(m)
    low, high = {"rate": (0.0, 1.0), "diff": (-1.0, 1.0)}.get(h.unit, (-np.inf, np.inf))
    # a t interval over a few seeds of a rate near 0 or 1 reaches past it: no rate does
    return stats.Metric(h.mean, max(h.lo, low), min(h.hi, high), h.per_seed, h.n, h.method, h.unit)


def _rate(x) -> stats.Metric:
    """A rate over (seeds, problems): hierarchical bootstrap (seeds, then problems), hulled."""
    return _hull(stats_hier.hierarchical_bootstrap(np.asarray(x)))


def _diff(a, b, hull: bool = True) -> stats.Metric:
    """A − B paired on the same seeds and problems (a fixed model's one row repeated); hulled unless not ``hull``."""
    d = stats_hier.hierarchical_paired_diff(np.asarray(a), np.asarray(b))
    return _hull(d) if hull else d


def _ratio(a, b) -> stats.Metric | None:
    """mean(A) / mean(B), paired bootstrap hulled with the t interval over per-seed ratios; None if B is 0."""
    return _hull(stats.paired_ratio(a, b)) if float(np.mean(b)) > 0 else None


def _seeds(values) -> stats.Metric:
    return _hull(stats.over_seeds(values))


# Per-problem score rows of a record, and the metric name each is published under.
_ROWS = (
    ("acc", "pass_at_1"),
    ("acc_lenient", "pass_at_1_lenient"),
    ("format", "format_rate"),
    ("pass_k", "pass_at_k"),
    ("acc_greedy", "pass_at_1_greedy"),
    ("acc_lenient_greedy", "pass_at_1_lenient_greedy"),
    ("format_greedy", "format_rate_greedy"),
)


def _model_metrics(rec: dict) -> dict:
    """A model's rates (answer-level, strict, format; sampled and greedy), tokens and FLOPs per answer."""
    m = {name: _rate(rec[key]) for key, name in _ROWS if key in rec}  # controls: no greedy rows
    m["tokens_per_answer"] = _seeds(rec["tokens"])
    m["flops_per_answer"] = _seeds(rec["flops_per_answer"])
    return m


# ----------------------------------------------------------------------------- metrics
def metrics_of(out: dict) -> dict:
    """Results-file metrics: rates and paired comparisons under the reporting rule (:func:`_hull`)."""
    t = out["teacher"]
    t_flops = t["base_flops"] + t["rl_flops"]
    m = _teacher_metrics(out, t_flops)  # the teacher, its traces and its base
    m |= _student_metrics(out["students"], out["val"])  # each student's rates under each condition
    m |= _comparisons(out, t_flops)  # paired against the teacher, RL and the base; compute shares
    m |= _big_rl_and_curve(out)  # the teacher's base + GRPO, the sample-efficiency curve
    m["flops_spent"] = flops_spent(out)
    m |= headline(m, out)
    # An empty series (e.g. no ratio to a teacher that solves nothing) is left out, not written empty.
    return {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in m.items() if not (isinstance(v, dict) and not v)
    }


_TRACE_KEYS = ("pairs", "sampled", "acceptance_rate", "generated_tokens", "prompt_tokens", "flops")
_TRACE_KEYS += ("wall_seconds", "mean_tokens", "verified", "distinct", "problems")


def _teacher_metrics(out: dict, t_flops) -> dict:
    """The teacher's and its base's sizes, costs and rates, and the trace set's accounting."""
    t, tr, bb = out["teacher"], out["traces"], out["big_base"]
    m: dict = {
        "teacher_params": t["params"],
        "teacher_base_train_flops": t["base_flops"],
        "teacher_rl_flops": t["rl_flops"],
        "teacher_train_flops": t_flops,
        "big_base_params": bb["params"],
        **{f"trace_{k}": float(tr[k]) for k in _TRACE_KEYS},
    }
    for name, rec in (("teacher", t), ("big_base", bb)):
        m |= {f"{name}_{k}": v for k, v in _model_metrics(rec).items()}
    return m


def _student_metrics(S: dict, val: dict) -> dict:
    """Per student: size, base cost, chosen steps, validation curve and each condition's rates."""
    m: dict = {}
    m["student_params"] = {p: r["base"]["params"] for p, r in S.items()}
    m["student_base_train_flops"] = {p: r["base_flops"] for p, r in S.items()}
    m["student_base_wall_seconds"] = {p: r.get("base_seconds", 0.0) for p, r in S.items()}
    m["sft_steps"] = {p: r["steps"] for p, r in S.items()}
    for p in S:
        m[f"val_pass_at_1_{p}"] = {str(k): v["lenient"] for k, v in val[p].items()}
        m[f"val_pass_at_1_strict_{p}"] = {str(k): v["strict"] for k, v in val[p].items()}
    for cond, prefix in (("base", "student_base"), *((c, c) for c in CONDITIONS)):
        per = {p: _model_metrics(r[cond]) for p, r in S.items()}
        for k in per[next(iter(per))]:  # every size has the same metrics
            m[f"{prefix}_{k}"] = {p: v[k] for p, v in per.items()}
        if cond != "base":
            m[f"{prefix}_train_flops"] = {p: _seeds(r[cond]["train_flops"]) for p, r in S.items()}
    m["rl_steps"] = {p: float(np.mean(r["rl"]["steps"])) for p, r in S.items()}
    for key in ("first_reward", "first_reward_accuracy", "first_reward_format"):
        m[f"rl_{key}"] = {p: float(np.mean(r["rl"][key])) for p, r in S.items()}
    m["rl_flops_vs_distill"] = {
        p: float(np.mean(np.asarray(r["rl"]["train_flops"]) / np.asarray(r["rl_budget"]))) for p, r in S.items()
    }
    return m


def _comparisons(out: dict, t_flops) -> dict:
    """Each student paired against the teacher, its GRPO run and its base (strict, answer-level and greedy
    answer-level); its cost per answer against the teacher's; distillation's share of the teacher's compute."""
    S, t, tr = out["students"], out["teacher"], out["traces"]
    m: dict = {}
    for sfx, key in (("", "acc"), ("_lenient", "acc_lenient"), ("_greedy", "acc_lenient_greedy")):
        m[f"distill_vs_teacher{sfx}"] = {p: _diff(r["distill"][key], t[key]) for p, r in S.items()}
        kept = {p: _ratio(r["distill"][key], t[key]) for p, r in S.items()}
        m[f"distill_kept{sfx}"] = {p: v for p, v in kept.items() if v is not None}
        m[f"distill_minus_rl{sfx}"] = {p: _diff(r["distill"][key], r["rl"][key]) for p, r in S.items()}
        m[f"distill_gain{sfx}"] = {p: _diff(r["distill"][key], r["base"][key]) for p, r in S.items()}
    m["distill_cost_ratio"] = {
        p: _seeds([a / b for a, b in zip(r["distill"]["flops_per_answer"], t["flops_per_answer"])])
        for p, r in S.items()
    }
    # Distillation compute against the teacher's: with the student's base reused (R1's case) and trained here.
    m["distill_compute_reused"] = {
        p: (np.mean(r["distill"]["train_flops"]) + tr["flops"]) / t_flops for p, r in S.items()
    }
    m["distill_compute_trained"] = {
        p: (np.mean(r["distill"]["train_flops"]) + tr["flops"] + r["base_flops"]) / t_flops for p, r in S.items()
    }
    return m


def _big_rl_and_curve(out: dict) -> dict:
    """The teacher's base given GRPO at equal FLOPs (when run), and the sample-efficiency curve."""
    m: dict = {}
    if "big_rl" in out:
        b = out["big_rl"]
        m |= {f"big_rl_{k}": v for k, v in _model_metrics(b).items()}
        m["big_rl_steps"], m["big_rl_train_flops"] = float(np.mean(b["steps"])), float(np.mean(b["train_flops"]))
        m["big_rl_first_reward_accuracy"] = float(np.mean(b["first_reward_accuracy"]))
    m["curve_pass_at_1"] = {f: _rate(c["acc"]) for f, c in out["curve"].items()}
    m["curve_pass_at_1_lenient"] = {f: _rate(c["acc_lenient"]) for f, c in out["curve"].items()}
    m["curve_format_rate"] = {f: _rate(c["format"]) for f, c in out["curve"].items()}
    m["curve_n_traces"] = dict(out["curve_n"])
    return m


def flops_spent(out: dict) -> dict:
    """Every equal-FLOPs arm's spent FLOPs per seed (issue 24's results convention; pairs in :func:`equal_flops`):
    distillation = SFT over prompt and completion tokens + the teacher's traces; GRPO = its ledger
    (sampling + policy forward and backward over prompt and completion tokens)."""
    S, tr = out["students"], out["traces"]["flops"]
    spent = {}
    for p, r in S.items():
        spent[f"distill_{p}"] = stats.over_seeds([f + tr for f in r["distill"]["train_flops"]])
        spent[f"rl_{p}"] = stats.over_seeds(r["rl"]["train_flops"])
    if "big_rl" in out:
        spent["big_rl"] = stats.over_seeds(out["big_rl"]["train_flops"])
    return spent


def equal_flops(out: dict) -> list[list[str]]:
    """The pairs of arms the chapter calls "equal FLOPs" (each GRPO arm stopped on its partner's spend)."""
    pairs = [[f"distill_{p}", f"rl_{p}"] for p in out["students"]]
    return pairs + ([[f"distill_{out['chosen']['best']}", "big_rl"]] if "big_rl" in out else [])


def headline(m: dict, out: dict) -> dict:
    """The numbers the rules in data/claims.yml read, for the students chosen on validation only
    (:func:`~.distillation_students.choose_students`): ``cheap`` for "cheaper", ``best`` for "small beats
    big" and "anyone can", each also for the other student (the variants); the worst and best size for
    "beats RL".  Answer-level unless the name says ``_strict``; ``_greedy`` is greedy decoding (answer-level);
    ``_boot`` the hierarchical bootstrap without the seed-level hull."""
    S, t, ch = out["students"], out["teacher"], out["chosen"]
    h: dict = {"best_student_size": m["student_params"][ch["best"]] / m["teacher_params"]}
    h["best_other_size"] = m["student_params"][ch["best_other"]] / m["teacher_params"]
    variants = (("", "acc_lenient", True), ("_strict", "acc", True), ("_greedy", "acc_lenient_greedy", True))
    for sfx, key, hull in (*variants, ("_boot", "acc_lenient", False)):
        for name, who in (("cheap", "cheap"), ("small", "best"), ("cheap_other", "cheap_other")):
            h[f"{name}_vs_teacher{sfx}"] = _diff(S[ch[who]]["distill"][key], t[key], hull)
        h[f"best_other_vs_teacher{sfx}"] = _diff(S[ch["best_other"]]["distill"][key], t[key], hull)
        h[f"anyone_gain{sfx}"] = _diff(S[ch["best"]]["distill"][key], S[ch["best"]]["base"][key], hull)
        h[f"best_other_gain{sfx}"] = _diff(S[ch["best_other"]]["distill"][key], S[ch["best_other"]]["base"][key], hull)
        if "big_rl" in out:
            for name, who in (("small", "best"), ("best_other", "best_other")):
                h[f"{name}_vs_big_rl{sfx}"] = _diff(S[ch[who]]["distill"][key], out["big_rl"][key], hull)
        gaps = {p: _diff(r["distill"][key], r["rl"][key], hull) for p, r in S.items()}
        h[f"rl_gap_worst{sfx}"] = gaps[min(gaps, key=lambda p: gaps[p].lo)]
        h[f"rl_gap_best{sfx}"] = gaps[max(gaps, key=lambda p: gaps[p].lo)]
        if sfx == "_boot":
            continue
        for name, who in (
            ("cheap", "cheap"),
            ("anyone", "best"),
            ("cheap_other", "cheap_other"),
            ("best_other", "best_other"),
        ):
            kept = _ratio(S[ch[who]]["distill"][key], t[key])
            if kept is not None:
                h[f"{name}_kept{sfx}"] = kept
    h["cheap_cost"], h["cheap_other_cost"] = (m["distill_cost_ratio"][ch[k]] for k in ("cheap", "cheap_other"))
    for name, who in (("anyone", "best"), ("best_other", "best_other")):
        h[f"{name}_compute_reused"] = m["distill_compute_reused"][ch[who]]
        h[f"{name}_compute_trained"] = m["distill_compute_trained"][ch[who]]
    h["rl_start_acc_min"] = min(m["rl_first_reward_accuracy"].values())  # the gate: accuracy, not format
    h["rl_start_reward_min"] = min(m["rl_first_reward"].values())  # accuracy + format (the variant)
    return h


def extra_of(out: dict) -> dict:
    """Samples, the validation curves, the chosen students, equal-FLOPs pairs, GRPO reward components, timings."""
    first = next(iter(out["students"]))
    s = out["students"][first]
    return {
        "traces": out["traces"]["examples"],
        "samples_teacher": out["teacher"]["samples"],
        "samples_distill": s["distill"]["samples"],
        "samples_answers_only": s["answers_only"]["samples"],
        "samples_rl": s["rl"]["samples"],
        "sample_student": first,
        "validation": {p: {str(k): v for k, v in c.items()} for p, c in out["val"].items()},
        "chosen": dict(out["chosen"]),
        "seeds": list(out["seeds"]),
        "equal_flops": equal_flops(out),
        "rl_ledgers": {p: r["rl"]["ledger"][0] for p, r in out["students"].items()},  # first seed
        "rl_history": {p: r["rl"]["history"][0] for p, r in out["students"].items()},  # first seed, per step
        "timing_seconds": out.get("timing", {}),
    }


def total_flops(out: dict) -> float:
    """FLOPs this chapter spent: teacher traces, every model trained here, every evaluation
    (cached teacher and base pretraining not counted)."""
    recs = [out["teacher"], out["big_base"], *([out["big_rl"]] if "big_rl" in out else [])]
    for r in out["students"].values():
        recs += [r["base"], *(r[c] for c in CONDITIONS)]
    recs += [c for f, c in out["curve"].items() if f != "1.0"]
    train = sum(sum(r["train_flops"]) if isinstance(r["train_flops"], list) else 0.0 for r in recs[2:])
    return float(out["traces"]["flops"] + train + sum(r["eval_flops"] for r in recs))


def _size(m: dict, p: str) -> str:
    return f"{p} ({m['student_params'][p] / 1e6:.2f}M, 1/{m['teacher_params'] / m['student_params'][p]:.0f})"


# ----------------------------------------------------------------------------- published figures
def load_published(path: str | Path | None = None) -> list[dict]:
    """Rows of ``data/published_distillation.csv`` (values as floats)."""
    p = Path(path) if path is not None else repo_root() / "data" / "published_distillation.csv"
    if not p.exists():
        raise FileNotFoundError(f"published distillation figures not found at {p}")
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"])
    return rows


def comparison(metrics: dict, published: list[dict]) -> list[dict]:
    """Distilled against RL on the same small model: R1's Table 6, the 0.6B peer, and ours."""
    pub = {r["item"]: r for r in published}
    rows = []
    for bench in ("aime", "math500"):
        d, r = pub[f"r1_distill_qwen32b_{bench}"], pub[f"r1_zero_qwen32b_{bench}"]
        rows.append(
            {
                "setting": "DeepSeek-R1, Qwen2.5-32B (Table 6)",
                "benchmark": f"{r['benchmark']} pass@1",
                "distilled": d["value"],
                "rl": r["value"],
                "source": r["source"],
            }
        )
    for item in ("rasbt_qwen3_06b_distill_qwen235b_math500", "rasbt_qwen3_06b_distill_r1_math500"):
        rows.append(
            {
                "setting": f"Qwen3-0.6B base ({pub[item]['notes']})",
                "benchmark": pub[item]["benchmark"],
                "distilled": pub[item]["value"],
                "rl": pub["rasbt_qwen3_06b_grpo_math500"]["value"],
                "source": pub[item]["source"],
            }
        )
    for p in metrics["distill_pass_at_1"]:
        rows.append(
            {
                "setting": f"ours, {_size(metrics, p)}",
                "benchmark": "3-digit addition pass@1 (answer-level)",
                "distilled": 100 * stats.as_metric(metrics["distill_pass_at_1_lenient"][p]).mean,
                "rl": 100 * stats.as_metric(metrics["rl_pass_at_1_lenient"][p]).mean,
                "source": "this chapter",
            }
        )
    return rows
