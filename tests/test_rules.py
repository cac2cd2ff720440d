"""Verdict rules as data: every claim's rule in data/claims.yml can come out each way."""

import pytest

from minir1.claims import load_claims
from minir1.experiments import rules
from minir1.results import VERDICTS

CLAIMS = load_claims()


def test_condition_grammar():
    m = {"gain": {"mean": 0.3, "lo": 0.2, "hi": 0.4}, "n": 5.0, "dose": {"0.2": {"mean": 0.6, "lo": 0.5, "hi": 0.7}}}
    assert rules.holds("gain:lo > 0.1", m) and not rules.holds("gain:hi < 0.4", m)
    assert rules.holds("gain <= 0.3", m) and rules.holds("n == 5", m)
    assert rules.holds("dose/0.2:lo >= 0.5", m) and rules.holds("dose/0.2:mean > gain:hi", m)
    for bad in ("gain > ", "__import__('os') > 1", "gain:median > 0", "gain ~ 1", "gain > 1; x"):
        with pytest.raises(rules.RuleError):
            rules.holds(bad, m)
    with pytest.raises(rules.RuleError, match="not in the results"):
        rules.holds("missing:lo > 0", m)
    with pytest.raises(rules.RuleError, match="plain number"):
        rules.holds("n:lo > 0", m)


def test_outcome_levels_in_order_and_fixed():
    rule = {
        "says": "x",
        "levels": [{"verdict": "supported", "when": ["a:lo > 0"]}, {"verdict": "partly supported", "when": ["a > 0"]}],
        "otherwise": "not supported",
    }
    assert rules.outcome(rule, {"a": {"mean": 1, "lo": 0.5, "hi": 2}}) == "supported"
    assert rules.outcome(rule, {"a": {"mean": 1, "lo": -0.5, "hi": 2}}) == "partly supported"
    assert rules.outcome(rule, {"a": {"mean": -1, "lo": -2, "hi": 0}}) == "not supported"
    assert rules.outcome({"fixed": "not testable here", "reason": "no model"}, {}) == "not testable here"
    with pytest.raises(rules.RuleError, match="only"):
        rules.check_rule({"fixed": "supported", "reason": "because"})
    with pytest.raises(rules.RuleError, match="otherwise"):
        rules.check_rule({"says": "x", "levels": rule["levels"], "otherwise": "maybe"})


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_every_claim_has_a_rule_that_can_come_out_each_way(claim):
    assert "rule" in claim, f"{claim['id']}: data/claims.yml needs a `rule:` (written before the run)"
    rule = claim["rule"]
    rules.check_rule(rule, claim["id"])
    if "fixed" in rule:
        return
    examples = rule.get("examples") or {}
    possible = {lv["verdict"] for lv in rule["levels"]} | {rule["otherwise"]}
    assert set(examples) == possible, (
        f"{claim['id']}: `examples` must give metrics for every outcome the rule "
        f"can give ({sorted(possible)}); has {sorted(examples)}"
    )
    assert len(possible) >= 2 and rule["otherwise"] in ("not supported", "partly supported")
    for verdict, metrics in examples.items():
        assert verdict in VERDICTS
        assert rules.outcome(rule, metrics) == verdict, f"{claim['id']}: example for {verdict!r} gives another verdict"
