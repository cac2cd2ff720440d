"""The distillation chapter's metrics (companion of :mod:`.distillation`, imported by it only).

From the chapter's nested record of results (``out``, assembled by
:func:`minir1.experiments.distillation.run`): the results-file metrics, the headline numbers the
rules read, the extra record, the chapter's FLOPs, and R1's published figures for comparison.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import stats
from ..utils import repo_root
from .distillation_students import CONDITIONS


# ----------------------------------------------------------------------------- metrics
def _ratio(a, b) -> stats.Metric | None:
    return stats.paired_ratio(a, b) if float(np.mean(b)) > 0 else None


def metrics_of(out: dict) -> dict:
    """Results-file metrics: rates by the two-level bootstrap, comparisons paired (minir1.stats)."""
    t = out["teacher"]
    t_flops = t["base_flops"] + t["rl_flops"]
    m = _teacher_metrics(out, t_flops)  # the teacher, its traces and its base
    m |= _student_metrics(out["students"], out["val"])  # each student's rates under each condition
    m |= _comparisons(out, t_flops)  # paired against the teacher, RL and the base; compute shares
    m |= _big_rl_and_curve(out)  # the teacher's base + GRPO, the sample-efficiency curve
    m |= headline(m, out)
    # An empty series (e.g. no ratio to a teacher that solves nothing) is left out, not written empty.
    return {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in m.items() if not (isinstance(v, dict) and not v)
    }


def _teacher_metrics(out: dict, t_flops) -> dict:
    """The teacher's and its base's sizes, costs and rates, and the trace set's accounting."""
    t, tr, bb = out["teacher"], out["traces"], out["big_base"]
    m: dict = {
        "teacher_params": t["params"],
        "teacher_base_train_flops": t["base_flops"],
        "teacher_rl_flops": t["rl_flops"],
        "teacher_train_flops": t_flops,
        "big_base_params": bb["params"],
        **{
            f"trace_{k}": float(tr[k])
            for k in (
                "pairs",
                "sampled",
                "acceptance_rate",
                "generated_tokens",
                "prompt_tokens",
                "flops",
                "wall_seconds",
                "mean_tokens",
                "verified",
                "distinct",
                "problems",
            )
        },
    }
    for name, rec, kind in (("teacher", t, "sampling"), ("big_base", bb, "sampling")):
        m[f"{name}_pass_at_1"] = stats.rate(rec["acc"], seeds=kind)
        m[f"{name}_pass_at_1_lenient"] = stats.rate(rec["acc_lenient"], seeds=kind)
        m[f"{name}_pass_at_k"] = stats.rate(rec["pass_k"], seeds=kind)
        m[f"{name}_tokens_per_answer"] = stats.over_seeds(rec["tokens"])
        m[f"{name}_flops_per_answer"] = stats.over_seeds(rec["flops_per_answer"])
    return m


