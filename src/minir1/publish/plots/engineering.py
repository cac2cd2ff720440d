"""Figures and tables of the engineering chapter (06_engineering): MoE, attention variants and decoding."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...stats import as_metric
from .common import PALETTE, _num, _yerr, band

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


def eng_loss_curves(ax, res, axis="flops", scale="L"):
    """Smoothed training loss of every model at ``scale`` against training FLOPs (6·N_active·D)
    or training seconds: mean over seeds with a min–max band, log x axis."""
    if axis not in ("flops", "wall"):
        raise ValueError(f"axis must be 'flops' or 'wall'; got {axis!r}")
    curves, models = res["extra"]["curves"], res["extra"]["models"][scale]
    for name in models:
        per = [curves[s][scale][name] for s in curves]
        n = min(len(c["loss"]) for c in per)
        x = np.mean([c[axis][:n] for c in per], axis=0)
        band(ax, x, [c["loss"][:n] for c in per], label=models[name]["label"], color=_ENG_COLOURS[name])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels of a short log axis overlap
    ax.set_xlabel("training FLOPs, 6·N_active·D (log)" if axis == "flops" else "training seconds (log)")
    ax.set_ylabel("training loss (nats/token)")
    m = res["metrics"]
    mult = m["moe_compute_multiplier_by_scale"][scale] if axis == "flops" else m["moe_wall_multiplier"]
    ax.set_title(
        f"scale {scale}: MoE vs dense-same-active, {'compute' if axis == 'flops' else 'wall-time'} multiplier "
        f"{_ci_text(mult)}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    return ax


def eng_multiplier_by_scale(ax, res):
    """The MoE's compute multiplier at equal loss against its active parameters, one point per
    scale (mean and conservative 95% interval over seeds, seeds as dots), against 1 (no saving)."""
    m = res["metrics"]
    by, n_act = m["moe_compute_multiplier_by_scale"], m["moe_params_active_by_scale"]
    scales = list(by)
    x = [_num(n_act[sc]) for sc in scales]
    ms = [as_metric(by[sc]) for sc in scales]
    ax.errorbar(
        x,
        [v.mean for v in ms],
        yerr=_yerr(ms),
        marker="o",
        capsize=4,
        color=_ENG_COLOURS["moe"],
        label="mean, 95% interval over seeds",
    )
    for xi, v in zip(x, ms):
        ax.scatter([xi] * len(v.per_seed), v.per_seed, s=10, color="#888888", zorder=3)
    for xi, sc in zip(x, scales):
        ax.annotate(sc, (xi, max(v.hi for v in ms)), ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="no saving")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xticks(x, [f"{v:,.0f}" for v in x])
    ax.set_xlabel("MoE active parameters (log)")
    ax.set_ylabel("compute multiplier at equal loss")
    ax.set_title(f"trend (slope of ln multiplier on ln params): {_ci_text(m['moe_multiplier_trend'])}", fontsize=9)
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
    """The chapter's models at every scale: attention, MLP, parameters and steps; at the largest
    scale also held-out loss and training speed (over seeds)."""
    import pandas as pd

    m, rows = res["metrics"], {}
    for scale, models in res["extra"]["models"].items():
        for name, d in models.items():
            big = name in m["heldout_loss"] and scale == list(res["extra"]["models"])[-1]
            rows[f"{scale}: {d['label']}"] = {
                "attention": d["attention"],
                "MLP": d["mlp"],
                "params total": f"{d['params_total']:,}",
                "params active": f"{d['params_active']:,}",
                "steps": res["extra"]["steps"][scale][name],
                "held-out loss (packed)": _ci_text(m["heldout_loss"][name], ".3f") if big else "",
                "held-out loss (per document)": _ci_text(m["heldout_loss_per_doc"][name], ".3f") if big else "",
                "training tokens/s": f"{as_metric(m['train_tokens_per_s'][name]).mean:,.0f}" if big else "",
            }
    return pd.DataFrame(rows).T


_ENG_SUMMARY = (
    ("compute multiplier vs dense, same active (largest scale)", "moe_compute_multiplier"),
    ("trend: slope of ln multiplier on ln active params", "moe_multiplier_trend"),
    ("wall-time multiplier vs dense, same active", "moe_wall_multiplier"),
    ("time per training token, MoE / dense same active", "moe_time_per_token_ratio"),
    ("loss at equal FLOPs, MoE − dense same active", "moe_minus_dense_active_loss_equal_flops"),
    ("sequence-wise balance loss (α-scaled)", "moe_aux_loss"),
    ("expert load, coefficient of variation", "moe_expert_load_cv"),
    ("expert load, busiest / mean", "moe_expert_load_max_over_mean"),
    ("held-out loss, MLA − MHA", "mla_minus_mha_heldout_loss"),
    ("held-out loss, MLA − MHA, per document", "mla_minus_mha_heldout_loss_per_doc"),
    ("held-out loss, GQA − MHA", "gqa_minus_mha_heldout_loss"),
    ("held-out loss, MLA − GQA", "mla_minus_gqa_heldout_loss"),
)


def eng_summary_table(metrics):
    """The MoE and attention comparisons as "mean [95% interval over seeds]" strings, and the
    multiplier at each scale."""
    import pandas as pd

    rows = {label: _ci_text(metrics[k], ".3f") for label, k in _ENG_SUMMARY if k in metrics}
    for sc, v in metrics["moe_compute_multiplier_by_scale"].items():
        rows[f"compute multiplier at scale {sc}"] = _ci_text(v, ".3f")
        n_lb = _num(metrics["moe_compute_multiplier_lower_bounds_by_scale"][sc])
        rows[f"seeds at scale {sc} where dense never reached the MoE's loss (lower bounds)"] = f"{int(n_lb)}"
    for sc, v in metrics["moe_tokens_per_active_param_by_scale"].items():
        rows[f"tokens per active parameter (MoE, scale {sc})"] = f"{_num(v):.1f}"
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
