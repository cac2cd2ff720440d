"""Plot helpers for the book.

Every function takes an ``ax`` and data read from a results file (never notebook
globals) and returns the ``ax``.  :func:`setup_book` sets one style for all chapters.
The training and RL code never imports this module.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..stats import as_metric, fmt
from ..utils import repo_root

# Okabe & Ito's colour-blind-safe palette, in the slots the plots below use: 0 blue (the
# main series), 1 vermillion (RL / treatment), 2 bluish green, 3 reddish purple, 4 orange,
# 5 sky blue, 6 black, 7 grey (baselines and references).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#777777"]

# One style for every figure in the book (a matplotlib style dict: `plt.style.use(BOOK_STYLE)`).
BOOK_STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.autolayout": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "font.size": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "axes.prop_cycle": plt.cycler(color=PALETTE),
    "image.cmap": "cividis",
}


def setup_book() -> None:
    """One matplotlib style for the whole book (:data:`BOOK_STYLE`, Okabe–Ito colours).

    Every figure's axes carry a label with the unit (``"held-out pass@1 (strict)"``,
    ``"US dollars (log scale)"``, ``"ms per decoding step"``); :func:`unlabelled_axes`
    lists the ones that do not.  Alt text is set on the notebook cell, not here (README).
    """
    plt.style.use(BOOK_STYLE)


def unlabelled_axes(fig) -> list[str]:
    """Axes of ``fig`` with data but no x or y label, e.g. ``["axes 0: no y label"]``.

    >>> fig, ax = plt.subplots(); _ = ax.plot([0, 1]); unlabelled_axes(fig)
    ['axes 0: no x label', 'axes 0: no y label']
    >>> plt.close(fig)
    """
    from matplotlib.ticker import FixedFormatter, NullFormatter

    problems = []
    for i, ax in enumerate(fig.axes):
        if not (ax.lines or ax.patches or ax.collections or ax.images):
            continue
        for xy, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            # Categories named on the ticks (set_xticklabels) or hidden ticks need no label.
            if isinstance(axis.get_major_formatter(), (FixedFormatter, NullFormatter)):
                continue
            if axis.get_visible() and not axis.get_label_text().strip():
                problems.append(f"axes {i}: no {xy} label")
    return problems


def band(ax, x, per_seed, label=None, color=None):
    """Plot the mean over seeds of ``per_seed`` (shape: seeds × len(x)) with a min–max band."""
    arr = np.asarray(per_seed, dtype=float)
    mean = arr.mean(axis=0)
    (line,) = ax.plot(x, mean, label=label, color=color)
    if arr.shape[0] > 1:
        ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), alpha=0.2, color=line.get_color())
    return ax


def ci_bars(ax, labels, metrics, color=None):
    """Bar chart of results-file metrics ``{mean, lo, hi, per_seed, ...}`` with 95% CI error bars and seed dots."""
    means = [m["mean"] for m in metrics]
    lo = [m["mean"] - m["lo"] for m in metrics]
    hi = [m["hi"] - m["mean"] for m in metrics]
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=[lo, hi], capsize=4, color=color or PALETTE[0], alpha=0.8)
    for i, m in enumerate(metrics):
        ax.scatter([i] * len(m["per_seed"]), m["per_seed"], color="k", s=10, zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=0)
    return ax


# ---- cost chapter (01_cost) -------------------------------------------------------------
def _num(m):
    return float(m["mean"]) if isinstance(m, dict) else float(m)


_COST_ROWS = (  # (label, metric, published as is (True) or our arithmetic on published inputs)
    ("V3 final run, as published", "v3_published_cost_usd", True),
    ("V3 final run: GPU-h × V3's price (ours)", "v3_total_cost_usd", False),
    ("R1's RL stage: GPU-h × V3's price (ours)", "r1_rl_cost_usd", False),
    ("10 × R1 (V3 + RL), the article's 'even if'", "r1_cost_10x_usd", False),
    ("Llama 3.1 405B: GPU-h × V3's price (ours)", "llama405b_cost_usd", False),
    ("GPT-4, AI Index estimate", "gpt4_cost_usd", True),
    ("Gemini Ultra, AI Index estimate", "gemini_ultra_cost_usd", True),
)


def cost_bars(ax, metrics):
    """Training bills in dollars on a log axis: published figures hatched, ours solid, and
    DeepSeek's estimated hardware spend (capital, not a run) as a dashed line."""
    labels = [r[0] for r in _COST_ROWS]
    vals = [_num(metrics[r[1]]) for r in _COST_ROWS]
    y = np.arange(len(labels))[::-1]
    for yi, v, (_, _, published) in zip(y, vals, _COST_ROWS):
        ax.barh(
            yi, v, color="#dddddd" if published else PALETTE[0], edgecolor="#444444", hatch="//" if published else None
        )
        ax.text(v * 1.15, yi, f"${v / 1e6:.3g}M", va="center", fontsize=8)
    hw = _num(metrics["deepseek_hardware_usd"])
    ax.axvline(hw, color="k", ls="--", lw=1)
    ax.text(
        hw * 0.92,
        y[-1] - 0.45,
        f"DeepSeek hardware > ${hw / 1e6:.0f}M\n(SemiAnalysis; capex)",
        ha="right",
        va="top",
        fontsize=7,
    )
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(1e5, 3e9)
    ax.set_ylim(y[-1] - 1.2, y[0] + 0.6)
    ax.set_xlabel("US dollars (log scale)")
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor="#dddddd", edgecolor="#444444", hatch="//"),
        plt.Rectangle((0, 0), 1, 1, facecolor=PALETTE[0], edgecolor="#444444"),
    ]
    ax.legend(handles, ["published figure", "computed here from published GPU-hours"], loc="upper right", fontsize=7)
    return ax


