"""Verdict rules as data: each claim's rule lives in ``data/claims.yml``, written before the run.

A rule is a list of levels checked in order; the first level whose conditions all hold gives
the verdict, else ``otherwise``::

    rule:
      says: Supported if RL beats the best equal-FLOPs baseline ...
      levels:
        - verdict: supported
          when: ["rl_vs_best_baseline:lo > 0", "random_reward_gain:hi < 0.05"]
        - verdict: partly supported
          when: ["rl_vs_base:lo > 0"]
      inconclusive: ["straddles(rl_vs_base, 0)"]
      otherwise: not supported
      examples: {supported: {...metrics...}, inconclusive: {...}, not supported: {...}}

A condition is ``<ref> <op> <ref | number>``; ``ref`` is ``metric[/series...][:stat]`` with
``stat`` one of ``mean``, ``lo``, ``hi`` (default ``mean``).  Three functions read a metric's
whole interval (``metric[/series...]``, no stat):

* ``straddles(<metric>, <number>)`` — lo <= number <= hi: the interval straddles the threshold;
* ``equivalent(<metric>, <margin>)`` — two one-sided tests (:func:`minir1.stats_hier.tost`) on
  the metric's interval call it equivalent to 0 within (−margin, +margin); ``equivalent(<metric>,
  <low>, <high>)`` for an asymmetric margin;
* ``inconclusive(<metric>, <margin>)`` (or ``<low>, <high>``) — the same tests are inconclusive:
  the interval crosses an edge of the margin.

The optional ``inconclusive`` list holds conditions that, when all hold, give the verdict
"inconclusive"; it is checked after every level and before ``otherwise``, so a rule says "not
supported" only when the interval excludes the claim.  Conditions are parsed with a regular
expression and evaluated by lookup: nothing from the file or from a model is ``eval``-ed.
``rule: {fixed: not testable here, reason: ...}`` marks a claim this book cannot test; no other
verdict may be fixed.

>>> holds("gain:lo > 0.1", {"gain": {"mean": 0.3, "lo": 0.2, "hi": 0.4}})
True
>>> holds("equivalent(gain, 0.5)", {"gain": {"mean": 0.3, "lo": 0.2, "hi": 0.4}})
True
"""

from __future__ import annotations

import operator
import re
from typing import Any, Mapping

from .claims import claims_by_id
from .results import VERDICTS, claim
from .stats_hier import equivalence

FIXABLE = ("not testable here",)
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
_REF = r"[A-Za-z_][\w.@-]*(?:/[\w.@+-]+)*(?::(?:mean|lo|hi))?"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COND = re.compile(rf"^\s*({_REF})\s*(>=|<=|==|>|<)\s*({_NUMBER}|{_REF})\s*$")
_PATH = r"[A-Za-z_][\w.@-]*(?:/[\w.@+-]+)*"
FUNCTIONS = ("straddles", "equivalent", "inconclusive")
_FN = re.compile(rf"^\s*({'|'.join(FUNCTIONS)})\(\s*({_PATH})\s*,\s*({_NUMBER})\s*(?:,\s*({_NUMBER})\s*)?\)\s*$")


class RuleError(ValueError):
    """A rule in data/claims.yml is malformed, or names a metric the results do not hold."""


def parse(cond: str) -> tuple[str, str, str]:
    """Split a condition into (left ref, op, right ref or number)."""
    m = _COND.match(cond) if isinstance(cond, str) else None
    if not m:
        raise RuleError(
            f"condition {cond!r} is not '<metric[/series][:mean|lo|hi]> <op> <number|metric>' "
            f"with op one of {', '.join(_OPS)}"
        )
    return m.group(1), m.group(2), m.group(3)


def resolve(ref: str, metrics: Mapping[str, Any]) -> float:
    """The number a reference names in ``metrics`` (results-file form or Metric objects)."""
    path, _, stat = ref.partition(":")
    node: Any = metrics
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise RuleError(
                f"rule names metric {path!r}, but {part!r} is not in the results "
                f"(have: {', '.join(sorted(map(str, node))) if isinstance(node, Mapping) else node!r})"
            )
        node = node[part]
    if hasattr(node, "to_dict"):
        node = node.to_dict()
    if isinstance(node, Mapping):
        key = stat or "mean"
        if key not in node:
            raise RuleError(f"metric {path!r} has no {key!r}")
        return float(node[key])
    if stat and stat != "mean":
        raise RuleError(f"metric {path!r} is a plain number; it has no {stat!r}")
    return float(node)


