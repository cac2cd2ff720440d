"""Plot helpers for the book.

Every function takes an ``ax`` and data read from a results file (never notebook
globals) and returns the ``ax``.  :func:`setup_book` sets one style for all chapters.
The training and RL code never imports this module.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def setup_book() -> None:
    """One matplotlib style for the whole book."""
    plt.rcParams.update({
        "figure.figsize": (6.4, 3.8), "figure.dpi": 110, "savefig.dpi": 110,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.3, "font.size": 10, "axes.prop_cycle": plt.cycler(color=PALETTE),
    })


def band(ax, x, per_seed, label=None, color=None):
    """Plot the mean over seeds of ``per_seed`` (shape: seeds × len(x)) with a min–max band."""
    arr = np.asarray(per_seed, dtype=float)
    mean = arr.mean(axis=0)
    line, = ax.plot(x, mean, label=label, color=color)
    if arr.shape[0] > 1:
        ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), alpha=0.2, color=line.get_color())
    return ax


def ci_bars(ax, labels, metrics, color=None):
    """Bar chart of metrics ``{mean, ci95, per_seed}`` with 95% CI error bars and seed dots."""
    means = [m["mean"] for m in metrics]
    lo = [m["mean"] - m["ci95"][0] for m in metrics]
    hi = [m["ci95"][1] - m["mean"] for m in metrics]
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
    ("V3 final run: 2.788M GPU-h × $2 (ours)", "v3_total_cost_usd", False),
    ("R1's RL stage: 147K GPU-h × $2 (ours)", "r1_rl_cost_usd", False),
    ("10 × R1 (V3 + RL), the article's 'even if'", "r1_cost_10x_usd", False),
    ("Llama 3.1 405B: 30.84M GPU-h × $2 (ours)", "llama405b_cost_usd", False),
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
        ax.barh(yi, v, color="#dddddd" if published else PALETTE[0], edgecolor="#444444",
                hatch="//" if published else None)
        ax.text(v * 1.15, yi, f"${v / 1e6:.4g}M", va="center", fontsize=8)
    hw = _num(metrics["deepseek_hardware_usd"])
    ax.axvline(hw, color="k", ls="--", lw=1)
    ax.text(hw * 0.92, y[-1] - 0.45, f"DeepSeek hardware > ${hw / 1e6:.0f}M\n(SemiAnalysis; capex)",
            ha="right", va="top", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(1e5, 3e9)
    ax.set_ylim(y[-1] - 1.2, y[0] + 0.6)
    ax.set_xlabel("US dollars (log scale)")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="#dddddd", edgecolor="#444444", hatch="//"),
               plt.Rectangle((0, 0), 1, 1, facecolor=PALETTE[0], edgecolor="#444444")]
    ax.legend(handles, ["published figure", "computed here from published GPU-hours"],
              loc="upper right", fontsize=7)
    return ax


def mfu_bars(ax, metrics):
    """Implied MFU of V3 and Llama 3.1 405B, with the MFU range the Llama 3 paper reports."""
    rows = [("V3 vs BF16 peak", "v3_implied_mfu_bf16"), ("V3 vs FP8 peak", "v3_implied_mfu_fp8"),
            ("Llama 3.1 405B\nvs BF16 peak", "llama405b_implied_mfu_bf16")]
    lo, hi = _num(metrics["llama405b_mfu_reported_low"]), _num(metrics["llama405b_mfu_reported_high"])
    ax.axhspan(lo, hi, color=PALETTE[2], alpha=0.2,
               label=f"Llama 3 paper: {lo:.0%}–{hi:.0%} in pre-training (reported)")
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


def _fmt(m) -> str:
    if isinstance(m, dict) and "mean" in m:
        lo, hi = m["ci95"]
        return f"{m['mean']:.1%} [{lo:.1%}, {hi:.1%}]"
    return f"{m:.3g}"


def capability_table(metrics: dict):
    """A task × metric table (strings "mean [lo, hi]") of the lab's capability series."""
    import pandas as pd

    cols = {"pass@1 strict": "base_pass_at_1", "pass@16 strict": "base_pass_at_16",
            "pass@1 lenient": "base_pass_at_1_lenient", "pass@16 lenient": "base_pass_at_16_lenient",
            "greedy strict": "base_greedy_acc", "greedy lenient": "base_greedy_acc_lenient",
            "R1 format rate": "base_format_rate"}
    tasks = list(metrics["base_pass_at_1"])
    rows = {t: {c: _fmt(metrics[k][t]) for c, k in cols.items() if k in metrics} for t in tasks}
    table = pd.DataFrame(rows).T
    table.index.name = "task"
    return table