def _student_metrics(S: dict, val: dict) -> dict:
    """Per student: size, base cost, chosen steps, validation curve and each condition's rates."""
    m: dict = {}
    m["student_params"] = {p: r["base"]["params"] for p, r in S.items()}
    m["student_base_train_flops"] = {p: r["base_flops"] for p, r in S.items()}
    m["sft_steps"] = {p: r["steps"] for p, r in S.items()}
    for p in S:
        m[f"val_pass_at_1_{p}"] = {str(k): v for k, v in val[p].items()}
    for cond, prefix in (("base", "student_base"), *((c, c) for c in CONDITIONS)):
        kind = "sampling" if cond == "base" else "training"
        m[f"{prefix}_pass_at_1"] = {p: stats.rate(r[cond]["acc"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_pass_at_1_lenient"] = {p: stats.rate(r[cond]["acc_lenient"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_pass_at_k"] = {p: stats.rate(r[cond]["pass_k"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_tokens_per_answer"] = {p: stats.over_seeds(r[cond]["tokens"]) for p, r in S.items()}
        m[f"{prefix}_flops_per_answer"] = {p: stats.over_seeds(r[cond]["flops_per_answer"]) for p, r in S.items()}
        if cond != "base":
            m[f"{prefix}_train_flops"] = {p: stats.over_seeds(r[cond]["train_flops"]) for p, r in S.items()}
    m["rl_steps"] = {p: r["rl_steps"] for p, r in S.items()}
    m["rl_first_reward"] = {p: _first_reward(r) for p, r in S.items()}
    m["rl_flops_vs_distill"] = {p: float(np.mean(r["rl"]["train_flops"]) / r["rl_budget"]) for p, r in S.items()}
    return m


def _comparisons(out: dict, t_flops) -> dict:
    """Each student paired against the teacher, its GRPO run and its base; distillation's compute share."""
    S, t, tr = out["students"], out["teacher"], out["traces"]
    m: dict = {}
    # Paired comparisons on the same problems (row s: student seed s, teacher sampling seed s).
    m["distill_vs_teacher"] = {p: stats.paired_diff(r["distill"]["acc"], t["acc"]) for p, r in S.items()}
    kept = {p: _ratio(r["distill"]["acc"], t["acc"]) for p, r in S.items()}
    m["distill_kept"] = {p: v for p, v in kept.items() if v is not None}
    m["distill_minus_rl"] = {p: stats.paired_diff(r["distill"]["acc"], r["rl"]["acc"]) for p, r in S.items()}
    m["distill_gain"] = {p: stats.paired_diff(r["distill"]["acc"], r["base"]["acc"]) for p, r in S.items()}
    m["distill_cost_ratio"] = {
        p: stats.over_seeds(
            [a / b for a, b in zip(r["distill"]["flops_per_answer"], t["flops_per_answer"])], unit="ratio"
        )
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
        m["big_rl_pass_at_1"] = stats.rate(b["acc"])
        m["big_rl_steps"], m["big_rl_train_flops"] = b["steps"], float(np.mean(b["train_flops"]))
    m["curve_pass_at_1"] = {f: stats.rate(c["acc"]) for f, c in out["curve"].items()}
    m["curve_n_traces"] = dict(out["curve_n"])
    return m


def _first_reward(r) -> float:
    """Mean reward of GRPO's first step from this base: 0 means no group had a signal to learn from."""
    return float(np.mean(r["rl"]["first_reward"]))


def headline(m: dict, out: dict) -> dict:
    """The numbers the rules in data/claims.yml read: for each claim, the student it is about.

    Which student is chosen is stated here, before the run: the best student by distilled pass@1
    for "small beats big" and "anyone can"; the student keeping most of the teacher (highest lower
    bound of the kept ratio) for "cheaper"; the worst and best paired gap for "beats RL".
    """
    S, _t = out["students"], out["teacher"]
    best = max(S, key=lambda p: m["distill_pass_at_1"][p].mean)
    h = {
        "best_student_size": m["student_params"][best] / m["teacher_params"],
        "small_vs_teacher": m["distill_vs_teacher"][best],
        "anyone_gain": m["distill_gain"][best],
        "anyone_compute_reused": m["distill_compute_reused"][best],
        "anyone_compute_trained": m["distill_compute_trained"][best],
    }
    if "big_rl" in out:
        h["small_vs_big_rl"] = stats.paired_diff(S[best]["distill"]["acc"], out["big_rl"]["acc"])
    if m.get("distill_kept"):
        cheap = max(m["distill_kept"], key=lambda p: m["distill_kept"][p].lo)
        h["cheap_kept"], h["cheap_cost"] = m["distill_kept"][cheap], m["distill_cost_ratio"][cheap]
        h["anyone_kept"] = m["distill_kept"].get(best, m["distill_kept"][cheap])
    gaps = m["distill_minus_rl"]
    h["rl_gap_worst"] = gaps[min(gaps, key=lambda p: gaps[p].lo)]
    h["rl_gap_best"] = gaps[max(gaps, key=lambda p: gaps[p].lo)]
    h["rl_start_min"] = min(m["rl_first_reward"].values())
    return h


def extra_of(out: dict) -> dict:
    """Samples, the validation curve and timings for the chapter (read back from the results file)."""
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
                "benchmark": "3-digit addition pass@1",
                "distilled": 100 * stats.as_metric(metrics["distill_pass_at_1"][p]).mean,
                "rl": 100 * stats.as_metric(metrics["rl_pass_at_1"][p]).mean,
                "source": "this chapter",
            }
        )
    return rows
