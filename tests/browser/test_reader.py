"""Reader-first conventions, checked on every chapter page of the built book (Chromium).

A newspaper reader opening a chapter must meet, in this order and nothing else first:

- ``summary``: a three-sentence summary before the first code cell, in an element of class
  ``minir1-summary`` (a MyST admonition ``:class: minir1-summary`` right under the title):
  the claim in the article's words, what we did, what we found (the verdict and its number);
- ``imports``: no visible import cell (tag plumbing ``remove-input`` or ``hide-input``);
- ``tables``: no raw metric key (``base_pass_at_1``, any key of a results file) in a visible
  table, and no other bare snake_case identifier unless it is set as code (a config field
  named on purpose); a table inside a closed dropdown is not visible;
- ``alt-text``: alt text on every image (myst-nb: cell metadata ``mystnb.image.alt``; without
  it the alt is the image's file name, which counts as missing);
- ``glossary``: at least one ``{term}`` link to the glossary, and every one lands on a term;
- ``how-we-measure``: the verdict box links to the "How we measure" page.

Each (chapter, check) pair is its own test, so a chapter not yet converted fails by name.
``test_reader_checker_bites`` proves every check catches a page that breaks it.
"""

from __future__ import annotations

import json
import re
import urllib.request
from functools import lru_cache
from urllib.parse import urldefrag

import pytest

from minir1.publish.chapters import toc_files
from minir1.utils import repo_root

CHECKS = ("summary", "imports", "tables", "alt-text", "glossary", "how-we-measure")
CHAPTERS = [f"{doc}.html" for doc in toc_files() if doc.startswith("book/chapters/")]
VERDICT_WORDS = ("not testable here", "partly supported", "not supported", "supported", "inconclusive")
SNAKE_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){2,}$")  # a bare identifier with 2+ underscores
IMAGE_PATH_RE = re.compile(r"(^|/)_images/|\.(png|jpe?g|svg|gif|webp)$", re.I)

_READER_JS = """() => {
  const main = document.querySelector("article") || document.querySelector("main") || document.body;
  const visible = el => (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);
  const summary = main.querySelector(".minir1-summary");
  const firstCell = main.querySelector("div.cell");
  let summaryText = null, summaryFirst = false;
  if (summary) {
    const clone = summary.cloneNode(true);
    clone.querySelectorAll(".admonition-title").forEach(t => t.remove());
    summaryText = clone.textContent.replace(/\\s+/g, " ").trim();
    summaryFirst = !firstCell || !!(summary.compareDocumentPosition(firstCell) & Node.DOCUMENT_POSITION_FOLLOWING);
  }
  const inputs = Array.from(main.querySelectorAll("div.cell .cell_input"))
    .filter(visible).map(i => i.innerText);
  const tables = Array.from(main.querySelectorAll("table")).filter(visible)
    .map(t => Array.from(t.querySelectorAll("th, td")).map(c => {
      const code = c.querySelector("code");
      return [c.innerText.trim(), !!code && code.innerText.trim() === c.innerText.trim()];
    }));
  const images = Array.from(main.querySelectorAll("img"))
    .map(i => [i.getAttribute("src") || "", i.getAttribute("alt")]);
  const terms = Array.from(main.querySelectorAll("a[href*='#term-']")).map(a => a.href);
  const measure = main.querySelectorAll(".minir1-verdict-box a[href*='how-we-measure']").length;
  return {summaryText, summaryFirst, inputs, tables, images, terms, measure};
}"""


@lru_cache(maxsize=None)
def _html(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode("utf-8", "replace")
    except OSError:
        return ""


@lru_cache(maxsize=1)
def metric_keys() -> frozenset[str]:
    """Every top-level metric key of every committed results file."""
    keys: set[str] = set()
    for p in (repo_root() / "book" / "results").glob("*.json"):
        keys.update(json.loads(p.read_text()).get("metrics", {}))
    return frozenset(keys)


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if len(s.split()) >= 3])


