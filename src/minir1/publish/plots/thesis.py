"""Figures and tables of the thesis chapter (07_thesis): published scores, sampling intervals, chips and costs."""

from __future__ import annotations

from ...stats import as_metric
from .common import _yerr


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


def thesis_match_table(metrics: dict, extra: dict | None = None):
    """R1 vs o1-1217 per benchmark: both intervals, the difference under both pairings, and the
    call against the declared margin (matches / trails / inconclusive); benchmarks without a
    published size (``extra["match_unsized"]``) are listed with their scores only."""
    import pandas as pd

    from ...benchmarks import noninferiority

    margin = float(metrics["match_margin"])
    rows = {}
    for b, s in metrics["published_score"].items():
        d, dn = as_metric(metrics["r1_minus_rival"][b]), as_metric(metrics["r1_minus_rival_nested"][b])
        rows[b] = {
            "problems": as_metric(s["r1"]).n,
            "R1": str(as_metric(s["r1"])),
            "o1-1217": str(as_metric(s["o1-1217"])),
            "R1 − o1 (independent)": str(d),
            f"call (δ = {100 * margin:.0f} pt)": noninferiority(d, margin),
            "R1 − o1 (nested)": str(dn),
            "call (nested)": noninferiority(dn, margin),
        }
    for b, s in ((extra or {}).get("match_unsized") or {}).items():
        rows[b] = {"problems": "not published", "R1": f"{s['r1']:g}", "o1-1217": f"{s['o1-1217']:g}"}
    return pd.DataFrame(rows).T.fillna("—")


def thesis_variants_table(claims: list):
    """Each claim's verdict and its verdict under every declared variant (the robustness column)."""
    import pandas as pd

    rows = []
    for c in claims:
        rows.append({"claim": c["id"], "variant": "(the rule as declared)", "verdict": c["verdict"]})
        rows += [{"claim": c["id"], "variant": v["name"], "verdict": v["verdict"]} for v in c.get("variants", [])]
    return pd.DataFrame(rows).set_index(["claim", "variant"])


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
    """FLOPs per answer and per solved problem of our own models (distillation chapter), with
    answer-level accuracy and, beside it, strict accuracy (format)."""
    import pandas as pd

    rows = {}
    for m, acc in metrics["mini_pass_at_1"].items():
        rows[m] = {
            "tokens per answer": f"{as_metric(metrics['mini_tokens_per_answer'][m]).mean:.1f}",
            "pass@1 (answer-level)": str(as_metric(acc)),
            "pass@1 (strict, in tags)": str(as_metric(metrics["mini_pass_at_1_strict"][m])),
            "FLOPs per answer": f"{as_metric(metrics['mini_flops_per_answer'][m]).mean:.3g}",
            "FLOPs per solved problem": (
                f"{metrics['mini_flops_per_solved'][m]:.3g}" if m in metrics["mini_flops_per_solved"] else "—"
            ),
        }
    return pd.DataFrame(rows).T


def thesis_rows_table(rows: list, columns: list, index: str):
    """A table of data-file rows (replications, the claims we cannot test)."""
    import pandas as pd

    return pd.DataFrame(rows).set_index(index)[columns]