def mfu_bars(ax, metrics):
    """Implied MFU of V3 and Llama 3.1 405B, with the range large published runs report (the
    verdict rule's range) and the Llama 3 paper's own range."""
    rows = [
        ("V3 vs BF16 peak", "v3_implied_mfu_bf16"),
        ("V3 vs FP8 peak", "v3_implied_mfu_fp8"),
        ("Llama 3.1 405B\nvs BF16 peak", "llama405b_implied_mfu_bf16"),
    ]
    lo, hi = _num(metrics["llama405b_mfu_reported_low"]), _num(metrics["llama405b_mfu_reported_high"])
    if "mfu_published_min" in metrics:
        pmin, pmax = _num(metrics["mfu_published_min"]), _num(metrics["mfu_published_max"])
        for v in (pmin, pmax):
            ax.axhline(v, color=PALETTE[7], ls="--", lw=1)
        ax.plot(
            [],
            [],
            color=PALETTE[7],
            ls="--",
            lw=1,
            label=f"published large runs: {pmin:.0%}–{pmax:.0%} (the rule's range)",
        )
    ax.axhspan(
        lo, hi, color=PALETTE[2], alpha=0.2, label=f"Llama 3 paper: {lo:.0%}–{hi:.0%} in pre-training (reported)"
    )
    vals = [_num(metrics[k]) for _, k in rows]
    ax.bar(range(len(rows)), vals, color=[PALETTE[0], PALETTE[4], PALETTE[1]])
    for i, v in enumerate(vals):
        ax.text(i, v + 0.01, f"{v:.1%}", ha="center", fontsize=9)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r[0] for r in rows])
    ax.set_ylim(0, 0.6)
    ax.set_ylabel("implied MFU: 6ND / (GPU-hours × peak)")
    ax.legend(loc="upper right", fontsize=8)
    return ax


# ---- lab chapter (02_lab) ---------------------------------------------------------------
def loss_curve(ax, history, label=None):
    """Training loss against steps from a trainer history ``[{step, loss}, ...]``."""
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats/token)")
    return ax


_SETTINGS = (("greedy", "greedy"), ("r1", "T = 0.6, top-p 0.95 (R1)"), ("t1", "T = 1"))


def capability_table(metrics: dict):
    """Task × sampling setting table (strings "mean [lo, hi]") of the lab's capability series."""
    import pandas as pd

    from ..stats import fmt

    rows = {}
    for task in metrics["base_pass_at_1_r1"]:
        g = {
            "pass@1 strict": metrics["base_greedy_acc"][task],
            "pass@1 lenient": metrics["base_greedy_acc_lenient"][task],
            "R1 format rate": metrics["base_greedy_format_rate"][task],
        }
        rows[(task, "greedy")] = {c: fmt(v) for c, v in g.items()}
        for key, label in _SETTINGS[1:]:
            cols = {
                "pass@1 strict": f"base_pass_at_1_{key}",
                "pass@16 strict": f"base_pass_at_16_{key}",
                "pass@16 − pass@1 (paired)": f"base_room_{key}",
                "pass@1 lenient": f"base_pass_at_1_lenient_{key}",
                "pass@16 lenient": f"base_pass_at_16_lenient_{key}",
                "R1 format rate": f"base_format_rate_{key}",
            }
            rows[(task, label)] = {c: fmt(metrics[k][task]) for c, k in cols.items() if k in metrics}
    table = pd.DataFrame(rows).T.fillna("—")
    table.index.names = ["task", "sampling"]
    return table


