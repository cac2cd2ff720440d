"""The published verdicts survive review (issue 24): equal-FLOPs arms really spent equal FLOPs,
every verdict carries its robustness check, and re-judging the published metrics gives it."""

import json
from pathlib import Path

import pytest

from minir1 import rules
from minir1.claims import load_claims

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "book" / "results").glob("*.json"))}
TOLERANCE = 1.05  # "equal FLOPs" means spent FLOPs within 5%
EQUAL_FLOPS_CHAPTERS = ("rl", "distillation")  # chapters whose verdicts compare arms "at equal FLOPs"
CHAPTERS = [c for c in RESULTS if "claims" in RESULTS[c] and c != "bench"]


def _per_seed(node) -> list[float]:
    return [float(v) for v in node["per_seed"]] if isinstance(node, dict) else [float(node)]


def pairs(res: dict) -> list[tuple[str, str]]:
    return [tuple(p) for p in (res.get("extra") or {}).get("equal_flops", [])]


@pytest.mark.parametrize("chapter", EQUAL_FLOPS_CHAPTERS)
def test_chapters_that_compare_at_equal_flops_publish_each_arms_spent_flops(chapter):
    res = RESULTS[chapter]
    assert pairs(res), f"{chapter}: extra.equal_flops lists no pair of arms"
    spent = res["metrics"].get("flops_spent")
    assert isinstance(spent, dict) and spent, f"{chapter}: metrics.flops_spent is missing"
    for a, b in pairs(res):
        assert a in spent and b in spent, (
            f"{chapter}: equal_flops pair {a!r}/{b!r} not in flops_spent ({sorted(spent)})"
        )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_equal_flops_pair_spent_within_5_percent_seed_by_seed(chapter):
    res = RESULTS[chapter]
    spent = res["metrics"].get("flops_spent", {})
    bad = []
    for a, b in pairs(res):
        fa, fb = _per_seed(spent[a]), _per_seed(spent[b])
        assert len(fa) == len(fb) or 1 in (len(fa), len(fb)), f"{chapter}: {a} and {b} have different seeds"
        n = max(len(fa), len(fb))
        fa, fb = (fa * n if len(fa) == 1 else fa), (fb * n if len(fb) == 1 else fb)
        for i, (x, y) in enumerate(zip(fa, fb)):
            assert x > 0 and y > 0, f"{chapter}: {a}/{b} seed {i} spent no FLOPs"
            if max(x, y) / min(x, y) > TOLERANCE:
                bad.append(f"{a}/{b} run {i}: {x:.3g} vs {y:.3g} ({max(x, y) / min(x, y):.2f}×)")
    assert not bad, f"{chapter}: arms called equal-FLOPs differ by more than 5%: {bad}"


TESTABLE = [c for c in load_claims() if "levels" in c.get("rule", {}) and c["chapter"] in RESULTS]


@pytest.mark.parametrize("claim", TESTABLE, ids=lambda c: c["id"])
def test_published_verdict_and_its_variants_follow_the_rule_from_the_published_metrics(claim):
    res = RESULTS[claim["chapter"]]
    (record,) = [c for c in res["claims"] if c["id"] == claim["id"]]
    assert rules.outcome(claim["rule"], res["metrics"]) == record["verdict"]
    declared = [v["name"] for v in claim.get("variants") or []]
    assert [v["name"] for v in record.get("variants", [])] == declared, (
        f"{claim['id']}: the published verdict was not re-judged under the variants data/claims.yml declares"
    )
    for v, spec in zip(record.get("variants", []), claim.get("variants") or []):
        assert rules.outcome(claim["rule"], rules.substitute(res["metrics"], spec["use"])) == v["verdict"]
    assert "variants agree" in record["evidence"] or not declared
