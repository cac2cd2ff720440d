"""Figures and tables of the distillation chapter (04_distillation): students, teacher and compute."""

from __future__ import annotations

import numpy as np

from ...stats import as_metric, fmt
from .common import PALETTE, _yerr

_DISTILL_CONDS = (
    ("student_base", "student base", "o"),
    ("answers_only", "SFT on answers only (c)", "v"),
    ("rl", "GRPO at equal FLOPs (b)", "s"),
    ("logit_kd", "logit KD (d)", "D"),
    ("distill", "SFT on teacher traces (a)", "*"),
)


_DISTILL_REFS = (
    ("teacher", "teacher (base + GRPO)", "-"),
    ("big_rl", "teacher's base + GRPO at the best student's distillation FLOPs", "--"),
    ("big_base", "teacher's base", ":"),
)
_ACC = "pass_at_1_lenient"  # answer-level pass@1 decides (issue 24); strict and format rate in the table
_YLABEL = "held-out pass@1 (answer-level)"


def distill_bars(ax, metrics: dict):
    """Held-out answer-level pass@1 per student size and condition (95% intervals by the reporting rule,
    seed dots), with the teacher and the teacher-sized comparators as horizontal lines."""
    sizes = list(metrics["student_params"])
    width = 0.8 / len(_DISTILL_CONDS)
    for j, (key, label, _) in enumerate(_DISTILL_CONDS):
        ms = [as_metric(metrics[f"{key}_{_ACC}"][p]) for p in sizes]
        x = np.arange(len(sizes)) + (j - (len(_DISTILL_CONDS) - 1) / 2) * width
        ax.bar(x, [m.mean for m in ms], width, yerr=_yerr(ms), capsize=2, label=label, color=PALETTE[j])
        for xi, m in zip(x, ms):
            ax.scatter([xi] * len(m.per_seed), m.per_seed, color="k", s=6, zorder=3)
    for key, label, style in _DISTILL_REFS:
        if f"{key}_{_ACC}" in metrics:
            ax.axhline(as_metric(metrics[f"{key}_{_ACC}"]).mean, ls=style, color=PALETTE[7], lw=1, label=label)
    ax.set_xticks(np.arange(len(sizes)))
    ax.set_xticklabels([f"{p} ({metrics['student_params'][p] / 1e6:.2f}M)" for p in sizes])
    ax.set(ylabel=_YLABEL, ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def distill_frontier(ax, metrics: dict):
    """Accuracy against inference cost: answer-level pass@1 vs FLOPs per answer, every model."""
    for pre, color in (("teacher", "k"), ("big_base", PALETTE[7])):
        m, c = as_metric(metrics[f"{pre}_{_ACC}"]), as_metric(metrics[f"{pre}_flops_per_answer"]).mean
        ax.errorbar(
            c,
            m.mean,
            yerr=_yerr([m]),
            fmt="P",
            ms=8,
            color=color,
            capsize=2,
            label="teacher" if pre == "teacher" else "teacher's base",
        )
    for i, p in enumerate(metrics["student_params"]):
        for key, label, marker in _DISTILL_CONDS:
            m, c = as_metric(metrics[f"{key}_{_ACC}"][p]), as_metric(metrics[f"{key}_flops_per_answer"][p]).mean
            ax.errorbar(c, m.mean, yerr=_yerr([m]), fmt=marker, color=PALETTE[i], capsize=2, label=f"{p}: {label}")
    ax.set_xscale("log")
    ax.set(
        xlabel="inference FLOPs per answer (2·N per generated token)",
        ylabel=_YLABEL,
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def distill_curve(ax, metrics: dict, student: str):
    """Student pass@1 against the number of teacher traces it was fine-tuned on (same steps)."""
    fr = sorted(metrics["curve_n_traces"], key=float)
    x = [metrics["curve_n_traces"][f] for f in fr]
    ms = [as_metric(metrics["curve_pass_at_1_lenient"][f]) for f in fr]
    ax.plot(x, [m.mean for m in ms], "o-", color=PALETTE[0], label=f"{student}, SFT on traces")
    ax.fill_between(x, [m.lo for m in ms], [m.hi for m in ms], color=PALETTE[0], alpha=0.15)
    for xi, m in zip(x, ms):
        ax.scatter([xi] * len(m.per_seed), m.per_seed, color="k", s=6, zorder=3)
    ax.axhline(as_metric(metrics[f"teacher_{_ACC}"]).mean, color="k", lw=1, label="teacher")
    ax.axhline(
        as_metric(metrics[f"student_base_{_ACC}"][student]).mean, color=PALETTE[7], ls=":", label=f"{student} base"
    )
    ax.set_xscale("log")
    ax.set(xlabel="teacher traces in the fine-tuning set", ylabel=_YLABEL, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return ax


def distill_validation(ax, metrics: dict):
    """Validation answer-level pass@1 (train-split problems never sent to the teacher) against SFT steps."""
    for i, p in enumerate(metrics["student_params"]):
        curve = metrics[f"val_pass_at_1_{p}"]
        steps = sorted(curve, key=int)
        ax.plot([int(s) for s in steps], [curve[s] for s in steps], "o-", color=PALETTE[i], label=p)
        ax.axvline(metrics["sft_steps"][p], color=PALETTE[i], ls=":", lw=1)
    ax.set(
        xlabel="SFT steps (dotted: chosen by the rule)", ylabel="validation pass@1 (answer-level)", ylim=(-0.02, 1.02)
    )
    ax.legend(fontsize=8)
    return ax


def distill_table(metrics: dict):
    """Every model: parameters; answer-level pass@1 with the format rate beside it; strict pass@1; greedy
    answer-level pass@1 and format rate; pass@k; tokens and FLOPs per answer."""
    import pandas as pd

    def row(get, params):
        def opt(k):  # the controls are not decoded greedily
            try:
                return fmt(get(k))
            except KeyError:
                return "—"

        return {
            "params (M)": f"{params / 1e6:.2f}",
            "pass@1 answer-level": fmt(get("pass_at_1_lenient")),
            "format rate": fmt(get("format_rate")),
            "pass@1 strict": fmt(get("pass_at_1")),
            "greedy pass@1 answer-level": opt("pass_at_1_lenient_greedy"),
            "greedy format rate": opt("format_rate_greedy"),
            "pass@k answer in tags": fmt(get("pass_at_k")),
            "tokens / answer": f"{as_metric(get('tokens_per_answer')).mean:.1f}",
            "MFLOPs / answer": f"{as_metric(get('flops_per_answer')).mean / 1e6:.3g}",
        }

    out = {
        "teacher": row(lambda k: metrics[f"teacher_{k}"], metrics["teacher_params"]),
        "teacher's base": row(lambda k: metrics[f"big_base_{k}"], metrics["big_base_params"]),
    }
    if "big_rl_pass_at_1_lenient" in metrics:
        out["teacher's base + GRPO (equal FLOPs)"] = row(lambda k: metrics[f"big_rl_{k}"], metrics["big_base_params"])
    for p, n in metrics["student_params"].items():
        for key, label, _ in _DISTILL_CONDS:
            out[f"{p}: {label}"] = row(lambda k: metrics[f"{key}_{k}"][p], n)
    return pd.DataFrame(out).T


def distill_compute_table(metrics: dict, pairs=()):
    """Training compute of each student condition; each equal-FLOPs pair's spent FLOPs (``pairs``: the
    results' ``extra["equal_flops"]``), with the worst seed's larger/smaller; distillation's share of the
    teacher's compute, with the student's base reused and trained here."""
    import pandas as pd

    out, spent = {}, metrics.get("flops_spent", {})
    for p in metrics["student_params"]:
        for key, label in (("distill", "SFT on traces (a)"), ("logit_kd", "logit KD (d)"), ("rl", "GRPO (b)")):
            out[f"{p}: {label}"] = {"student training FLOPs": f"{as_metric(metrics[f'{key}_train_flops'][p]).mean:.3g}"}
        out[f"{p}: SFT on traces (a)"] |= {
            "share of teacher's compute, base reused": f"{metrics['distill_compute_reused'][p]:.1%}",
            "share, base trained here": f"{metrics['distill_compute_trained'][p]:.1%}",
        }
    for a, b in pairs:
        fa, fb = as_metric(spent[a]).per_seed, as_metric(spent[b]).per_seed
        worst = max(max(x, y) / min(x, y) for x, y in zip(fa, fb))
        out[f"{a} / {b}"] = {
            "spent FLOPs (mean over seeds)": f"{as_metric(spent[a]).mean:.3g} / {as_metric(spent[b]).mean:.3g}",
            "worst seed, larger/smaller": f"{worst:.3f}",
        }
    return pd.DataFrame(out).T.fillna("")


def distill_rl_rewards(ax, history: dict):
    """GRPO's reward components per step on each student (first seed): accuracy (solid), format (dashed)."""
    for i, (p, rows) in enumerate(history.items()):
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["reward_accuracy"] for r in rows], color=PALETTE[i], label=f"{p}: accuracy reward")
        ax.plot(steps, [r["reward_format"] for r in rows], color=PALETTE[i], ls="--", label=f"{p}: format reward")
    ax.set(xlabel="GRPO step (stopped on spent FLOPs)", ylabel="mean reward per completion", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return ax
