"""The intro's verdict dashboard, the errata page and editions (issue 29, items 1-3).

The dashboard and forest plot read only the claims registry and the results files; the errata
mechanism finds every verdict that changed between two results folders; every results file
may carry an edition block.  The intro's stated model sizes are checked against the results.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from minir1 import results
from minir1.claims import load_claims
from minir1.publish import dashboard, errata
from minir1.utils import repo_root

ROOT = repo_root()
RESULTS = ROOT / "book" / "results"
CLAIMS = load_claims()


def _published_verdicts() -> dict[str, str]:
    out = {}
    for p in RESULTS.glob("*.json"):
        out.update({c["id"]: c["verdict"] for c in json.loads(p.read_text()).get("claims", [])})
    return out


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c["id"])
def test_every_claim_has_a_short_form_and_a_deciding_number(claim):
    assert claim.get("short") and len(claim["short"]) <= 80, f"{claim['id']}: needs a `short` (<= 80 characters)"
    if "fixed" in claim["rule"]:
        assert "deciding" not in claim, f"{claim['id']}: a fixed verdict has no deciding number"
        return
    assert claim.get("deciding"), f"{claim['id']}: needs `deciding` (metric, when, label, scale)"
    assert claim["deciding"]["scale"] in ("percent", "pp", "ratio", "number")
    res = json.loads((RESULTS / f"{claim['chapter']}.json").read_text())
    d = dashboard.deciding_number(claim, res)  # raises when the metric or condition is wrong
    assert d is not None and d.label == claim["deciding"]["label"]


def test_deciding_number_must_be_a_condition_of_the_rule():
    claim = next(c for c in CLAIMS if c["id"] == "rl-vanilla-to-reasoner")
    res = json.loads((RESULTS / "rl.json").read_text())
    bad = dict(claim, deciding=dict(claim["deciding"], when="plain_rl_vs_best_baseline_pass_at_1_r1:lo > 0.5"))
    with pytest.raises(ValueError, match="not a condition of its rule"):
        dashboard.deciding_number(bad, res)
    d = dashboard.deciding_number(claim, res)
    assert (d.stat, d.op, d.threshold) == ("lo", ">", 0.0)
    assert dashboard.deciding_text(d).endswith("rule: lower end > 0 pp")


def test_dashboard_has_one_row_per_claim_with_the_published_verdict():
    rows = dashboard.dashboard_rows()
    assert [r.id for r in rows] == [c["id"] for c in CLAIMS]
    published = _published_verdicts()
    assert {r.id: r.verdict for r in rows} == {c["id"]: published.get(c["id"], "pending") for c in CLAIMS}
    html = dashboard.dashboard_html(rows)
    assert html.count("<tr data-claim=") == len(CLAIMS)
    for r in rows:
        assert f'data-claim="{r.id}" data-verdict="{r.verdict}"' in html


def test_write_dashboard_makes_the_page_and_the_forest_plot(tmp_path):
    page = dashboard.write_dashboard(tmp_path)
    text = page.read_text()
    svg = tmp_path / dashboard.FOREST
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    alt = re.search(r"^:alt: (.+)$", text, re.M)
    assert alt and all(r.short in alt.group(1) for r in dashboard.dashboard_rows() if r.deciding)
    assert "minir1-variants-note" in text and "variants" in text and "errata" in text
    again = tmp_path / "again"
    dashboard.write_dashboard(again)
    assert (again / dashboard.FOREST).read_bytes() == svg.read_bytes(), "the forest plot must be deterministic"


# ----------------------------------------------------------------------------- errata
def _copy_results(dst):
    shutil.copytree(RESULTS, dst, ignore=shutil.ignore_patterns(".*"))
    return dst


def test_verdict_changes_finds_a_changed_verdict_with_its_number(tmp_path):
    old, new = _copy_results(tmp_path / "old"), _copy_results(tmp_path / "new")
    assert errata.verdict_changes(old, new) == []
    path = new / "lab.json"
    res = json.loads(path.read_text())
    m = res["metrics"]["base_room_r1"]["countdown"]
    was = f"{100 * m['mean']:+.1f} pp [{100 * m['lo']:+.1f}, {100 * m['hi']:+.1f}]".replace("-", "−")
    m.update(mean=0.05, lo=0.01, hi=0.09)
    for c in res["claims"]:
        if c["id"] == "lab-room-for-rl":
            before = c["verdict"]
            c["verdict"] = "supported"
    path.write_text(json.dumps(res))
    changes = errata.verdict_changes(old, new)
    assert [(c["claim"], c["old"], c["new"]) for c in changes] == [("lab-room-for-rl", before, "supported")]
    assert was in changes[0]["number"] and "+5.0 pp [+1.0, +9.0]" in changes[0]["number"]
    edition = {"version": "2099.01.01", "date": "2099-01-01", "tag": "edition-2099.01.01", "summary": "x"}
    text = errata.errata_markdown([dict(edition, changes=[dict(changes[0], why="more seeds")])])
    assert f"{before} → **supported**" in text and "more seeds" in text and "+5.0 pp" in text
    assert "No verdict changed" in errata.errata_markdown([dict(edition, changes=[])])


def test_editions_file_and_the_current_edition(tmp_path):
    eds = errata.load_editions()
    cur = errata.current_edition()
    assert cur is eds[0] or cur == eds[0]
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", cur["version"]) and cur["tag"] == f"edition-{cur['version']}"
    published = {
        c["id"]: c["verdict"]
        for r in map(json.loads, map(Path.read_text, RESULTS.glob("*.json")))
        for c in r.get("claims", [])
    }
    text = errata.errata_markdown(eds)
    for change in cur.get("changes") or []:  # every change is the published verdict now, with its reason
        assert published[change["claim"]] == change["new"] != change["old"] and change["why"].strip()
        assert f"{change['old']} → **{change['new']}**" in text
    assert "No verdict changed in this edition" in text or cur.get("changes")
    bad = tmp_path / "editions.yml"
    bad.write_text("editions:\n  - {version: '2099.01.01', date: x, tag: edition-1, summary: y}\n")
    with pytest.raises(ValueError, match="tag must be"):
        errata.load_editions(bad)
    line = errata.edition_line()
    assert f"Edition {cur['version']}" in line and "{doc}`errata`" in line


def test_results_files_carry_an_edition_block():
    ed = results.edition("abc123", "cpu (1 threads)")
    assert set(ed) == {"version", "date", "commit", "environment"} and ed["commit"] == "abc123"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ed["date"]) and "torch" in ed["environment"]
    res = json.loads((RESULTS / "lab.json").read_text())
    res["provenance"]["edition"] = ed
    results.validate(res, "lab.json")
    res["provenance"]["edition"] = {"version": "x"}
    with pytest.raises(results.ResultsError):
        results.validate(res, "lab.json")


# ----------------------------------------------------------------------------- facts in the prose
def _model_sizes() -> list[float]:
    """Parameter counts of the miniature models the chapters train (the cost and thesis chapters
    count real models' parameters; bench is not a chapter)."""
    sizes = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, (int, float)) and "params" in path and not re.search("tokens_per|ratio|v3_", path):
            sizes.append(float(node))

    for p in RESULTS.glob("*.json"):
        if p.stem not in ("bench", "cost", "thesis"):
            walk(json.loads(p.read_text())["metrics"], "")
    return sizes


@pytest.mark.parametrize("doc", ["book/intro.md", "README.md"])
def test_stated_model_sizes_match_the_results(doc):
    sizes = _model_sizes()
    stated = f"{min(sizes) / 1e6:.2f}–{max(sizes) / 1e6:.2f} million parameters"
    text = " ".join((ROOT / doc).read_text().split())
    assert stated in text, f"{doc} must state the models' sizes as {stated!r} (from book/results)"
    assert "a few million parameters" not in text
