"""The intro's verdict dashboard and forest plot, from the claims registry and the results files.

One row per claim in ``data/claims.yml``: the claim in a few words (its ``short`` field), the
verdict from the chapter's results file, the one number that decided it (its ``deciding``
field: a metric of ``book/results/<chapter>.json`` and the condition of the claim's rule it is
read against), "k of n variants agree" (``—`` until the robustness variants exist) and a link
to the chapter.  Below it, one forest plot: each deciding number with its interval against the
threshold of its rule.  ``python -m minir1.publish.dashboard`` writes
``book/_generated/dashboard.md`` (included by ``book/intro.md``) and
``book/_generated/forest.svg``; the Makefile runs it before every build.  Nothing here changes a
verdict: the rules in the registry decide, this page only shows them.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from html import escape
from pathlib import Path

from .. import rules
from ..claims import load_claims
from ..utils import atomic_write_text, repo_root
from .book import COLOURS
from .claims import PENDING, _chapter_docs, _read_results, claims_table

FOREST = "forest.svg"
_WORDS = {"lo": "lower end", "hi": "upper end", "mean": "value"}
_OPS = {">=": "≥", "<=": "≤", "==": "="}
# Column widths (percent of the text column): claim, verdict, number, variants, chapter.
_WIDTHS = (27, 18, 33, 8, 14)


@dataclass(frozen=True)
class Deciding:
    """The number that decided a claim: ``mean [lo, hi]`` read against ``stat op threshold``."""

    label: str
    mean: float
    lo: float | None
    hi: float | None
    stat: str
    op: str
    threshold: float
    scale: str
    margin: tuple[float, float] | None = None  # equivalent()/inconclusive(): the declared margin


@dataclass(frozen=True)
class Variant:
    name: str
    verdict: str


@dataclass(frozen=True)
class Row:
    id: str
    short: str
    verdict: str
    chapter: str
    doc: str | None
    deciding: Deciding | None
    variants: tuple[Variant, ...] = ()

    @property
    def agree(self) -> str:
        """``k/n`` robustness variants that give the published verdict; "—" without variants."""
        if not self.variants:
            return "—"
        return f"{sum(v.verdict == self.verdict for v in self.variants)}/{len(self.variants)}"

    @property
    def disagree(self) -> list[str]:
        return [f"{v.name} → {v.verdict}" for v in self.variants if v.verdict != self.verdict]


def deciding_number(claim: dict, results: dict | None) -> Deciding | None:
    """The claim's deciding number from its chapter's ``results`` (``None`` without one).

    ``deciding.metric`` is ``<chapter>.<metric[/series]>``; ``deciding.when`` must be one of the
    rule's conditions (parsed by :mod:`minir1.rules`, the grammar the verdicts use) and read that
    metric: a comparison on its left, or ``straddles``/``equivalent``/``inconclusive`` of it.
    """
    d = claim.get("deciding")
    if not d or results is None:
        return None
    chapter, _, path = d["metric"].partition(".")
    if chapter != claim["chapter"]:
        raise ValueError(f"{claim['id']}: deciding metric {d['metric']!r} is not in chapter {claim['chapter']!r}")
    if d["when"] not in rules.conditions(claim["rule"]):
        raise ValueError(f"{claim['id']}: deciding.when {d['when']!r} is not a condition of its rule")
    metrics = results["metrics"]
    fn = rules.parse_function(d["when"])
    if fn is not None:
        name, ref, nums = fn
        stat, op, threshold, margin = "mean", name, nums[0], None
        if name != "straddles":
            margin = (-abs(nums[0]), abs(nums[0])) if len(nums) == 1 else (nums[0], nums[1])
            threshold = 0.0
    else:
        margin = None
        left, op, right = rules.parse(d["when"])
        ref, _, stat = left.partition(":")
        threshold = rules.resolve(right, metrics) if not rules.is_number(right) else float(right)
    if ref != path:
        raise ValueError(f"{claim['id']}: deciding.when reads {ref!r}, not the deciding metric {path!r}")
    if _has_interval(metrics, path):
        mean, lo, hi = (rules.resolve(f"{path}:{k}", metrics) for k in ("mean", "lo", "hi"))
    else:
        mean, lo, hi = rules.resolve(path, metrics), None, None
    scale = d.get("scale", "number")
    return Deciding(d["label"], mean, lo, hi, stat or "mean", op, threshold, scale, margin)


def _has_interval(metrics: dict, path: str) -> bool:
    node = metrics
    for part in path.split("/"):
        node = node[part]
    return isinstance(node, dict)


def fmt(x: float, scale: str, unit: bool = True) -> str:
    """``x`` on the claim's scale: percent (0.35 -> 35%), pp (0.05 -> +5.0 pp), ratio, number."""
    if scale == "percent":
        return f"{100 * x:.1f}" + ("%" if unit else "")
    if scale == "pp":
        return (f"{100 * x:+.1f}".replace("-", "−") if x else "0") + (" pp" if unit else "")
    if scale == "ratio":
        return f"{x:.3g}" + ("×" if unit else "")
    return f"{x:g}".replace("-", "−")


