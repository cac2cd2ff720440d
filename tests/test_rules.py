"""Verdict rules as data: every claim's rule in data/claims.yml can come out each way."""

import pytest

from minir1 import rules
from minir1.claims import load_claims
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
    possible |= {"inconclusive"} if "inconclusive" in rule else set()
    assert set(examples) == possible, (
        f"{claim['id']}: `examples` must give metrics for every outcome the rule "
        f"can give ({sorted(possible)}); has {sorted(examples)}"
    )
    assert len(possible) >= 2 and rule["otherwise"] in ("not supported", "partly supported")
    for verdict, metrics in examples.items():
        assert verdict in VERDICTS
        assert rules.outcome(rule, metrics) == verdict, f"{claim['id']}: example for {verdict!r} gives another verdict"


# ----------------------------------------------------------------------------- issue 24: inconclusive, equivalence
def _m(mean, lo, hi):
    return {"mean": mean, "lo": lo, "hi": hi}


THRESHOLD_RULE = {  # a claim decided at a threshold: "RL beats the base"
    "says": "Supported if the gain's interval lies above 0; inconclusive if it straddles 0.",
    "levels": [{"verdict": "supported", "when": ["gain:lo > 0"]}],
    "inconclusive": ["straddles(gain, 0)"],
    "otherwise": "not supported",
}
EQUIVALENCE_RULE = {  # a claim of sameness: "the student matches the teacher" within 5 pp
    "says": "Supported if TOST calls student - teacher equivalent within 5 pp; inconclusive if it cannot tell.",
    "levels": [{"verdict": "supported", "when": ["equivalent(student_vs_teacher, 0.05)"]}],
    "inconclusive": ["inconclusive(student_vs_teacher, 0.05)"],
    "otherwise": "not supported",
}


@pytest.mark.parametrize(
    "gain,verdict",
    [
        (_m(0.05, 0.01, 0.09), "supported"),
        (_m(0.01, -0.02, 0.04), "inconclusive"),  # straddles 0: not a finding against the claim
        (_m(-0.014, -0.029, 0.001), "inconclusive"),  # distill-small-beats-big's [-2.9, +0.1] pp
        (_m(0.0, -0.02, 0.0), "inconclusive"),  # touches 0: still not excluded
        (_m(-0.05, -0.09, -0.01), "not supported"),  # the interval excludes the claim
    ],
)
def test_inconclusive_when_the_interval_straddles_the_threshold(gain, verdict):
    rules.check_rule(THRESHOLD_RULE)
    assert rules.outcome(THRESHOLD_RULE, {"gain": gain}) == verdict


@pytest.mark.parametrize(
    "diff,verdict",
    [
        (_m(0.01, -0.02, 0.03), "supported"),  # inside (-5, +5) pp: equivalent
        (_m(0.0, -0.20, 0.20), "inconclusive"),  # AIME-sized interval: a wide interval is no match
        (_m(-0.04, -0.07, -0.01), "inconclusive"),  # crosses the -5 pp edge
        (_m(-0.10, -0.15, -0.06), "not supported"),  # wholly below the margin: not equivalent
        (_m(0.08, 0.05, 0.11), "not supported"),  # lo on the edge: outside
    ],
)
def test_equivalence_by_two_one_sided_tests(diff, verdict):
    rules.check_rule(EQUIVALENCE_RULE)
    assert rules.outcome(EQUIVALENCE_RULE, {"student_vs_teacher": diff}) == verdict


def test_inconclusive_is_checked_after_levels_and_before_otherwise():
    rule = {
        "says": "x",
        "levels": [{"verdict": "partly supported", "when": ["a:mean > 0"]}],
        "inconclusive": ["straddles(a, 0)"],
        "otherwise": "not supported",
    }
    assert rules.outcome(rule, {"a": _m(0.1, -0.1, 0.3)}) == "partly supported"  # a level wins
    assert rules.outcome(rule, {"a": _m(-0.1, -0.3, 0.1)}) == "inconclusive"
    assert rules.outcome(rule, {"a": _m(-0.2, -0.3, -0.1)}) == "not supported"
    # Several inconclusive conditions must all hold.
    both = {**rule, "inconclusive": ["straddles(a, 0)", "a:hi < 0.05"]}
    assert rules.outcome(both, {"a": _m(-0.1, -0.3, 0.1)}) == "not supported"
    assert "inconclusive" in VERDICTS


