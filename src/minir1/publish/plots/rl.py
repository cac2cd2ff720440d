"""Figures and tables of the RL chapter (03_rl): GRPO curves, pass@k, behaviours and the comparison tables."""

from __future__ import annotations

import numpy as np

from ...stats import as_metric, fmt
from .common import _SETTINGS, PALETTE, band


def _rl_series(runs, part, key):
    """(seeds × points) array of ``key`` from each run's ``history`` or ``evals``, and the steps."""
    steps = [row["step"] for row in runs[0][part]]
    vals = [[np.nan if row.get(key) is None else row[key] for row in r[part]] for r in runs]
    return steps, np.asarray(vals, dtype=float)


def rl_curves(axes, extra: dict):
    """Four panels from ``rl.json``'s extra: train reward, held-out pass@1, length, KL/zero-spread."""
    runs = extra["runs"]
    ax = axes[0]
    for key, label in (("reward", "total"), ("reward_accuracy_reward", "accuracy"), ("reward_format_reward", "format")):
        band(ax, *_rl_series(runs, "history", key), label=label)
    ax.set(title="training reward", xlabel="step")
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, label in (("pass_at_1", "strict"), ("pass_at_1_lenient", "lenient")):
        band(ax, *_rl_series(runs, "evals", key), label=f"held-out {label}")
        band(ax, *_rl_series(extra["ablation"], "evals", key), label=f"{label}, KL on")
    ax.set(title="held-out pass@1 (T = 1)", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes[2]
    for key, label in (("len_correct", "correct"), ("len_incorrect", "incorrect")):
        band(ax, *_rl_series(runs, "history", key), label=label)
    ax.set(title="completion length (tokens)", xlabel="step")
    ax.legend(fontsize=8)
    ax = axes[3]
    band(ax, *_rl_series(runs, "history", "kl"), label="KL to base")
    band(ax, *_rl_series(runs, "history", "frac_zero_std"), label="zero-spread groups")
    ax.set(title="KL and zero-spread fraction", xlabel="step")
    ax.legend(fontsize=8)
    return axes


def passk_curves(ax, metrics: dict):
    """pass@k against k (log scale) for base and RL, strict and lenient, with 95% interval bands."""
    for suffix, style in (("", "-"), ("_lenient", "--")):
        ks = sorted(metrics[f"base_pass_at_k{suffix}"], key=int)
        x = [int(k) for k in ks]
        for who, colour in (("base", PALETTE[7]), ("rl", PALETTE[1])):
            ms = [metrics[f"{who}_pass_at_k{suffix}"][k] for k in ks]
            label = f"{'base' if who == 'base' else 'RL'} {suffix.strip('_') or 'strict'}"
            ax.plot(x, [m["mean"] for m in ms], style, color=colour, label=label)
            ax.fill_between(x, [m["lo"] for m in ms], [m["hi"] for m in ms], color=colour, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples per problem, T = 1)", ylabel="held-out pass@k", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


REWARD_LABELS = {
    "true": "true reward",
    "random": "random reward",
    "format": "format-only reward",
    "incorrect": "reward for wrong answers",
    "dr_grpo": "true reward, Dr. GRPO loss",
    "primed_true": "true reward, primed base",
    "random_mu": "random reward, μ = 2, clip on",
    "random_mu_noclip": "random reward, μ = 2, clip off",
    "rft": "rejection-sampling fine-tuning",
    "sft_worked": "SFT on worked solutions",
}


def rl_passk_hard(ax, metrics: dict):
    """Hard task: held-out answer-level pass@k against k (log scale), base and GRPO over bases, 95% intervals."""
    ks = sorted(metrics["passk_base"], key=int)
    x = [int(k) for k in ks]
    for key, label, colour in (("passk_base", "base", PALETTE[7]), ("passk_rl", "GRPO, true reward", PALETTE[1])):
        ms = [metrics[key][k] for k in ks]
        ax.plot(x, [m["mean"] for m in ms], "-o", ms=3, color=colour, label=label)
        ax.fill_between(x, [m["lo"] for m in ms], [m["hi"] for m in ms], color=colour, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples per problem, T = 0.6, top-p 0.95)", ylabel="held-out answer-level pass@k", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def rl_reward_curves(axes, hard: dict, names=("true", "random", "format", "incorrect")):
    """Hard task: held-out answer-level pass@1 and R1-format rate over GRPO steps, one line per reward."""
    for name in names:
        runs = hard["curves"][name]
        band(axes[0], *_rl_series(runs, "evals", "pass_at_1_lenient"), label=REWARD_LABELS[name])
        band(axes[1], *_rl_series(runs, "evals", "format_rate"), label=REWARD_LABELS[name])
    axes[0].set(xlabel="GRPO step", ylabel="held-out answer-level pass@1", ylim=(0, 1))
    axes[1].set(xlabel="GRPO step", ylabel="R1-format rate", ylim=(0, 1.02))
    axes[0].legend(fontsize=7)
    return axes


# The true-reward runs on each base, with the line style and marker that tell the bases apart.
_RL_BASES = (("true", "plain base", "-", "o"), ("primed_true", "primed base", "--", "^"))


def _behaviour_series(hard: dict, behaviours):
    """Per base and behaviour: (label, style, marker, colour, steps, pass@1, share); arrays are (seeds, evals)."""
    for name, base, style, marker in _RL_BASES:
        runs = hard["curves"][name]
        _, acc = _rl_series(runs, "evals", "pass_at_1")
        for i, b in enumerate(behaviours):
            steps, vals = _rl_series(runs, "evals", f"rate_{b}")
            yield f"{b}, {base}", style, marker, i, steps, acc, vals


def rl_behaviour_curves(ax, hard: dict, behaviours=("verification", "backtracking")):
    """Hard task: share of held-out completions showing each behaviour over GRPO steps, by base."""
    for label, style, _, i, steps, _, vals in _behaviour_series(hard, behaviours):
        ax.plot(steps, vals.mean(axis=0), style, color=PALETTE[i], label=label)
    ax.set(xlabel="GRPO step", ylabel="share of completions")
    ax.set_ylim(bottom=0)  # rare behaviours: the top follows the data
    ax.legend(fontsize=7)
    return ax


def rl_behaviour_vs_accuracy(ax, hard: dict, behaviours=("verification", "backtracking")):
    """Hard task: behaviour share against held-out strict pass@1 at every evaluation of every seed, by base.

    A behaviour that carries the gains rises with accuracy; one that only rides along does not.
    """
    for label, _, marker, i, _, acc, vals in _behaviour_series(hard, behaviours):
        ax.scatter(acc.ravel(), vals.ravel(), marker=marker, s=18, color=PALETTE[i], alpha=0.7, label=label)
    ax.set(xlabel="held-out strict pass@1", ylabel="share of completions")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return ax


def _mean_where_measured(steps, vals):
    """The steps at which at least one seed has a value, and the mean over those seeds.

    A step where no seed sampled, say, a correct completion has no mean length: it is left out
    (the line joins its neighbours) instead of averaging an empty slice into a NaN gap.
    """
    measured = np.isfinite(vals).any(axis=0)
    return np.asarray(steps)[measured], np.nanmean(vals[:, measured], axis=0)


def rl_length_curves(ax, hard: dict):
    """Hard task: mean training-completion length over steps, correct vs incorrect, grpo vs dr_grpo.

    Each point is the mean over the seeds that sampled such completions at that step; a series
    with no such completions at all keeps its legend entry, marked "no data"."""
    for name, colour in (("true", PALETTE[1]), ("dr_grpo", PALETTE[2])):
        loss = "grpo" if name == "true" else "dr_grpo"
        for key, style in (("len_correct", "-"), ("len_incorrect", ":")):
            steps, mean = _mean_where_measured(*_rl_series(hard["curves"][name], "history", key))
            label = f"{loss}, {key[4:]}" + ("" if len(steps) else " (no data)")
            ax.plot(steps, mean, style, color=colour, label=label)
    ax.set(xlabel="GRPO step", ylabel="completion length (tokens)")
    ax.legend(fontsize=7)
    return ax


def rl_easy_table(metrics: dict):
    """Easy case (lab base, 3-digit addition): base and GRPO in each evaluation setting."""
    import pandas as pd

    rows = {}
    for tag, label in (("greedy", "greedy"), ("r1", "T = 0.6, top-p 0.95"), ("t1", "T = 1")):
        if f"rl_pass_at_1_{tag}" not in metrics:
            continue
        rows[label] = {
            "base, lenient": fmt(metrics[f"base_pass_at_1_lenient_{tag}"]),
            "GRPO, lenient": fmt(metrics[f"rl_pass_at_1_lenient_{tag}"]),
            "base, strict": fmt(metrics[f"base_pass_at_1_{tag}"]),
            "GRPO, strict": fmt(metrics[f"rl_pass_at_1_{tag}"]),
            "base, format": fmt(metrics[f"base_format_rate_{tag}"]),
            "GRPO, format": fmt(metrics[f"rl_format_rate_{tag}"]),
        }
    return pd.DataFrame(rows).T


def rl_hard_table(metrics: dict, setting: str = "r1"):
    """Hard task: held-out answer-level (lenient) pass@1, strict pass@1 and the R1-format rate of every
    deciding model over bases and seeds, and GRPO (true reward) minus each row, answer-level."""
    import pandas as pd

    L, S, F = (metrics[f"{k}_{setting}"] for k in ("pass_at_1_lenient", "pass_at_1", "format_rate"))
    diffs = {
        "base": metrics[f"plain_rl_vs_base_pass_at_1_lenient_{setting}"],
        "random": metrics[f"plain_true_vs_random_pass_at_1_lenient_{setting}"],
        **metrics[f"rl_vs_baseline_pass_at_1_lenient_{setting}"],
    }
    labels = {"base": "base (plain)", "primed_base": "base (primed)", **REWARD_LABELS}
    rows = {}
    for name in L:
        d = diffs.get(name)
        rows[labels.get(name, name)] = {
            "answer-level pass@1": fmt(as_metric(L[name])),
            "strict pass@1": fmt(as_metric(S[name])),
            "R1-format rate": fmt(as_metric(F[name])),
            "GRPO (true) minus this row, answer-level": fmt(as_metric(d)) if d is not None else "",
        }
    return pd.DataFrame(rows).T


def rl_table(metrics: dict):
    """Base vs GRPO vs the equal-FLOPs SFT baselines: strict pass@1 at each sampling setting,
    lenient pass@1 and paired gains at R1's setting, mean length."""
    import pandas as pd

    def get(key):
        return fmt(metrics[key]) if key in metrics else "—"

    out = {}
    for name, pre in (
        ("base", "base"),
        ("GRPO (β = 0)", "rl"),
        ("SFT on answers only (equal FLOPs)", "sft_answers"),
        ("SFT on worked solutions (equal FLOPs)", "sft_worked"),
    ):
        row = {f"strict pass@1, {label}": get(f"{pre}_pass_at_1_{key}") for key, label in _SETTINGS}
        row["lenient pass@1, R1"] = get(f"{pre}_pass_at_1_lenient_r1")
        row["format rate, R1"] = get(f"{pre}_format_rate_r1")
        row["RL − this, strict, R1 (paired)"] = (
            "—" if pre == "rl" else get("rl_vs_base_pass_at_1_r1" if pre == "base" else f"rl_vs_{pre}_pass_at_1_r1")
        )
        row["mean length, R1"] = get(f"{pre}_mean_len_r1")
        out[name] = row
    return pd.DataFrame(out).T