def parse_function(cond: str) -> tuple[str, str, tuple[float, ...]] | None:
    """Split ``straddles|equivalent|inconclusive(<metric>, <number>[, <number>])`` into
    (function, metric path, numbers); None when ``cond`` is not a function condition."""
    m = _FN.match(cond) if isinstance(cond, str) else None
    if not m:
        return None
    fn, path, nums = m.group(1), m.group(2), tuple(float(x) for x in m.groups()[2:] if x is not None)
    if fn == "straddles" and len(nums) != 1:
        raise RuleError(f"condition {cond!r}: straddles takes one threshold")
    if fn != "straddles":
        low, high = (-abs(nums[0]), abs(nums[0])) if len(nums) == 1 else nums
        if len(nums) == 1 and nums[0] <= 0 or not low < high:
            raise RuleError(f"condition {cond!r}: the margin must be > 0, or low < high")
    return fn, path, nums


def check_condition(cond: str) -> None:
    """Raise :class:`RuleError` unless ``cond`` is a comparison or a function condition."""
    if parse_function(cond) is None:
        parse(cond)


def _holds_function(fn: str, path: str, nums: tuple[float, ...], metrics: Mapping[str, Any]) -> bool:
    lo, hi = resolve(f"{path}:lo", metrics), resolve(f"{path}:hi", metrics)
    if fn == "straddles":
        return lo <= nums[0] <= hi
    margin = nums[0] if len(nums) == 1 else nums
    return equivalence(lo, hi, margin) == fn


def is_number(text: str) -> bool:
    """Is ``text`` a number literal of the condition grammar (else a metric reference)?"""
    return re.fullmatch(_NUMBER, text) is not None


def holds(cond: str, metrics: Mapping[str, Any]) -> bool:
    fn = parse_function(cond)
    if fn is not None:
        return _holds_function(*fn, metrics)
    left, op, right = parse(cond)
    rhs = float(right) if is_number(right) else resolve(right, metrics)
    return bool(_OPS[op](resolve(left, metrics), rhs))


def check_rule(rule: Mapping[str, Any], where: str = "rule") -> None:
    """Raise :class:`RuleError` when ``rule`` is malformed (used when the registry is loaded)."""
    if not isinstance(rule, Mapping):
        raise RuleError(f"{where}: must be a mapping with 'levels' and 'otherwise', or 'fixed'")
    if "fixed" in rule:
        if rule["fixed"] not in FIXABLE:
            raise RuleError(f"{where}: only {FIXABLE} may be fixed; got {rule['fixed']!r}")
        if not rule.get("reason"):
            raise RuleError(f"{where}: a fixed verdict needs a 'reason'")
        return
    if not rule.get("says"):
        raise RuleError(f"{where}: needs 'says' (the rule in words)")
    levels = rule.get("levels")
    if not isinstance(levels, list) or not levels:
        raise RuleError(f"{where}: 'levels' must be a non-empty list")
    for i, lv in enumerate(levels):
        if lv.get("verdict") not in VERDICTS:
            raise RuleError(f"{where}: levels[{i}].verdict must be one of {VERDICTS}; got {lv.get('verdict')!r}")
        if not isinstance(lv.get("when"), list) or not lv["when"]:
            raise RuleError(f"{where}: levels[{i}].when must be a non-empty list of conditions")
        for c in lv["when"]:
            check_condition(c)
    if "inconclusive" in rule:
        inc = rule["inconclusive"]
        if not isinstance(inc, list) or not inc:
            raise RuleError(f"{where}: 'inconclusive' must be a non-empty list of conditions")
        for c in inc:
            check_condition(c)
    if rule.get("otherwise") not in VERDICTS:
        raise RuleError(f"{where}: 'otherwise' must be one of {VERDICTS}; got {rule.get('otherwise')!r}")


def outcome(rule: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """The verdict ``rule`` gives for ``metrics``."""
    check_rule(rule)
    if "fixed" in rule:
        return rule["fixed"]
    for lv in rule["levels"]:
        if all(holds(c, metrics) for c in lv["when"]):
            return lv["verdict"]
    if "inconclusive" in rule and all(holds(c, metrics) for c in rule["inconclusive"]):
        return "inconclusive"
    return rule["otherwise"]


def rule_of(claim_id: str) -> Mapping[str, Any]:
    reg = claims_by_id()
    if claim_id not in reg:
        raise RuleError(f"unknown claim id {claim_id!r}; data/claims.yml has {', '.join(reg)}")
    if "rule" not in reg[claim_id]:
        raise RuleError(f"claim {claim_id!r} has no rule in data/claims.yml")
    return reg[claim_id]["rule"]


# ----------------------------------------------------------------------------- robustness
def check_variants(variants: Any, rule: Mapping[str, Any], where: str = "variants") -> None:
    """Raise :class:`RuleError` unless ``variants`` is a list of ``{name, use}`` whose ``use`` maps
    metrics the rule reads to the results metrics that replace them."""
    if not isinstance(variants, list) or not variants:
        raise RuleError(f"{where}: must be a non-empty list of {{name, use}}")
    read = {name for c in conditions(rule) for name in _reads(c)}
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping) or not v.get("name") or not isinstance(v.get("use"), Mapping) or not v["use"]:
            raise RuleError(f"{where}[{i}]: needs 'name' and 'use' (a mapping rule metric -> results metric)")
        for old, new in v["use"].items():
            if old not in read:
                raise RuleError(
                    f"{where}[{i}] ({v['name']}): {old!r} is not a metric the rule reads ({', '.join(sorted(read))})"
                )
            if not isinstance(new, str) or not re.fullmatch(_PATH, new):
                raise RuleError(f"{where}[{i}] ({v['name']}): {old!r} must map to a metric path; got {new!r}")