def _is_import_cell(code: str) -> bool:
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    imports = [ln for ln in lines if ln.lstrip().startswith(("import ", "from "))]
    return bool(lines) and 2 * len(imports) >= len(lines)


def reader_problems(info: dict, path: str, keys: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Problems per check (:data:`CHECKS`) from what ``_READER_JS`` saw on ``path``."""
    out: dict[str, list[str]] = {c: [] for c in CHECKS}
    s = info["summaryText"]
    if s is None:
        out["summary"].append(f"{path}: no element of class minir1-summary (see tests/browser/test_reader.py)")
    else:
        if not info["summaryFirst"]:
            out["summary"].append(f"{path}: the minir1-summary comes after the first code cell")
        if _sentences(s) < 3:
            out["summary"].append(
                f"{path}: the summary has {_sentences(s)} sentence(s); it needs three "
                "(the claim, what we did, what we found)"
            )
        if not any(v in s.lower() for v in VERDICT_WORDS) or not re.search(r"\d", s):
            out["summary"].append(f"{path}: the summary must state the verdict and its number: {s[:120]!r}")
    for code in info["inputs"]:
        if _is_import_cell(code):
            first = code.strip().splitlines()[0]
            out["imports"].append(f"{path}: visible import cell ({first!r}...): tag it remove-input or hide-input")
    key_re = (
        re.compile(r"\b(" + "|".join(map(re.escape, sorted(keys, key=len, reverse=True))) + r")\b") if keys else None
    )
    for i, cells in enumerate(info["tables"]):
        # A known metric key is raw anywhere; another snake_case identifier is allowed only when
        # the author marked it as code (a config field named on purpose, e.g. `clip_eps`).
        raw = sorted(
            {c for c, is_code in cells if (SNAKE_RE.match(c) and not is_code) or (key_re and key_re.search(c))}
        )
        if raw:
            out["tables"].append(f"{path}: table {i} shows raw metric keys {raw[:5]}: use readable labels")
    for src, alt in info["images"]:
        if not alt or not alt.strip() or IMAGE_PATH_RE.search(alt.strip()):
            out["alt-text"].append(
                f"{path}: image {src!r} has no alt text (alt={alt!r}): set cell metadata mystnb.image.alt"
            )
    if not info["terms"]:
        out["glossary"].append(f"{path}: no {{term}} link to the glossary")
    for href in info["terms"]:
        page, frag = urldefrag(href)
        if f'id="{frag}"' not in _html(page):
            out["glossary"].append(f"{path}: glossary link {href} leads to no term")
    if not info["measure"]:
        out["how-we-measure"].append(
            f"{path}: the verdict box has no link to How we measure (re-execute with the current minir1.publish.book)"
        )
    return out


@pytest.fixture(scope="module")
def chapter_info(browser, book_url):
    """What the reader sees on each chapter page, loaded once per page."""
    cache: dict[str, dict] = {}

    def get(path: str) -> dict:
        if path not in cache:
            context = browser.new_context()
            pg = context.new_page()
            try:
                resp = pg.goto(book_url + path, wait_until="load", timeout=60_000)
                assert resp is not None and resp.status < 400, f"{path}: could not load"
                cache[path] = pg.evaluate(_READER_JS)
            finally:
                context.close()
        return cache[path]

    return get


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("path", CHAPTERS)
def test_reader_convention(chapter_info, path, check):
    problems = reader_problems(chapter_info(path), path, metric_keys())[check]
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- the checks bite
_GLOSSARY = """<html><body><article><dl><dt id="term-GRPO">GRPO</dt><dd>x</dd></dl></article></body></html>"""
_GOOD = """<html><body><article><h1>T</h1>
<div class="minir1-summary admonition"><p class="admonition-title">In short</p>
<p>The article says RL makes a reasoner. We trained a tiny model with
<a href="../glossary.html#term-GRPO">GRPO</a> on three seeds. It worked: supported, +80 pp [78, 81].</p></div>
<div class="cell"><details><summary>Show code</summary><div class="cell_input"><pre>import numpy as np
import pandas as pd</pre></div></details><div class="cell_output">
<img src="../_images/a.png" alt="Bars: RL 85%, base 5%"></div></div>
<div class="cell"><div class="cell_input"><pre>loss = -(adv * ratio).mean()</pre></div></div>
<table><tr><th>condition</th><th>pass@1</th></tr><tr><td>base</td><td>5.0% [3.1, 7.2]</td></tr>
<tr><td><code>clip_eps_low</code></td><td>0.2</td></tr></table>
<details><summary>all metrics</summary><table><tr><td>base_pass_at_1</td></tr></table></details>
<div class="minir1-verdict-box"><a href="../how-we-measure.html">How we measure</a></div>
</article></body></html>"""
_BAD = """<html><body><article><h1>T</h1>
<div class="cell"><div class="cell_input"><pre>import time
from minir1 import stats</pre></div></div>
<div class="minir1-summary"><p>We did things. Results follow.</p></div>
<div class="cell_output"><img src="../_images/b.png" alt="_images/b.png"><img src="c.png"></div>
<table><tr><th>metric</th></tr><tr><td>base_pass_at_1</td></tr><tr><td><code>rl_kl_mean_len</code></td></tr></table>
<a href="../glossary.html#term-Nope">nope</a>
<div class="minir1-verdict-box">no link</div>
</article></body></html>"""


def test_reader_checker_bites(browser, static_server, tmp_path):
    site = tmp_path / "site"
    (site / "book" / "chapters").mkdir(parents=True)
    (site / "book" / "glossary.html").write_text(_GLOSSARY)
    (site / "book" / "chapters" / "good.html").write_text(_GOOD)
    (site / "book" / "chapters" / "bad.html").write_text(_BAD)
    (site / "book" / "chapters" / "bare.html").write_text("<html><body><article><p>x</p></article></body></html>")
    context = browser.new_context()
    pg = context.new_page()
    infos = {}
    with static_server(site) as url:
        for name in ("good", "bad", "bare"):
            pg.goto(f"{url}book/chapters/{name}.html", wait_until="load")
            infos[name] = pg.evaluate(_READER_JS)
        good = reader_problems(infos["good"], "good", frozenset({"base_pass_at_1"}))
        bad = reader_problems(infos["bad"], "bad", frozenset({"rl_kl_mean_len"}))
        bare = reader_problems(infos["bare"], "bare")
    context.close()
    assert good == {c: [] for c in CHECKS}, good
    assert all(bad[c] for c in CHECKS), bad
    text = "\n".join(p for ps in bad.values() for p in ps)
    for expected in (
        "comes after the first code cell",
        "needs three",
        "state the verdict",
        "visible import cell ('import time'",
        "raw metric keys ['base_pass_at_1', 'rl_kl_mean_len']",
        "alt='_images/b.png'",
        "alt=None",
        "leads to no term",
        "no link to How we measure",
    ):
        assert expected in text, (expected, text)
    assert bare["summary"] and "no element of class minir1-summary" in bare["summary"][0]
    assert "no {term} link" in bare["glossary"][0]


# ----------------------------------------------------------------------------- the intro's dashboard
INTRO = "book/intro.html"
_DASHBOARD_JS = """() => {
  const table = document.querySelector("table.minir1-dashboard");
  const rows = table ? Array.from(table.querySelectorAll("tbody tr")).map(tr => [
    tr.getAttribute("data-claim"),
    (tr.querySelector(".minir1-verdict") || {innerText: ""}).innerText.trim()]) : [];
  const forest = document.querySelector("img.minir1-forest");
  const doc = document.documentElement;
  return {
    rows,
    forest: forest ? [forest.getAttribute("alt"), forest.naturalWidth] : null,
    scroll: [doc.scrollWidth, doc.clientWidth],
    tableScroll: table ? [table.scrollWidth, table.parentElement.clientWidth] : null,
    errata: document.querySelectorAll("a[href*='errata.html']").length,
  };
}"""


def expected_dashboard() -> list[tuple[str, str]]:
    """(claim id, verdict) per claim of data/claims.yml, verdicts from the results files."""
    from minir1.claims import load_claims

    verdicts: dict[str, str] = {}
    for p in (repo_root() / "book" / "results").glob("*.json"):
        verdicts.update({c["id"]: c["verdict"] for c in json.loads(p.read_text()).get("claims", [])})
    return [(c["id"], verdicts.get(c["id"], "pending")) for c in load_claims()]


def dashboard_problems(info: dict, expected: list[tuple[str, str]]) -> list[str]:
    """What is wrong with the intro's dashboard as ``_DASHBOARD_JS`` saw it at 1280 px."""
    out = []
    rows = [tuple(r) for r in info["rows"]]
    if [r[0] for r in rows] != [e[0] for e in expected]:
        out.append(f"dashboard rows {[r[0] for r in rows]} are not one per claim of data/claims.yml")
    out += [
        f"{cid}: badge says {got!r}, results file says {want!r}"
        for (cid, got), (_, want) in zip(rows, expected)
        if got != want
    ]
    alt, width = info["forest"] or (None, 0)
    if not alt or not alt.strip() or IMAGE_PATH_RE.search(alt.strip()):
        out.append(f"forest plot missing or without alt text (alt={alt!r})")
    elif not width:
        out.append("forest plot did not load")
    if info["scroll"][0] > info["scroll"][1] + 1:
        out.append(f"the page scrolls horizontally at 1280 px ({info['scroll'][0]} > {info['scroll'][1]})")
    if info["tableScroll"] and info["tableScroll"][0] > info["tableScroll"][1] + 1:
        out.append(f"the dashboard is wider than its column ({info['tableScroll'][0]} > {info['tableScroll'][1]})")
    if not info["errata"]:
        out.append("no link to the errata page")
    return out


def _dashboard_info(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    try:
        resp = pg.goto(url, wait_until="load", timeout=60_000)
        assert resp is not None and resp.status < 400, f"{url}: could not load"
        return pg.evaluate(_DASHBOARD_JS)
    finally:
        context.close()


def test_intro_dashboard(browser, book_url):
    problems = dashboard_problems(_dashboard_info(browser, book_url + INTRO), expected_dashboard())
    assert not problems, "\n".join(problems)


def test_dashboard_checker_bites(browser, static_server, tmp_path):
    expected = [("a", "supported"), ("b", "not supported")]
    good = (
        '<table class="minir1-dashboard"><tbody><tr data-claim="a"><td><span class="minir1-verdict">supported'
        '</span></td></tr><tr data-claim="b"><td><span class="minir1-verdict">not supported</span></td></tr>'
        '</tbody></table><img class="minir1-forest" src="f.svg" alt="Forest plot: a, b"><a href="errata.html">e</a>'
    )
    bad = (
        '<div style="width: 600px"><table class="minir1-dashboard" style="width: 3000px"><tbody>'
        '<tr data-claim="a"><td><span class="minir1-verdict">partly supported</span></td></tr></tbody></table>'
        '</div><img class="minir1-forest" src="f.svg">'
    )
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>'
    (tmp_path / "f.svg").write_text(svg)
    (tmp_path / "good.html").write_text(f"<html><body>{good}</body></html>")
    (tmp_path / "bad.html").write_text(f"<html><body>{bad}</body></html>")
    with static_server(tmp_path) as url:
        assert dashboard_problems(_dashboard_info(browser, url + "good.html"), expected) == []
        text = "\n".join(dashboard_problems(_dashboard_info(browser, url + "bad.html"), expected))
    for part in (
        "not one per claim",
        "badge says 'partly supported'",
        "alt=None",
        "scrolls horizontally",
        "wider than its column",
        "no link to the errata",
    ):
        assert part in text, (part, text)
