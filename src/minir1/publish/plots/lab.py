"""Figures and tables of the lab chapter (02_lab): training loss and the base model's capability."""

from __future__ import annotations

import numpy as np

from ...stats import as_metric, fmt
from .common import _SETTINGS, _yerr


def loss_curve(ax, history, label=None):
    """Training loss against steps from a trainer history ``[{step, loss}, ...]``."""
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats/token)")
    return ax


def capability_table(metrics: dict):
    """Task × sampling setting table (strings "mean [lo, hi]") of the lab's capability series."""
    import pandas as pd

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