def deciding_text(d: Deciding) -> str:
    """``label: value [lo, hi]; rule: lower end > 0 pp`` (the interval only when it has width)."""
    value = value_text(d)
    return f"{d.label}: {value}; {rule_text(d)}"


def value_text(d: Deciding) -> str:
    """``value [lo, hi]`` (the interval only when it has width)."""
    value = fmt(d.mean, d.scale)
    if d.lo is not None and d.hi is not None and d.lo != d.hi:
        value += f" [{fmt(d.lo, d.scale, False)}, {fmt(d.hi, d.scale, False)}]"
    return value


def rule_text(d: Deciding) -> str:
    if d.margin is not None:
        lo, hi = (fmt(v, d.scale) for v in d.margin)
        return f"rule: {d.op} if the interval lies inside ({lo}, {hi})"
    if d.op == "straddles":
        return f"rule: inconclusive if the interval contains {fmt(d.threshold, d.scale)}"
    return f"rule: {_WORDS[d.stat]} {_OPS.get(d.op, d.op)} {fmt(d.threshold, d.scale)}"


def dashboard_rows(
    results_dir: str | os.PathLike | None = None, registry: str | os.PathLike | None = None
) -> list[Row]:
    """One :class:`Row` per registry claim, in registry order (verdicts from the results files).
    ``registry``: another edition's ``data/claims.yml`` (its rules name its own deciding metrics)."""
    rdir = Path(results_dir) if results_dir is not None else repo_root() / "book" / "results"
    claims = load_claims(registry)
    if registry is None:
        verdicts = list(claims_table(rdir)["verdict"])
    else:
        found = {
            c["id"]: c["verdict"]
            for r in map(lambda c: _read_results(rdir, c), {c["chapter"] for c in claims})
            for c in (r or {}).get("claims", [])
        }
        verdicts = [found.get(c["id"], PENDING) for c in claims]
    docs = _chapter_docs()
    cache: dict[str, dict | None] = {}
    rows = []
    for claim, verdict in zip(claims, verdicts):
        if claim["chapter"] not in cache:
            cache[claim["chapter"]] = _read_results(rdir, claim["chapter"])
        res = cache[claim["chapter"]]
        dec = deciding_number(claim, res) if verdict != PENDING else None
        short = " ".join(str(claim.get("short") or claim["claim"]).split())
        record = next((c for c in (res or {}).get("claims", []) if c["id"] == claim["id"]), {})
        variants = tuple(Variant(v["name"], v["verdict"]) for v in record.get("variants", []))
        rows.append(Row(claim["id"], short, verdict, claim["chapter"], docs.get(claim["chapter"]), dec, variants))
    return rows


def _badge(verdict: str) -> str:
    bg, fg = COLOURS.get(verdict, ("#eeeeee", "#000000"))
    return (
        f'<span class="minir1-verdict" style="background: {bg}; color: {fg}; padding: 0.1em 0.45em; '
        f'border-radius: 0.8em; white-space: nowrap;">{escape(verdict)}</span>'
    )