def conditions(rule: Mapping[str, Any]) -> list[str]:
    """Every condition a rule reads (its levels' and its ``inconclusive`` list's)."""
    return [c for lv in rule.get("levels", []) for c in lv["when"]] + list(rule.get("inconclusive", []))


def _reads(cond: str) -> list[str]:
    """The top-level metric names a condition reads (both sides of a comparison)."""
    fn = parse_function(cond)
    refs = [fn[1]] if fn else [r for r in parse(cond)[::2] if not is_number(r)]
    return [ref.partition(":")[0].split("/")[0] for ref in refs]


def substitute(metrics: Mapping[str, Any], use: Mapping[str, str]) -> dict:
    """``metrics`` with each metric the rule reads (``use``'s keys) replaced by the results metric
    its variant names (``use``'s values, ``metric[/series...]``)."""
    out = dict(metrics)
    for old, new in use.items():
        node: Any = metrics
        for part in new.split("/"):
            if not isinstance(node, Mapping) or part not in node:
                raise RuleError(
                    f"variant reads {new!r}, but {part!r} is not in the results (a rule's `examples` lack "
                    "variant metrics: tests use minir1.rules.example_metrics(claim_id, verdict))"
                )
            node = node[part]
        out[old] = node
    return out


def robustness(claim_id: str, metrics: Mapping[str, Any]) -> list[dict]:
    """The claim's verdict re-judged under each reasonable alternative its ``variants`` list in
    ``data/claims.yml`` (a metric, a decoding, a hardware peak, a comparator or benchmark set):
    ``[{"name", "verdict"}, ...]``; empty for a claim without variants."""
    c, rule = claims_by_id()[claim_id], rule_of(claim_id)
    return [
        {"name": v["name"], "verdict": outcome(rule, substitute(metrics, v["use"]))} for v in c.get("variants") or []
    ]


def example_metrics(claim_id: str, verdict: str) -> dict:
    """The rule's example for ``verdict`` with every variant's metric set to the metric it replaces
    (so each variant agrees): what a test of a chapter's ``verdicts`` passes in."""
    c = claims_by_id()[claim_id]
    out = dict(rule_of(claim_id)["examples"][verdict])
    for v in c.get("variants") or []:
        for old, new in v["use"].items():
            node = out
            parts = new.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node.setdefault(parts[-1], out[old])
    return out


def agreement(verdict: str, variants: list[dict]) -> str:
    """ "k of n variants agree", naming those that do not."""
    if not variants:
        return ""
    off = [f"{v['name']} → {v['verdict']}" for v in variants if v["verdict"] != verdict]
    text = f"{len(variants) - len(off)} of {len(variants)} variants agree"
    return f"Robustness: {text}" + (f"; disagree: {'; '.join(off)}." if off else ".")


def judge(claim_id: str, metrics: Mapping[str, Any], evidence: str) -> dict:
    """The claim's verdict by its rule in ``data/claims.yml``, with ``evidence``, the verdict under
    each declared variant ("k of n variants agree") and the rule's words."""
    rule = rule_of(claim_id)
    verdict = outcome(rule, metrics)
    says = rule.get("says") or rule.get("reason", "")
    variants = robustness(claim_id, metrics) if "fixed" not in rule else []
    text = f"{evidence} {agreement(verdict, variants)} Rule:".replace("  ", " ")
    text = f"{text} {' '.join(str(says).split())}"
    out = claim(claim_id, verdict, text)
    if variants:
        out["variants"] = variants
    return out


__all__ = [
    "RuleError",
    "parse",
    "parse_function",
    "check_condition",
    "resolve",
    "holds",
    "is_number",
    "check_rule",
    "outcome",
    "rule_of",
    "judge",
    "conditions",
    "check_variants",
    "substitute",
    "robustness",
    "agreement",
    "example_metrics",
]