def pass_at_k_bars(ax, metrics: dict, setting: str = "r1"):
    """Grouped bars: pass@1 / pass@16, strict / lenient, per task, with 95% interval error bars."""
    keys = [
        (f"base_pass_at_1_{setting}", "pass@1 strict"),
        (f"base_pass_at_16_{setting}", "pass@16 strict"),
        (f"base_pass_at_1_lenient_{setting}", "pass@1 lenient"),
        (f"base_pass_at_16_lenient_{setting}", "pass@16 lenient"),
    ]
    keys = [(k, label) for k, label in keys if k in metrics]
    tasks = list(metrics[f"base_pass_at_1_{setting}"])
    width = 0.8 / len(keys)
    for j, (k, label) in enumerate(keys):
        ms = [as_metric(metrics[k][t]) for t in tasks]
        x = np.arange(len(tasks)) + (j - (len(keys) - 1) / 2) * width
        ax.bar(x, [m.mean for m in ms], width, yerr=_yerr(ms), capsize=3, label=label)
    ax.set_xticks(np.arange(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=8, ncol=2)
    return ax


_BENCH_ROWS = (
    ("sampler_speedup_vs_hf", "our sampler vs HF generate (tokens/s ratio)"),
    ("sampler_tokens_per_s_ours", "our sampler, tokens/s"),
    ("sampler_tokens_per_s_hf", "HF generate, tokens/s"),
    ("grpo_speedup_vs_trl", "our GRPO vs TRL GRPOTrainer (steps/s ratio, same work)"),
    ("grpo_steps_per_s_ours", "our GRPO, steps/s"),
    ("grpo_steps_per_s_trl", "TRL GRPOTrainer, steps/s"),
    ("machine_matmul_flops_per_s", "measured fp32 matmul peak, FLOP/s"),
)


def bench_table(path=None):
    """The benchmarks of ``book/results/bench.json`` (``make bench``) as a table with readable
    labels: throughput ratios against Hugging Face and TRL, and the roofline (achieved FLOP/s as a
    share of the measured matmul peak) for training and decoding per model size."""
    import json

    import pandas as pd

    p = path or repo_root() / "book" / "results" / "bench.json"
    try:
        metrics = json.loads(open(p).read())["metrics"]
    except FileNotFoundError:
        return pd.DataFrame({"value": ["no benchmark yet: run `make bench`"]}, index=["benchmark"])
    rows = {label: fmt(metrics[k]) for k, label in _BENCH_ROWS if k in metrics}
    if "sampler_greedy_matches_hf" in metrics:
        rows["greedy tokens equal HF's"] = "yes" if metrics["sampler_greedy_matches_hf"] == 1 else "no"
    for preset in metrics.get("train_mfu", {}):
        rows[f"roofline, {preset}: training (share of peak)"] = fmt(metrics["train_mfu"][preset])
        if preset in metrics.get("decode_mfu", {}):
            rows[f"roofline, {preset}: decoding (share of peak)"] = fmt(metrics["decode_mfu"][preset])
    return pd.DataFrame({"mean [95% interval over repeats]": rows})


# ---- RL chapter (03_rl) -----------------------------------------------------------------
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
    """Hard task: held-out strict pass@k against k (log scale) for the base and GRPO, 95% bands."""
    ks = sorted(metrics["passk_base"], key=int)
    x = [int(k) for k in ks]
    for key, label, colour in (("passk_base", "base", PALETTE[7]), ("passk_rl", "GRPO, true reward", PALETTE[1])):
        ms = [metrics[key][k] for k in ks]
        ax.plot(x, [m["mean"] for m in ms], "-o", ms=3, color=colour, label=label)
        ax.fill_between(x, [m["lo"] for m in ms], [m["hi"] for m in ms], color=colour, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples per problem, T = 0.6, top-p 0.95)", ylabel="held-out strict pass@k", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def rl_reward_curves(axes, hard: dict, names=("true", "random", "format", "incorrect")):
    """Hard task: held-out strict pass@1 and strict-format rate over GRPO steps, one line per reward."""
    for name in names:
        runs = hard["curves"][name]
        band(axes[0], *_rl_series(runs, "evals", "pass_at_1"), label=REWARD_LABELS[name])
        band(axes[1], *_rl_series(runs, "evals", "format_rate"), label=REWARD_LABELS[name])
    axes[0].set(xlabel="GRPO step", ylabel="held-out strict pass@1", ylim=(0, 1))
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


def rl_length_curves(ax, hard: dict):
    """Hard task: mean training-completion length over steps, correct vs incorrect, grpo vs dr_grpo."""
    for name, colour in (("true", PALETTE[1]), ("dr_grpo", PALETTE[2])):
        loss = "grpo" if name == "true" else "dr_grpo"
        for key, style in (("len_correct", "-"), ("len_incorrect", ":")):
            steps, vals = _rl_series(hard["curves"][name], "history", key)
            ax.plot(steps, np.nanmean(vals, axis=0), style, color=colour, label=f"{loss}, {key[4:]}")
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
            "base, strict": fmt(metrics[f"base_pass_at_1_{tag}"]),
            "GRPO, strict": fmt(metrics[f"rl_pass_at_1_{tag}"]),
            "base, lenient": fmt(metrics[f"base_pass_at_1_lenient_{tag}"]),
            "GRPO, lenient": fmt(metrics[f"rl_pass_at_1_lenient_{tag}"]),
        }
    return pd.DataFrame(rows).T


