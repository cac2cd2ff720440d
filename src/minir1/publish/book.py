"""What every chapter shows last: the verdict box and the provenance footer.

Both read only a results dict (``load_results(...)``), never notebook variables, and
return ``IPython.display.HTML`` that myst-nb renders into the book as is.  All text from
the results file is HTML-escaped.  The browser test checks that every chapter page holds a
``table.minir1-verdicts``.

>>> res = {"chapter": "demo", "profile": "cpu", "seeds": [0],
...        "claims": [{"id": "rl-vanilla-to-reasoner", "verdict": "supported", "evidence": "x"}]}
>>> 'class="minir1-verdicts"' in verdict_box(res).data
True
>>> 'href="../how-we-measure.html"' in verdict_box(res).data
True
"""

from __future__ import annotations

from html import escape

from IPython.display import HTML, Markdown
from myst_nb import glue

from .claims import claims_by_id

# Verdict -> (background, text) colours; readable on light and dark themes.
COLOURS = {
    "supported": ("#1a7f37", "#ffffff"),
    "partly supported": ("#b35900", "#ffffff"),
    "inconclusive": ("#4a5a8c", "#ffffff"),
    "not supported": ("#c62828", "#ffffff"),
    "not testable here": ("#6e7781", "#ffffff"),
}
# Chapters are book/chapters/NN_name.html; the page is book/how-we-measure.html.
HOW_WE_MEASURE = "../how-we-measure.html"
_BOX = "border: 2px solid #444; border-radius: 6px; padding: 0.6em 1em; margin: 1.2em 0;"
_CELL = "padding: 0.3em 0.6em; vertical-align: top; text-align: left;"


def _badge(verdict: str) -> str:
    bg, fg = COLOURS.get(verdict, ("#999999", "#000000"))
    return (
        f'<span class="minir1-verdict" style="background: {bg}; color: {fg}; '
        f'padding: 0.1em 0.5em; border-radius: 0.8em; white-space: nowrap;">'
        f"{escape(verdict)}</span>"
    )


def _row(c: dict, registry: dict) -> str:
    quote = registry.get(c["id"], {}).get("claim", "(not in data/claims.yml)")
    cells = [
        f"<code>{escape(c['id'])}</code>",
        escape(" ".join(quote.split())),
        _badge(c["verdict"]),
        escape(c["evidence"]),
    ]
    return "<tr>" + "".join(f'<td style="{_CELL}">{x}</td>' for x in cells) + "</tr>"


def verdict_box(res: dict, how_we_measure: str = HOW_WE_MEASURE) -> HTML:
    """A boxed table of the chapter's verdicts: claim id, the article's words, verdict, evidence,
    and a link to the "How we measure" page (``how_we_measure``, relative to the chapter page)."""
    registry = claims_by_id()
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("Claim", "The article says", "Verdict", "Evidence"))
    rows = "".join(_row(c, registry) for c in res.get("claims", []))
    note = ""
    if res.get("profile") == "smoke":
        note = (
            '<p style="margin: 0.4em 0 0 0;"><em>Smoke run: tiny settings for CI; these '
            "numbers do not support any verdict.</em></p>"
        )
    seeds = ", ".join(str(s) for s in res.get("seeds", []))
    html = (
        f'<div class="minir1-verdict-box" style="{_BOX}">'
        f'<p style="font-weight: bold; font-size: 1.15em; margin: 0 0 0.4em 0;">Verdict</p>'
        f'<table class="minir1-verdicts" style="border-collapse: collapse; width: 100%;">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f'<p style="margin: 0.4em 0 0 0; font-size: 0.85em;">Profile '
        f"<code>{escape(str(res.get('profile', '?')))}</code>, seeds {escape(seeds)}; "
        f"verdicts computed by code from the results file, by rules written before the run. "
        f'<a class="minir1-how-we-measure" href="{escape(how_we_measure)}">How we measure: '
        f"seeds, intervals and what each verdict means</a>.</p>{note}</div>"
    )
    return HTML(html)


def _duration(seconds: float) -> str:
    """``75.2`` -> ``'1 min 15 s'``."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _short_commit(commit: str) -> str:
    dirty = commit.endswith("-dirty")
    base = commit[: -len("-dirty")] if dirty else commit
    return (base[:10] if base != "unknown" else base) + (" (uncommitted changes)" if dirty else "")


def provenance_footer(res: dict) -> HTML:
    """A small footer: profile, seeds, commit, wall time, device, FLOPs, package versions."""
    prov = res.get("provenance", {})
    vers = prov.get("versions", {})
    items = [
        ("profile", res.get("profile", "?")),
        ("seeds", ", ".join(str(s) for s in res.get("seeds", [])) or "none"),
        ("commit", _short_commit(str(prov.get("git_commit", "unknown")))),
        ("wall time", _duration(prov.get("wall_seconds", 0.0))),
        ("device", prov.get("device", "?")),
        ("FLOPs", f"{float(prov.get('flops', 0.0)):.3g}"),
        ("versions", ", ".join(f"{k} {vers[k]}" for k in ("python", "torch", "transformers") if k in vers) or "?"),
    ]
    body = " · ".join(f"<strong>{escape(k)}</strong> {escape(str(v))}" for k, v in items)
    return HTML(
        f'<div class="minir1-provenance" style="font-size: 0.8em; color: #555; '
        f'border-top: 1px solid #ccc; margin-top: 1.5em; padding-top: 0.4em;">'
        f"Provenance: {body}</div>"
    )


def finding(res: dict, headline: str) -> str:
    """The summary's third sentence, from the results file: the chapter's verdicts and its
    headline number (computed by the notebook from the same file, never typed)."""
    verdicts = "; ".join(f"{c['id']} is {c['verdict']}" for c in res.get("claims", []))
    return f"What we found: {verdicts}. {headline.rstrip('.')}."


def glue_finding(res: dict, headline: str, name: str = "finding") -> str:
    """Glue :func:`finding` under ``name`` so the summary at the top of the chapter can show it
    with ``{glue:md}`finding` `` (the numbers exist only after the chapter has run)."""
    text = finding(res, headline)
    glue(name, Markdown(text), display=False)
    return text