def dashboard_html(rows: list[Row]) -> str:
    """The dashboard as one raw-HTML table (class ``minir1-dashboard``; each row carries
    ``data-claim`` and ``data-verdict`` for the browser tests)."""
    style = (
        "<style>.minir1-dashboard th, .minir1-dashboard td {padding: 0.25em 0.35em; vertical-align: top; "
        "text-align: left; overflow-wrap: break-word; font-size: 0.9em;} .minir1-dashboard small {font-size: 0.85em;}"
        " .minir1-dashboard .minir1-verdict {font-size: 0.85em;}</style>"
    )
    heads = ("The article says", "Verdict", "The number that decided it", "Agree", "Chapter")
    cols = "".join(f'<col style="width: {w}%;">' for w in _WIDTHS)
    head = "".join(f"<th>{h}</th>" for h in heads)
    head = head.replace(
        ">Agree<", ' title="k of n robustness variants agree">Agree<sup><a href="#minir1-variants-note">1</a></sup><'
    )
    body = []
    for r in rows:
        d = r.deciding
        number = "—"
        if d:
            small = f"{escape(d.label)}; {escape(rule_text(d))}"
            number = f"<strong>{escape(value_text(d))}</strong><br><small>{small}</small>"
        link = f'<a href="{r.doc}.html">{escape(r.chapter)}</a>' if r.doc else escape(r.chapter)
        title = "; ".join(r.disagree) if r.disagree else "every variant agrees" if r.variants else "no variants"
        agree = f'<span title="{escape(title)}">{escape(r.agree)}</span>'
        if r.disagree:
            agree += f"<br><small>{escape('; '.join(r.disagree))}</small>"
        cells = (escape(r.short), _badge(r.verdict), number, agree, link)
        tds = "".join(f"<td>{c}</td>" for c in cells)
        body.append(f'<tr data-claim="{escape(r.id)}" data-verdict="{escape(r.verdict)}">{tds}</tr>')
    return style + (
        '<table class="minir1-dashboard" style="width: 100%; table-layout: fixed; border-collapse: collapse;">'
        f"<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def forest_alt(rows: list[Row]) -> str:
    """The forest plot's alt text: every plotted claim's number against its threshold."""
    parts = [f"{r.short}: {deciding_text(r.deciding)}" for r in rows if r.deciding]
    return (
        f"Forest plot of the {len(parts)} claims with a deciding number, each on its own scale, "
        "its interval drawn against the threshold of its rule (dashed). " + " | ".join(parts)
    )


def forest_plot(rows: list[Row], path: Path) -> Path:
    """Draw each deciding number (point, interval) against its threshold (dashed line) as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotted = [r for r in rows if r.deciding]
    with plt.rc_context({"svg.hashsalt": "minir1-forest", "font.size": 9}):
        fig, axes = plt.subplots(len(plotted), 1, figsize=(7.5, 0.7 * len(plotted) + 0.6), squeeze=False)
        for ax, r in zip(axes[:, 0], plotted):
            _forest_row(ax, r)
        fig.suptitle("The number that decided each verdict, against its rule's threshold (dashed)", fontsize=10)
        fig.subplots_adjust(
            left=0.45, right=0.97, top=1 - 0.45 / fig.get_figheight(), bottom=0.4 / fig.get_figheight(), hspace=1.1
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
    return path


def _forest_row(ax, r: Row) -> None:
    """One claim's row: the threshold, the interval, the point, and the claim on the left."""
    d = r.deciding
    colour = COLOURS.get(r.verdict, ("#999999", ""))[0]
    scale = 100.0 if d.scale in ("percent", "pp") else 1.0
    lo = d.lo if d.lo is not None else d.mean
    hi = d.hi if d.hi is not None else d.mean
    xs = [v * scale for v in (lo, hi, d.mean, d.threshold, *(d.margin or ()))]
    pad = (max(xs) - min(xs)) * 0.15 or abs(xs[0]) * 0.2 or 1.0
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    for edge in d.margin or (d.threshold,):
        ax.axvline(edge * scale, color="#444444", linestyle="--", linewidth=1)
    ax.plot([lo * scale, hi * scale], [0, 0], color=colour, linewidth=3, solid_capstyle="butt")
    ax.plot([d.mean * scale], [0], "o", color=colour, markersize=6)
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", labelsize=7.5, pad=1)
    unit = {"percent": "%", "pp": "pp", "ratio": "×"}.get(d.scale, "")
    ax.set_xlabel(f"{d.label} ({unit})" if unit else d.label, fontsize=7.5, labelpad=1)
    label = "\n".join(textwrap.wrap(f"{r.short} — {r.verdict}", 44)[:3])
    ax.text(-0.02, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=8.5)


def dashboard_markdown(rows: list[Row]) -> str:
    """The generated page: dashboard table, its footnote, the forest plot."""
    n = sum(1 for r in rows if r.verdict != PENDING)
    return "\n".join(
        [
            "<!-- Generated by `python -m minir1.publish.dashboard` from data/claims.yml "
            "and book/results/*.json; do not edit. -->",
            "",
            f"{n} of {len(rows)} claims have a verdict. The number that decided each: mean [95% interval], "
            "and the condition of its rule, written before the run.",
            "",
            dashboard_html(rows),
            "",
            '<p id="minir1-variants-note" style="font-size: 0.85em;"><sup>1</sup> Agree: k of n reasonable '
            "alternatives declared in data/claims.yml before the run (the metric, the decoding, the hardware "
            "peak, the comparator or benchmark set) give the same verdict; those that do not are named. "
            "What changed since the previous edition: [Errata and changes](errata.md).</p>",
            "",
            f"```{{figure}} _generated/{FOREST}",
            f":alt: {forest_alt(rows)}",
            ":class: minir1-forest",
            ":name: minir1-forest",
            ":width: 100%",
            "",
            "Each claim's deciding number: the dot is the mean, the bar its 95% interval (none for an exact "
            "figure), the dashed line the threshold its rule reads it against. Colour is the verdict.",
            "```",
            "",
        ]
    )


def write_dashboard(out_dir: str | os.PathLike = "book/_generated", results_dir: str | os.PathLike | None = None):
    """Write ``dashboard.md`` and the forest plot into ``out_dir`` (relative: from the repo root)."""
    out = Path(out_dir)
    if not out.is_absolute():
        out = repo_root() / out
    rows = dashboard_rows(results_dir)
    forest_plot(rows, out / FOREST)
    return atomic_write_text(out / "dashboard.md", dashboard_markdown(rows))


def main() -> int:
    path = write_dashboard()
    print(f"wrote {path} and {path.parent / FOREST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
