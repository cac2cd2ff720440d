"""Figures and tables of the censorship chapter (05_censorship): refusal, dose, fine-tune and removal."""

from __future__ import annotations

import numpy as np

from ...stats import as_metric
from ...utils import repo_root
from .common import PALETTE, _yerr

_DETECTORS = (
    ("refusal", "keyword detector"),
    ("first_token", "first-token log-odds > 0"),
    ("thought_suppression", "P(empty think) > 0.5"),
)


def refusal_detector_bars(ax, metrics, prefix="teacher"):
    """Refusal rate by detector on held-out sensitive prompts and matched controls (95% CIs)."""
    width = 0.38
    for j, (cat, color) in enumerate((("sensitive", PALETTE[1]), ("control", PALETTE[0]))):
        ms = [as_metric(metrics[f"{prefix}_{d}_{cat}"]) for d, _ in _DETECTORS]
        x = np.arange(len(ms)) + (j - 0.5) * width
        ax.bar(
            x,
            [m.mean for m in ms],
            width,
            yerr=_yerr(ms),
            capsize=3,
            color=color,
            label=f"{cat} prompts" if cat == "sensitive" else "matched controls",
        )
    ax.set_xticks(np.arange(len(_DETECTORS)))
    ax.set_xticklabels([label for _, label in _DETECTORS], fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("share of prompts refused")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return ax


def _series(ax, series, label, color, marker="o", ls="-"):
    keys = list(series)
    ms = [as_metric(series[k]) for k in keys]
    x = np.arange(len(keys))
    ax.errorbar(x, [m.mean for m in ms], yerr=_yerr(ms), marker=marker, ls=ls, capsize=3, color=color, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(keys)
    return ax


def dose_response(ax, metrics):
    """Students' refusal on held-out sensitive prompts against the share of sensitive prompts in
    their distillation data, with over-refusal on controls and the teacher's own rate."""
    _series(ax, metrics["student_refusal_by_dose"], "student, sensitive (keyword)", PALETTE[1])
    _series(
        ax,
        metrics["student_thought_suppression_by_dose"],
        "student, sensitive (empty think)",
        PALETTE[4],
        marker="s",
        ls="--",
    )
    _series(ax, metrics["student_refusal_control_by_dose"], "student, matched controls", PALETTE[0], marker="^")
    t = metrics["teacher_refusal_sensitive"]
    ax.axhline(as_metric(t).mean, color="k", ls=":", lw=1, label="censored teacher, sensitive")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("share of sensitive prompts in the distillation data")
    ax.set_ylabel("share of prompts refused")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def finetune_curve(ax, metrics):
    """Refusal and control accuracy of the censor along a downstream fine-tune."""
    _series(ax, metrics["finetune_refusal_by_steps"], "refusal, sensitive (keyword)", PALETTE[1])
    _series(
        ax, metrics["finetune_thought_suppression_by_steps"], "empty think, sensitive", PALETTE[4], marker="s", ls="--"
    )
    _series(
        ax, metrics["finetune_nonanswer_by_steps"], "no well-formed fact, sensitive", PALETTE[7], marker="D", ls="-."
    )
    _series(ax, metrics["finetune_correct_control_by_steps"], "correct facts, controls", PALETTE[2], marker="^")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("downstream fine-tuning steps")
    ax.set_ylabel("share of prompts")
    ax.legend(fontsize=7)
    return ax


def removal_bars(ax, metrics):
    """Before and after each removal: refusal, correct facts and fabrications on held-out
    sensitive prompts, and refusal on controls."""
    rows = (
        ("assistant", "before censoring"),
        ("teacher", "censored"),
        ("ablated", "direction ablated"),
        ("sft_removed", "small SFT"),
    )
    cols = (
        ("refusal_sensitive", "refused\n(keyword)"),
        ("nonanswer_sensitive", "no well-\nformed fact"),
        ("correct_sensitive", "correct\nfact"),
        ("fabricated_sensitive", "wrong\nfact"),
        ("refusal_control", "controls\nrefused"),
    )
    width = 0.8 / len(rows)
    for j, (prefix, label) in enumerate(rows):
        ms = [metrics.get(f"{prefix}_{c}") for c, _ in cols]
        keep = [i for i, m in enumerate(ms) if m is not None]
        kept = [as_metric(ms[i]) for i in keep]
        x = np.arange(len(cols))[keep] + (j - (len(rows) - 1) / 2) * width
        ax.bar(x, [m.mean for m in kept], width, yerr=_yerr(kept), capsize=2, label=label)
    ax.set_xticks(np.arange(len(cols)))
    ax.set_xticklabels([c[1] for c in cols], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of held-out sensitive prompts")
    ax.legend(fontsize=7)
    return ax


def finetune_task_curve(ax, metrics):
    """Held-out addition accuracy along the downstream fine-tune, from the censor and (same recipe) from
    the uncensored assistant, with the target line and the checkpoint where the target was reached."""
    _series(ax, metrics["finetune_addition_acc_by_steps"], "from the censor", PALETTE[1])
    _series(
        ax,
        metrics["finetune_reference_addition_acc_by_steps"],
        "from the uncensored assistant",
        PALETTE[0],
        marker="s",
        ls="--",
    )
    ax.axhline(as_metric(metrics["finetune_target_acc"]).mean, color="k", ls=":", lw=1, label="target")
    keys = list(metrics["finetune_addition_acc_by_steps"])
    at = str(int(round(as_metric(metrics["finetune_target_step"]).hi)))
    if at in keys and metrics.get("finetune_target_reached", 0) >= 1:  # shaded only when every seed reached it
        ax.axvspan(keys.index(at) - 0.3, keys.index(at) + 0.3, color="0.85", zorder=0)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("downstream fine-tuning steps")
    ax.set_ylabel("held-out addition accuracy")
    ax.legend(fontsize=7)
    return ax


def published_refusals_table(path=None):
    """The published figures of ``data/published_refusals.csv`` (not our measurements)."""
    import pandas as pd

    df = pd.read_csv(path or repo_root() / "data" / "published_refusals.csv")
    return df[["item", "value", "unit", "model", "detector", "source", "primary"]].set_index("item")