def test_function_conditions_grammar():
    m = {"d": _m(0.01, -0.02, 0.03), "series": {"0.2": _m(0.5, 0.4, 0.6)}, "n": 3.0}
    assert rules.holds("equivalent(d, 0.05)", m) and not rules.holds("equivalent(d, 0.02)", m)
    assert rules.holds("inconclusive(d, 0.02)", m) and not rules.holds("inconclusive(d, 0.05)", m)
    assert rules.holds("equivalent(d, -0.03, 0.04)", m) and not rules.holds("equivalent(d, 0, 0.04)", m)
    assert rules.holds("straddles(series/0.2, 0.5)", m) and not rules.holds("straddles(series/0.2, 0.7)", m)
    bad = (
        "equivalent(d)",
        "equivalent(d, 0)",  # a margin must be > 0
        "equivalent(d, 0.1, -0.1)",  # low < high
        "straddles(d, 0, 1)",
        "equivalent(d:lo, 0.05)",  # the function reads the whole interval
        "tost(d, 0.05)",
        "equivalent(__import__('os'), 1)",
    )
    for cond in bad:
        with pytest.raises(rules.RuleError):
            rules.holds(cond, m)
    with pytest.raises(rules.RuleError, match="plain number"):
        rules.holds("straddles(n, 0)", m)
    with pytest.raises(rules.RuleError, match="inconclusive"):
        rules.check_rule({**THRESHOLD_RULE, "inconclusive": []})
    with pytest.raises(rules.RuleError):
        rules.check_rule({**THRESHOLD_RULE, "inconclusive": ["gain ~ 0"]})


# ----------------------------------------------------------------------------- robustness variants
TESTABLE = [c for c in CLAIMS if "fixed" not in c.get("rule", {})]


@pytest.mark.parametrize("claim", TESTABLE, ids=[c["id"] for c in TESTABLE])
def test_every_testable_claim_declares_its_reasonable_alternatives(claim):
    assert claim.get("variants"), f"{claim['id']}: data/claims.yml needs `variants:` (issue 24, item 5)"
    rules.check_variants(claim["variants"], claim["rule"], claim["id"])


def test_variants_substitute_the_metrics_the_rule_reads():
    rule = {"says": "x", "levels": [{"verdict": "supported", "when": ["gain:lo > 0"]}], "otherwise": "not supported"}
    m = {
        "gain": {"mean": 0.2, "lo": 0.1, "hi": 0.3},
        "gain_strict": {"mean": 0.0, "lo": -0.1, "hi": 0.1},
        "by": {"greedy": {"mean": 0.1, "lo": 0.05, "hi": 0.2}},
    }
    assert rules.outcome(rule, rules.substitute(m, {"gain": "gain_strict"})) == "not supported"
    assert rules.outcome(rule, rules.substitute(m, {"gain": "by/greedy"})) == "supported"
    with pytest.raises(rules.RuleError, match="not in the results"):
        rules.substitute(m, {"gain": "missing"})
    rules.check_variants([{"name": "strict", "use": {"gain": "gain_strict"}}], rule)
    for bad in (
        [],
        [{"name": "x"}],
        [{"name": "x", "use": {"other": "gain_strict"}}],
        [{"name": "x", "use": {"gain": "gain > 0"}}],
    ):
        with pytest.raises(rules.RuleError):
            rules.check_variants(bad, rule)


def test_judge_reports_k_of_n_variants_and_names_those_that_disagree():
    ex = next(c for c in CLAIMS if c["id"] == "lab-room-for-rl")["rule"]["examples"]["supported"]
    room = {"mean": 0.01, "lo": -0.01, "hi": 0.03}
    metrics = {
        **ex,
        "base_pass_at_1_lenient_r1": ex["base_pass_at_1_r1"],
        "base_room_lenient_r1": ex["base_room_r1"],
        "base_pass_at_1_t1": ex["base_pass_at_1_r1"],
        "base_room_t1": {"addition": room, "countdown": room},
        "base_pass_at_1_lenient_t1": ex["base_pass_at_1_r1"],
        "base_room_lenient_t1": ex["base_room_r1"],
    }
    out = rules.judge("lab-room-for-rl", metrics, "Evidence.")
    assert out["verdict"] == "supported"
    assert [v["verdict"] for v in out["variants"]] == ["supported", "not supported", "supported"]
    assert "2 of 3 variants agree; disagree: sampling at T = 1 → not supported." in out["evidence"]
    assert rules.agreement("supported", []) == ""
