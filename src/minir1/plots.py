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

# ---- lab chapter (02_lab) ---------------------------------------------------------------

# ---- RL chapter (03_rl) -----------------------------------------------------------------

# ---- distillation chapter (04_distillation) ---------------------------------------------

# ---- censorship chapter (05_censorship) -------------------------------------------------

# ---- engineering chapter (06_engineering) -----------------------------------------------