def pass_at_k_bars(ax, metrics: dict):
    """Grouped bars: pass@1 / pass@16, strict / lenient, per task, with CI error bars."""
    keys = [("base_pass_at_1", "pass@1 strict"), ("base_pass_at_16", "pass@16 strict"),
            ("base_pass_at_1_lenient", "pass@1 lenient"), ("base_pass_at_16_lenient", "pass@16 lenient")]
    tasks = list(metrics["base_pass_at_1"])
    width = 0.8 / len(keys)
    for j, (k, label) in enumerate(keys):
        ms = [metrics[k][t] for t in tasks]
        x = np.arange(len(tasks)) + (j - (len(keys) - 1) / 2) * width
        err = [[m["mean"] - m["ci95"][0] for m in ms], [m["ci95"][1] - m["mean"] for m in ms]]
        ax.bar(x, [m["mean"] for m in ms], width, yerr=err, capsize=3, label=label)
    ax.set_xticks(np.arange(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=8, ncol=2)
    return ax


def bench_table(path=None):
    """The benchmark figures of ``book/results/bench.json`` as a table (or a note if absent)."""
    import json

    import pandas as pd

    from .results import results_dir

    p = path or results_dir("cpu") / "bench.json"
    try:
        metrics = json.loads(open(p).read())["metrics"]
    except FileNotFoundError:
        return pd.DataFrame({"note": ["no benchmark yet: run `make bench`"]})
    rows = {k: (_fmt(v) if "mfu" in k else (f"{v['mean']:.4g} [{v['ci95'][0]:.4g}, {v['ci95'][1]:.4g}]"
                                              if isinstance(v, dict) else f"{v:.4g}")) for k, v in metrics.items()}
    return pd.DataFrame({"value (mean [95% CI] over repeats)": rows})


# ---- RL chapter (03_rl) -----------------------------------------------------------------
def _series(runs, part, key):
    """(seeds × points) array of ``key`` from each run's ``history`` or ``evals``, and the steps."""
    steps = [row["step"] for row in runs[0][part]]
    vals = [[np.nan if row.get(key) is None else row[key] for row in r[part]] for r in runs]
    return steps, np.asarray(vals, dtype=float)


def rl_curves(axes, extra: dict):
    """Four panels from ``rl.json``'s extra: train reward, held-out pass@1, length, KL/zero-spread."""
    runs = extra["runs"]
    ax = axes[0]
    for key, label in (("reward", "total"), ("reward_accuracy_reward", "accuracy"), ("reward_format_reward", "format")):
        band(ax, *_series(runs, "history", key), label=label)
    ax.set(title="training reward", xlabel="step")
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, label in (("pass_at_1", "strict"), ("pass_at_1_lenient", "lenient")):
        band(ax, *_series(runs, "evals", key), label=f"held-out {label}")
        band(ax, *_series(extra["ablation"], "evals", key), label=f"{label}, KL on")
    ax.set(title="held-out pass@1 (T = 1)", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes[2]
    for key, label in (("len_correct", "correct"), ("len_incorrect", "incorrect")):
        band(ax, *_series(runs, "history", key), label=label)
    ax.set(title="completion length (tokens)", xlabel="step")
    ax.legend(fontsize=8)
    ax = axes[3]
    band(ax, *_series(runs, "history", "kl"), label="KL to base")
    band(ax, *_series(runs, "history", "frac_zero_std"), label="zero-spread groups")
    ax.set(title="KL and zero-spread fraction", xlabel="step")
    ax.legend(fontsize=8)
    return axes


def passk_curves(ax, metrics: dict):
    """pass@k against k (log scale) for base and RL, strict and lenient, RL with CI bands."""
    for suffix, style in (("", "-"), ("_lenient", "--")):
        ks = sorted(metrics[f"base_pass_at_k{suffix}"], key=int)
        x = [int(k) for k in ks]
        ax.plot(x, [metrics[f"base_pass_at_k{suffix}"][k] for k in ks], style, color=PALETTE[7],
                label=f"base {suffix.strip('_') or 'strict'}")
        rl = [metrics[f"rl_pass_at_k{suffix}"][k] for k in ks]
        ax.plot(x, [m["mean"] for m in rl], style, color=PALETTE[1], label=f"RL {suffix.strip('_') or 'strict'}")
        ax.fill_between(x, [m["ci95"][0] for m in rl], [m["ci95"][1] for m in rl], color=PALETTE[1], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples per problem)", ylabel="held-out pass@k", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def rl_table(metrics: dict):
    """Base vs RL vs RL with KL vs SFT on answers: pass@1 strict/lenient and mean length."""
    import pandas as pd

    rows = {"base": "base", "GRPO (β = 0)": "rl", "GRPO, KL on": "rl_kl", "SFT on answers (equal FLOPs)": "sft_answers"}
    cols = {"pass@1 strict": "pass_at_1", "pass@1 lenient": "pass_at_1_lenient", "mean length": "mean_len"}
    out = {}
    for name, pre in rows.items():
        out[name] = {c: (_fmt(metrics[f"{pre}_{k}"]) if k != "mean_len" else
                         f"{metrics[f'{pre}_{k}']['mean']:.1f}") if f"{pre}_{k}" in metrics else "—"
                     for c, k in cols.items()}
    return pd.DataFrame(out).T


# ---- distillation chapter (04_distillation) ---------------------------------------------

# ---- censorship chapter (05_censorship) -------------------------------------------------

# ---- engineering chapter (06_engineering) -----------------------------------------------
