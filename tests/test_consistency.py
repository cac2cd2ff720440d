"""The published results agree with themselves: one model on one eval set has one set of numbers."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from minir1 import rules
from minir1.claims import load_claims

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "book" / "results").glob("*.json"))


def _load(p):
    return json.loads(p.read_text())


def test_same_model_same_eval_set_same_numbers():
    seen = defaultdict(list)  # (model, eval_set, sampling, seeds) -> [(file, metrics)]
    for p in RESULTS:
        for eid, ev in _load(p).get("evals", {}).items():
            key = json.dumps([ev["model"], ev["eval_set"], ev["sampling"], ev["seeds"]], sort_keys=True)
            seen[key].append((p.name, ev["metrics"]))
    for key, hits in seen.items():
        first_file, first = hits[0]
        for other_file, metrics in hits[1:]:
            assert metrics == first, (
                f"{first_file} and {other_file} report different numbers for the same "
                f"model, eval set, sampling and seeds: {key}"
            )


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_interval_comes_from_stats_and_stays_in_range(path):
    def walk(m, where):
        if isinstance(m, dict) and "mean" in m:
            assert set(m) == {"mean", "lo", "hi", "per_seed", "n", "method", "unit"}, where
            assert m["lo"] <= m["mean"] <= m["hi"], where
            if m["unit"] == "rate":
                assert 0 <= m["lo"] and m["hi"] <= 1, where
        elif isinstance(m, dict):
            for k, v in m.items():
                walk(v, f"{where}/{k}")

    res = _load(path)
    if res.get("chapter") == "bench":
        return
    walk(res["metrics"], path.name)


def _uncertain(ref: str, metrics: dict | None) -> bool:
    """Whether ``ref`` names a number with sampling uncertainty (a Metric with an interval)."""
    if ":" in ref:
        return True
    if metrics is None:
        return False
    node = metrics
    for part in ref.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, dict) and node.get("method") != "exact" and node.get("lo") != node.get("hi")


@pytest.mark.parametrize("claim", [c for c in load_claims() if "levels" in c.get("rule", {})], ids=lambda c: c["id"])
def test_verdicts_compare_through_paired_metrics(claim):
    """A rule never sets one measured metric against another measured one: it reads their paired
    difference or ratio, which carries the comparison's own interval.  (Comparing a count with a
    count, or a measured number with a published figure read from data/, is allowed.)"""
    path = ROOT / "book" / "results" / f"{claim['chapter']}.json"
    metrics = _load(path)["metrics"] if path.exists() else None
    for lv in claim["rule"]["levels"]:
        for cond in lv["when"]:
            if rules.parse_function(cond):  # equivalent()/straddles() read one metric's own interval
                continue
            left, op, right = rules.parse(cond)
            if right[0].isdigit() or right[0] in "+-.":
                continue
            assert not (_uncertain(left, metrics) and _uncertain(right, metrics)), (
                f"{claim['id']}: condition {cond!r} compares two measured metrics; publish their paired "
                "difference (minir1.stats.paired_diff) and compare it with a number"
            )