def rl_hard_table(metrics: dict):
    """Hard task: held-out strict pass@1 at R1's sampling for every model, and GRPO (true reward) minus it."""
    import pandas as pd

    m = {k: as_metric(v) if isinstance(v, dict) and "mean" in v else v for k, v in metrics.items()}
    rows = {
        "base (plain)": (m["plain_base_pass_at_1_r1"], m["plain_rl_vs_base_pass_at_1_r1"]),
        "base (primed)": (m["primed_base_pass_at_1_r1"], None),
    }
    diffs = {"random": m["plain_true_vs_random_pass_at_1_r1"], **metrics["rl_vs_baseline_pass_at_1_r1"]}
    for name, rate in metrics["pass_at_1_r1"].items():
        d = diffs.get(name)
        rows[REWARD_LABELS[name]] = (as_metric(rate), as_metric(d) if d is not None else None)
    return pd.DataFrame(
        {
            "strict pass@1, T = 0.6": {k: fmt(v[0]) for k, v in rows.items()},
            "GRPO (true reward) minus this row": {k: fmt(v[1]) if v[1] is not None else "" for k, v in rows.items()},
        }
    )


def rl_table(metrics: dict):
    """Base vs GRPO vs the equal-FLOPs SFT baselines: strict pass@1 at each sampling setting,
    lenient pass@1 and paired gains at R1's setting, mean length."""
    import pandas as pd

    from ..stats import fmt

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
        row["RL − this, strict, R1 (paired)"] = (
            "—" if pre == "rl" else get("rl_vs_base_pass_at_1_r1" if pre == "base" else f"rl_vs_{pre}_pass_at_1_r1")
        )
        row["mean length, R1"] = get(f"{pre}_mean_len_r1")
        out[name] = row
    return pd.DataFrame(out).T


# ---- distillation chapter (04_distillation) ---------------------------------------------
_DISTILL_CONDS = (
    ("student_base", "student base", "o"),
    ("answers_only", "SFT on answers only (c)", "v"),
    ("rl", "GRPO at equal FLOPs (b)", "s"),
    ("logit_kd", "logit KD (d)", "D"),
    ("distill", "SFT on teacher traces (a)", "*"),
)
_DISTILL_REFS = (
    ("teacher_pass_at_1", "teacher (base + GRPO)", "-"),
    ("big_rl_pass_at_1", "teacher's base + GRPO at a student's distillation FLOPs", "--"),
    ("big_base_pass_at_1", "teacher's base", ":"),
)


def _yerr(ms, scale: float = 1.0) -> list[list[float]]:
    """Matplotlib's ``yerr`` (below, above) for metrics (Metric or results-file dicts), times ``scale``."""
    ms = [as_metric(m) for m in ms]
    return [[scale * (m.mean - m.lo) for m in ms], [scale * (m.hi - m.mean) for m in ms]]


