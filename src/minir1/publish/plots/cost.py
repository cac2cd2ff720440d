"""Figures of the cost chapter (01_cost): training bills and implied MFU."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .common import PALETTE, _num

_COST_ROWS = (  # (label, metric, published as is (True) or our arithmetic on published inputs)
    ("V3 final run, as published", "v3_published_cost_usd", True),
    ("V3 final run: GPU-h × V3's price (ours)", "v3_total_cost_usd", False),
    ("R1's RL stage: GPU-h × V3's price (ours)", "r1_rl_cost_usd", False),
    ("10 × R1 (V3 + RL), the article's 'even if'", "r1_cost_10x_usd", False),
    ("Llama 3.1 405B: GPU-h × V3's price (ours)", "llama405b_cost_usd", False),
    ("GPT-4, AI Index estimate (2023)", "gpt4_cost_usd", True),
    ("Gemini Ultra, AI Index estimate (2023)", "gemini_ultra_cost_usd", True),
    ('Claude 3.5 Sonnet, "a few $10M\'s" (2025), low', "comparator_costs_usd/claude35_sonnet/low", True),
    ('Claude 3.5 Sonnet, "a few $10M\'s" (2025), high', "comparator_costs_usd/claude35_sonnet/high", True),
)


def _get(metrics, key):
    node = metrics
    for part in key.split("/"):
        node = node[part]
    return _num(node)


def cost_bars(ax, metrics):
    """Training bills in dollars on a log axis: published figures hatched, ours solid, and
    DeepSeek's estimated hardware spend (capital, not a run) as a dashed line."""
    labels = [r[0] for r in _COST_ROWS]
    vals = [_get(metrics, r[1]) for r in _COST_ROWS]
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
        ("V3 vs FP8 peak\n(a variant)", "v3_implied_mfu_fp8"),
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
