"""Shared plot helpers for the book: one style, colours, error bars, and the tables several chapters show.

Every figure function of :mod:`minir1.publish.plots` takes an ``ax`` and data read from a results file
(never notebook globals) and returns the ``ax``.  :func:`setup_book` sets one style for all chapters.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...stats import as_metric, fmt
from ...utils import repo_root

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


def _num(m):
    """A results-file metric's mean (or a plain number) as a float."""
    return float(m["mean"]) if isinstance(m, dict) else float(m)


def _yerr(ms, scale: float = 1.0) -> list[list[float]]:
    """Matplotlib's ``yerr`` (below, above) for metrics (Metric or results-file dicts), times ``scale``."""
    ms = [as_metric(m) for m in ms]
    return [[scale * (m.mean - m.lo) for m in ms], [scale * (m.hi - m.mean) for m in ms]]


# The sampling settings of the lab and RL tables: (results-file key suffix, label).
_SETTINGS = (("greedy", "greedy"), ("r1", "T = 0.6, top-p 0.95 (R1)"), ("t1", "T = 1"))


# ``make bench``'s metrics, shown by the lab and RL chapters: (metric, label).
_BENCH_ROWS = (
    ("sampler_speedup_vs_hf", "our sampler vs HF generate (tokens/s ratio)"),
    ("sampler_tokens_per_s_ours", "our sampler, tokens/s"),
    ("sampler_tokens_per_s_hf", "HF generate, tokens/s"),
    ("grpo_speedup_vs_trl", "our GRPO vs TRL GRPOTrainer (steps/s ratio, same work)"),
    ("grpo_tokens_speedup_vs_trl", "our GRPO vs TRL GRPOTrainer (completion tokens/s ratio)"),
    ("grpo_steps_per_s_ours", "our GRPO, steps/s"),
    ("grpo_steps_per_s_trl", "TRL GRPOTrainer, steps/s"),
    ("machine_matmul_flops_per_s", "measured fp32 matmul peak, FLOP/s"),
)


def bench_table(path=None, only: tuple[str, ...] | None = None):
    """The benchmarks of ``book/results/bench.json`` (``make bench``) as a table with readable
    labels: throughput ratios against Hugging Face and TRL, and the roofline (achieved FLOP/s as a
    share of the measured matmul peak) for training and decoding per model size.

    ``only``: keep the rows whose metric name starts with one of these prefixes (``("grpo",
    "sampler")``; the roofline rows are ``train_mfu`` and ``decode_mfu``).  The filter is on the
    metric names, not on the labels a reader sees."""
    import json

    import pandas as pd

    p = path or repo_root() / "book" / "results" / "bench.json"
    try:
        metrics = json.loads(open(p).read())["metrics"]
    except FileNotFoundError:
        return pd.DataFrame({"value": ["no benchmark yet: run `make bench`"]}, index=["benchmark"])
    keep = (lambda key: True) if only is None else (lambda key: key.startswith(tuple(only)))
    rows = {label: fmt(metrics[k]) for k, label in _BENCH_ROWS if k in metrics and keep(k)}  # label -> shown value
    if "sampler_greedy_matches_hf" in metrics and keep("sampler_greedy_matches_hf"):
        rows["greedy tokens equal HF's"] = "yes" if metrics["sampler_greedy_matches_hf"] == 1 else "no"
    for preset in metrics.get("train_mfu", {}):
        if keep("train_mfu"):
            rows[f"roofline, {preset}: training (share of peak)"] = fmt(metrics["train_mfu"][preset])
        if preset in metrics.get("decode_mfu", {}) and keep("decode_mfu"):
            rows[f"roofline, {preset}: decoding (share of peak)"] = fmt(metrics["decode_mfu"][preset])
    if not rows:  # a table with no rows renders as an empty frame: say what is missing instead
        what = f"{' or '.join(only)} " if only else ""
        return pd.DataFrame({"value": [f"no {what}benchmark in bench.json yet: run `make bench`"]}, index=["benchmark"])
    return pd.DataFrame({"mean [95% interval over repeats]": rows})