def distill_bars(ax, metrics: dict):
    """Held-out strict pass@1 per student size and condition (95% bootstrap CI over problems and
    seeds, seed dots), with the teacher and the teacher-sized comparators as horizontal lines."""
    sizes = list(metrics["student_params"])
    width = 0.8 / len(_DISTILL_CONDS)
    for j, (key, label, _) in enumerate(_DISTILL_CONDS):
        ms = [as_metric(metrics[f"{key}_pass_at_1"][p]) for p in sizes]
        x = np.arange(len(sizes)) + (j - (len(_DISTILL_CONDS) - 1) / 2) * width
        ax.bar(x, [m.mean for m in ms], width, yerr=_yerr(ms), capsize=2, label=label, color=PALETTE[j])
        for xi, m in zip(x, ms):
            ax.scatter([xi] * len(m.per_seed), m.per_seed, color="k", s=6, zorder=3)
    for key, label, style in _DISTILL_REFS:
        if key in metrics:
            ax.axhline(as_metric(metrics[key]).mean, ls=style, color=PALETTE[7], lw=1, label=label)
    ax.set_xticks(np.arange(len(sizes)))
    ax.set_xticklabels([f"{p} ({metrics['student_params'][p] / 1e6:.2f}M)" for p in sizes])
    ax.set(ylabel="held-out pass@1 (strict)", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def distill_frontier(ax, metrics: dict):
    """Accuracy against inference cost: strict pass@1 vs FLOPs per answer, every model."""
    for pre, color in (("teacher", "k"), ("big_base", PALETTE[7])):
        m, c = as_metric(metrics[f"{pre}_pass_at_1"]), as_metric(metrics[f"{pre}_flops_per_answer"]).mean
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
            m, c = as_metric(metrics[f"{key}_pass_at_1"][p]), as_metric(metrics[f"{key}_flops_per_answer"][p]).mean
            ax.errorbar(c, m.mean, yerr=_yerr([m]), fmt=marker, color=PALETTE[i], capsize=2, label=f"{p}: {label}")
    ax.set_xscale("log")
    ax.set(
        xlabel="inference FLOPs per answer (2·N per generated token)",
        ylabel="held-out pass@1 (strict)",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def distill_curve(ax, metrics: dict, student: str):
    """Student pass@1 against the number of teacher traces it was fine-tuned on (same steps)."""
    fr = sorted(metrics["curve_n_traces"], key=float)
    x = [metrics["curve_n_traces"][f] for f in fr]
    ms = [as_metric(metrics["curve_pass_at_1"][f]) for f in fr]
    ax.plot(x, [m.mean for m in ms], "o-", color=PALETTE[0], label=f"{student}, SFT on traces")
    ax.fill_between(x, [m.lo for m in ms], [m.hi for m in ms], color=PALETTE[0], alpha=0.15)
    for xi, m in zip(x, ms):
        ax.scatter([xi] * len(m.per_seed), m.per_seed, color="k", s=6, zorder=3)
    ax.axhline(as_metric(metrics["teacher_pass_at_1"]).mean, color="k", lw=1, label="teacher")
    ax.axhline(
        as_metric(metrics["student_base_pass_at_1"][student]).mean, color=PALETTE[7], ls=":", label=f"{student} base"
    )
    ax.set_xscale("log")
    ax.set(xlabel="teacher traces in the fine-tuning set", ylabel="held-out pass@1 (strict)", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return ax


def distill_validation(ax, metrics: dict):
    """Validation strict pass@1 (train-split problems never sent to the teacher) against SFT steps."""
    for i, p in enumerate(metrics["student_params"]):
        curve = metrics[f"val_pass_at_1_{p}"]
        steps = sorted(curve, key=int)
        ax.plot([int(s) for s in steps], [curve[s] for s in steps], "o-", color=PALETTE[i], label=p)
        ax.axvline(metrics["sft_steps"][p], color=PALETTE[i], ls=":", lw=1)
    ax.set(xlabel="SFT steps (dotted: chosen by the rule)", ylabel="validation pass@1 (strict)", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return ax


def distill_table(metrics: dict):
    """Every model: parameters, pass@1 strict/lenient, pass@k, tokens and FLOPs per answer."""
    import pandas as pd

    from minir1.stats import fmt

    def row(get, params):
        return {
            "params (M)": f"{params / 1e6:.2f}",
            "pass@1 strict": fmt(get("pass_at_1")),
            "pass@1 lenient": fmt(get("pass_at_1_lenient")),
            "pass@k": fmt(get("pass_at_k")),
            "tokens / answer": f"{as_metric(get('tokens_per_answer')).mean:.1f}",
            "MFLOPs / answer": f"{as_metric(get('flops_per_answer')).mean / 1e6:.3g}",
        }

    out = {
        "teacher": row(lambda k: metrics[f"teacher_{k}"], metrics["teacher_params"]),
        "teacher's base": row(lambda k: metrics[f"big_base_{k}"], metrics["big_base_params"]),
    }
    for p, n in metrics["student_params"].items():
        for key, label, _ in _DISTILL_CONDS:
            out[f"{p}: {label}"] = row(lambda k: metrics[f"{key}_{k}"][p], n)
    return pd.DataFrame(out).T


def distill_compute_table(metrics: dict):
    """Training compute of each student condition, and distillation's share of the teacher's compute
    with the student's base reused and with it trained here."""
    import pandas as pd

    out = {}
    for p in metrics["student_params"]:
        for key, label in (("distill", "SFT on traces (a)"), ("logit_kd", "logit KD (d)"), ("rl", "GRPO (b)")):
            out[f"{p}: {label}"] = {"student training FLOPs": f"{as_metric(metrics[f'{key}_train_flops'][p]).mean:.3g}"}
        out[f"{p}: SFT on traces (a)"] |= {
            "share of teacher's compute, base reused": f"{metrics['distill_compute_reused'][p]:.1%}",
            "share, base trained here": f"{metrics['distill_compute_trained'][p]:.1%}",
        }
    return pd.DataFrame(out).T.fillna("")


# ---- censorship chapter (05_censorship) -------------------------------------------------
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

    from ..utils import repo_root

    df = pd.read_csv(path or repo_root() / "data" / "published_refusals.csv")
    return df[["item", "value", "unit", "model", "detector", "source", "primary"]].set_index("item")


# ---- engineering chapter (06_engineering) -----------------------------------------------
_ENG_COLOURS = {
    "moe": PALETTE[1],
    "dense_active": PALETTE[0],
    "dense_total": PALETTE[4],
    "mha": PALETTE[2],
    "gqa": PALETTE[3],
    "mla": PALETTE[0],
}
_ENG_ATTENTION = {"mla": "MLA", "mha": "MHA", "gqa": "GQA", "moe": "MoE (MLA)"}


def _ci_text(m, fmt=".2f"):
    m = as_metric(m)
    return f"{m.mean:{fmt}} [{m.lo:{fmt}}, {m.hi:{fmt}}]"


def eng_loss_curves(ax, res, axis="flops"):
    """Smoothed training loss of every model against training FLOPs (6·N_active·D) or
    training seconds: mean over seeds with a min–max band, log x axis."""
    if axis not in ("flops", "wall"):
        raise ValueError(f"axis must be 'flops' or 'wall'; got {axis!r}")
    curves, models = res["extra"]["curves"], res["extra"]["models"]
    for name in models:
        per = [curves[s][name] for s in curves]
        n = min(len(c["loss"]) for c in per)
        x = np.mean([c[axis][:n] for c in per], axis=0)
        band(ax, x, [c["loss"][:n] for c in per], label=models[name]["label"], color=_ENG_COLOURS[name])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels of a short log axis overlap
    ax.set_xlabel("training FLOPs, 6·N_active·D (log)" if axis == "flops" else "training seconds (log)")
    ax.set_ylabel("training loss (nats/token)")
    key = "moe_compute_multiplier" if axis == "flops" else "moe_wall_multiplier"
    ax.set_title(
        f"MoE vs dense-same-active: {'compute' if axis == 'flops' else 'wall-time'} multiplier "
        f"{_ci_text(res['metrics'][key])}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    return ax


def eng_expert_load(ax, res):
    """Share of tokens per routed expert in each MoE layer on held-out text, experts sorted
    from busiest to idlest (mean over seeds), against an even split."""
    loads = np.asarray([res["extra"]["expert_load"][s] for s in res["extra"]["expert_load"]])  # (S, L, E)
    ranked = -np.sort(-loads, axis=-1)  # (S, L, E)
    n_exp = loads.shape[-1]
    for layer in range(loads.shape[1]):
        band(ax, np.arange(1, n_exp + 1), ranked[:, layer], label=f"MoE layer {layer + 1}")
    ax.axhline(1 / n_exp, color="k", ls="--", lw=1, label="even load (1/E)")
    ax.set_xlabel("expert rank (busiest first)")
    ax.set_ylabel("share of routed tokens")
    ax.legend(fontsize=8)
    return ax


def eng_kv_bars(ax, metrics):
    """KV-cache bytes per token in bf16: measured on the cache tensors (bars) and the formula
    (dots), plus what transformers expands MLA's latent into at each decoding step."""
    rows = [
        ("MHA", "mha_kv_bytes_per_token", "mha_kv_bytes_formula"),
        ("GQA", "gqa_kv_bytes_per_token", "gqa_kv_bytes_formula"),
        ("MLA latent\n(cached)", "mla_kv_bytes_per_token", "mla_kv_bytes_formula"),
        ("MLA expanded\n(per step, HF)", "mla_kv_expanded_bytes_per_token", None),
    ]
    vals = [_num(metrics[m]) for _, m, _ in rows]
    ax.bar(range(len(rows)), vals, color=[PALETTE[2], PALETTE[3], PALETTE[0], "#bbbbbb"], edgecolor="#444444")
    for i, (_, _, f) in enumerate(rows):
        if f is not None:
            ax.scatter(
                [i], [_num(metrics[f])], color="k", zorder=3, s=18, label="formula (minir1.cost)" if i == 0 else None
            )
        ax.text(i, vals[i] * 1.02, f"{vals[i]:.0f} B", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r[0] for r in rows], fontsize=8)
    ax.set_ylabel("bytes per token (bf16, all layers)")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def eng_decode(ax_time, ax_mem, metrics):
    """Left: milliseconds per decoding step (all rows of the batch) against context length;
    right: cache bytes held and (MLA) bytes expanded per step, against context length."""
    for att, per_ctx in metrics["decode_ms_per_step"].items():
        ctx = [int(c) for c in per_ctx]
        ms = [as_metric(per_ctx[c]) for c in per_ctx]
        ax_time.errorbar(
            ctx,
            [m.mean for m in ms],
            yerr=_yerr(ms),
            marker="o",
            capsize=3,
            label=_ENG_ATTENTION.get(att, att),
            color=_ENG_COLOURS.get(att),
        )
    for att, per_ctx in metrics["decode_cache_bytes"].items():
        if att == "moe":
            continue
        ctx = [int(c) for c in per_ctx]
        ax_mem.plot(
            ctx,
            [per_ctx[c] / 1e6 for c in per_ctx],
            marker="o",
            label=f"{_ENG_ATTENTION[att]} cache",
            color=_ENG_COLOURS[att],
        )
    mla = metrics["decode_expanded_bytes"].get("mla", {})
    ax_mem.plot(
        [int(c) for c in mla],
        [mla[c] / 1e6 for c in mla],
        marker="s",
        ls="--",
        color="#888888",
        label="MLA expanded per step (HF)",
    )
    ax_time.set_xlabel("context (tokens)")
    ax_time.set_ylabel("ms per decoding step")
    ax_mem.set_xlabel("context (tokens)")
    ax_mem.set_ylabel("MB (fp32, whole batch)")
    ax_time.legend(fontsize=7)
    ax_mem.legend(fontsize=7)
    return ax_time, ax_mem


def eng_model_table(res):
    """The chapter's models: attention, MLP, parameters, held-out loss and training speed."""
    import pandas as pd

    m, rows = res["metrics"], {}
    for name, d in res["extra"]["models"].items():
        rows[d["label"]] = {
            "attention": d["attention"],
            "MLP": d["mlp"],
            "params total": f"{d['params_total']:,}",
            "params active": f"{d['params_active']:,}",
            "steps": res["extra"]["steps"][name],
            "held-out loss (packed)": _ci_text(m["heldout_loss"][name], ".3f"),
            "held-out loss (per document)": _ci_text(m["heldout_loss_per_doc"][name], ".3f"),
            "training tokens/s": f"{as_metric(m['train_tokens_per_s'][name]).mean:,.0f}",
        }
    return pd.DataFrame(rows).T


_ENG_SUMMARY = (
    ("compute multiplier vs dense, same active (MLA)", "moe_compute_multiplier"),
    ("compute multiplier vs dense Llama (MHA)", "moe_compute_multiplier_vs_mha"),
    ("wall-time multiplier vs dense, same active", "moe_wall_multiplier"),
    ("time per training token, MoE / dense same active", "moe_time_per_token_ratio"),
    ("loss at equal FLOPs, MoE − dense same active", "moe_minus_dense_active_loss_equal_flops"),
    ("loss at equal steps, MoE − dense same total", "moe_minus_dense_total_loss_equal_steps"),
    ("sequence-wise balance loss (α-scaled)", "moe_aux_loss"),
    ("expert load, coefficient of variation", "moe_expert_load_cv"),
    ("expert load, busiest / mean", "moe_expert_load_max_over_mean"),
    ("held-out loss, MLA − MHA", "mla_minus_mha_heldout_loss"),
    ("held-out loss, GQA − MHA", "gqa_minus_mha_heldout_loss"),
)


def eng_summary_table(metrics):
    """The MoE and attention comparisons as "mean [95% CI over seeds]" strings."""
    import pandas as pd

    rows = {label: _ci_text(metrics[k], ".3f") for label, k in _ENG_SUMMARY if k in metrics}
    rows["seeds where dense never reached the MoE's loss (lower bounds)"] = (
        f"{int(_num(metrics['moe_compute_multiplier_lower_bounds']))}"
    )
    rows["tokens per active parameter (MoE)"] = f"{_num(metrics['moe_tokens_per_active_param']):.1f}"
    return pd.Series(rows, name="mean [95% interval over seeds]").to_frame()


def eng_kv_table(metrics):
    """KV bytes per token (bf16): ours measured and by formula, and V3-scale figures."""
    import pandas as pd

    mha = _num(metrics["mha_kv_bytes_per_token"])
    rows = {}
    for att in ("mha", "gqa", "mla"):
        v = _num(metrics[f"{att}_kv_bytes_per_token"])
        rows[f"ours, {att.upper()}"] = {
            "measured on the cache": f"{v:,.0f}",
            "formula": f"{_num(metrics[f'{att}_kv_bytes_formula']):,.0f}",
            "vs MHA": f"{v / mha:.2f}×",
        }
    rows["ours, MLA expanded per step (HF)"] = {
        "measured on the cache": f"{_num(metrics['mla_kv_expanded_bytes_per_token']):,.0f}",
        "formula": "",
        "vs MHA": f"{_num(metrics['mla_kv_expanded_bytes_per_token']) / mha:.2f}×",
    }
    rows["DeepSeek-V3, MLA latent"] = {
        "measured on the cache": "",
        "formula": f"{_num(metrics['v3_kv_bytes_per_token']):,.0f}",
        "vs MHA": "",
    }
    rows["DeepSeek-V3, expanded per layer (HF)"] = {
        "measured on the cache": "",
        "formula": f"{_num(metrics['v3_kv_expanded_bytes_per_token_per_layer']):,.0f}",
        "vs MHA": "",
    }
    rows["Llama 3.1 405B, GQA"] = {
        "measured on the cache": "",
        "formula": f"{_num(metrics['llama405b_kv_bytes_per_token']):,.0f}",
        "vs MHA": "",
    }
    return pd.DataFrame(rows).T


# ----------------------------------------------------------------------------- thesis chapter
def thesis_intervals(ax, metrics: dict, models=("r1", "o1-1217")):
    """Each benchmark's published scores of R1 and o1 with the sampling interval its size sets."""
    score = metrics["published_score"]
    names = list(score)
    width = 0.35
    for j, (model, color) in enumerate(zip(models, ("C0", "C3"))):
        ms = [as_metric(score[b][model]) for b in names]
        x = [i + (j - 0.5) * width for i in range(len(names))]
        y = [100 * m.mean for m in ms]
        ax.errorbar(x, y, yerr=_yerr(ms, scale=100), fmt="o", color=color, capsize=4, label=model)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("published score (%) with 95% sampling interval")
    ax.legend()
    return ax


def thesis_simulation(ax, metrics: dict):
    """P(truly worse model scores >= the better one) against benchmark size, per true gap."""
    sweep = metrics["sim_match_or_exceed"]
    for i, gap in enumerate(sweep["independent"]):
        for pairing, ls in (("independent", "-"), ("nested", "--")):
            series = sweep[pairing][gap]
            ns = sorted(series, key=int)
            ax.plot(
                [int(n) for n in ns],
                [100 * as_metric(series[n]).mean for n in ns],
                ls,
                marker="o",
                color=f"C{i}",
                label=f"gap {gap}" if pairing == "independent" else None,
            )
    ours = metrics["sim_ours"]["independent"]
    ns = sorted(ours, key=int)
    ax.plot(
        [int(n) for n in ns],
        [100 * as_metric(ours[n]).mean for n in ns],
        "k*",
        markersize=12,
        label=f"our two models ({100 * metrics['sim_ours_gap']:.1f} pp)",
    )
    ax.set_xscale("log")
    ax.set_xticks([int(n) for n in ns], [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("problems in the benchmark (log scale)")
    ax.set_ylabel("worse model matches or exceeds (%)")
    ax.legend(fontsize=8, title="solid: independent; dashed: nested", title_fontsize=8)
    return ax


def thesis_match_table(metrics: dict):
    """R1 vs o1-1217 per benchmark: both intervals, the difference under both pairings."""
    import pandas as pd

    from ..benchmarks import compare

    rows = {}
    for b, s in metrics["published_score"].items():
        d, dn = as_metric(metrics["r1_minus_rival"][b]), as_metric(metrics["r1_minus_rival_nested"][b])
        rows[b] = {
            "problems": as_metric(s["r1"]).n,
            "R1": str(as_metric(s["r1"])),
            "o1-1217": str(as_metric(s["o1-1217"])),
            "R1 − o1 (independent)": str(d),
            "call": compare(d),
            "R1 − o1 (nested)": str(dn),
            "call (nested)": compare(dn),
        }
    return pd.DataFrame(rows).T


def thesis_chips_table(metrics: dict):
    """V3's expert traffic per token and MoE layer, against the compute it overlaps with."""
    import pandas as pd

    rows = {}
    for chip in ("h800", "h100"):
        rows[chip.upper()] = {
            "NVLink time (µs)": f"{metrics['ep_t_nvlink_us'][chip]:.2f}",
            "InfiniBand time (µs)": f"{metrics['ep_t_ib_us']:.2f}",
            "layer compute (µs)": f"{metrics['ep_t_layer_us']:.2f}",
            "experts compute (µs)": f"{metrics['ep_t_experts_us']:.2f}",
            "comm / layer compute": f"{metrics['ep_comm_over_layer'][chip]:.2f}",
            "comm / expert compute": f"{metrics['ep_comm_over_experts'][chip]:.2f}",
            "step time without overlap": f"×{metrics['ep_slowdown_without_overlap'][chip]:.2f}",
        }
    return pd.DataFrame(rows).T


def thesis_cost_table(metrics: dict):
    """FLOPs per answer and per solved problem of our own models (distillation chapter)."""
    import pandas as pd

    rows = {}
    for m, acc in metrics["mini_pass_at_1"].items():
        rows[m] = {
            "tokens per answer": f"{metrics['mini_tokens_per_answer'][m]:.1f}",
            "pass@1": f"{100 * acc:.1f}%",
            "FLOPs per answer": f"{metrics['mini_flops_per_answer'][m]:.3g}",
            "FLOPs per solved problem": (
                f"{metrics['mini_flops_per_solved'][m]:.3g}" if m in metrics["mini_flops_per_solved"] else "—"
            ),
        }
    return pd.DataFrame(rows).T


def thesis_rows_table(rows: list, columns: list, index: str):
    """A table of data-file rows (replications, the claims we cannot test)."""
    import pandas as pd

    return pd.DataFrame(rows).set_index(index)[columns]
