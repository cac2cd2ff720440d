"""Thesis chapter: benchmark intervals, the simulation, interconnect arithmetic, rules, a dry run."""

import json
from dataclasses import replace

import numpy as np
import pytest

from minir1 import benchmarks, claims, cost_data, interconnect, ledger, rules
from minir1.cost import load_model_config
from minir1.experiments import thesis
from minir1.stats import Metric
from minir1.utils import repo_root

THESIS_RULES = ("thesis-match", "thesis-chips", "thesis-inference-cost", "thesis-replicate")


# ----------------------------------------------------------------------------- benchmarks
def test_score_vector_keeps_the_mean_and_range():
    for s, n in ((0.798, 30), (0.0, 5), (1.0, 7), (0.973, 500)):
        v = benchmarks.score_vector(s, n)
        assert v.shape == (n,) and v.min() >= 0 and v.max() <= 1
        assert v.mean() == pytest.approx(s)


def test_interval_narrows_with_more_problems():
    small, big = benchmarks.score_interval(0.8, 30), benchmarks.score_interval(0.8, 500)
    assert small.hi - small.lo > 3 * (big.hi - big.lo)
    # binomial half-width at n = 30: 1.96 * sqrt(.8 * .2 / 30) = 0.143
    assert (small.hi - small.lo) / 2 == pytest.approx(0.143, abs=0.03)


def test_paired_vectors_overlap_as_if_independent():
    va, vb = benchmarks.paired_vectors(0.5, 0.5, 100, "independent")
    assert va.mean() == pytest.approx(0.5) and vb.mean() == pytest.approx(0.5)
    assert ((va == 1) & (vb == 1)).sum() == 25  # 50 * 50 / 100
    va, vb = benchmarks.paired_vectors(0.5, 0.3, 100, "nested")
    assert ((vb == 1) & (va == 0)).sum() == 0  # weaker solves a subset


def test_nested_pairing_gives_the_narrower_difference():
    ind, nes = benchmarks.difference(0.75, 0.70, 200), benchmarks.difference(0.75, 0.70, 200, "nested")
    assert ind.mean == pytest.approx(0.05) and nes.mean == pytest.approx(0.05)
    assert nes.hi - nes.lo < ind.hi - ind.lo


def test_compare_reads_the_interval():
    big = benchmarks.difference(0.9, 0.5, 500)
    assert benchmarks.compare(big) == "leads"
    assert benchmarks.compare(benchmarks.difference(0.5, 0.9, 500)) == "trails"
    assert benchmarks.compare(benchmarks.difference(0.8, 0.79, 30)) == "tie"


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="score"):
        benchmarks.score_vector(79.8, 30)
    with pytest.raises(ValueError, match="n"):
        benchmarks.score_vector(0.5, 0)
    with pytest.raises(ValueError, match="pairing"):
        benchmarks.difference(0.5, 0.4, 30, "other")
    with pytest.raises(ValueError, match="acc_worse"):
        benchmarks.population(0.5, 0.6, 10, shared=0.5, seed=0)


def test_population_and_match_or_exceed():
    vb, vw = benchmarks.population(0.8, 0.7, 50_000, shared=1.0, seed=0)
    assert vb.mean() == pytest.approx(0.8, abs=0.01) and vw.mean() == pytest.approx(0.7, abs=0.01)
    assert ((vw == 1) & (vb == 0)).sum() == 0  # nested
    # Nested, a 10-point gap: the worse ties only if no drawn problem separates them.
    p = benchmarks.match_or_exceed(vb, vw, 30, draws=2000, seed=1)
    assert p.mean == pytest.approx(0.9**30, abs=0.02)
    same = benchmarks.match_or_exceed(vb, vb, 30, draws=100, seed=1)
    assert same.mean == 1.0  # equal models always "match"
    small = benchmarks.match_or_exceed(
        *benchmarks.population(0.8, 0.77, 20_000, shared=0.0, seed=2), 30, draws=2000, seed=3
    )
    large = benchmarks.match_or_exceed(
        *benchmarks.population(0.8, 0.77, 20_000, shared=0.0, seed=2), 500, draws=2000, seed=3
    )
    assert small.mean > large.mean + 0.2


# ----------------------------------------------------------------------------- interconnect
def test_v3_bytes_and_flops_per_token_layer():
    v3 = load_model_config("deepseek-v3")
    b = interconnect.bytes_per_token_layer(v3)
    assert b["ib"] == 4 * 7168 * (1 + 2 + 2 + 2)  # 4 nodes, FP8 + BF16 forward, BF16 backward
    assert b["nvlink"] == 8 * 7168 * 7
    f = interconnect.flops_per_token_layer(v3, 4096)
    assert f["experts"] == 3 * 2 * 9 * 3 * 7168 * 2048  # (8 routed + 1 shared) SwiGLU experts
    # 61 such layers come close to the ~250 GFLOPs/token the ISCA paper states for 4K context
    assert 61 * f["layer"] / 1e9 == pytest.approx(250, rel=0.05)


def test_comm_compute_ratios():
    v3 = load_model_config("deepseek-v3")
    r = interconnect.comm_compute(v3, 4096, achieved_flops=1e14, ib_bytes_per_s=1e9, nvlink_bytes_per_s=1e12)
    assert r["t_comm"] == r["t_ib"] > r["t_nvlink"]
    assert r["slowdown_without_overlap"] == pytest.approx(1 + r["comm_over_layer"])
    assert interconnect.achieved_flops_per_gpu(2.0, 1800.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="max_nodes"):
        interconnect.Transfer(max_nodes=0)


# ----------------------------------------------------------------------------- "match" by equivalence
def _d(mean, lo, hi):
    return Metric(mean, lo, hi, unit="diff")


@pytest.mark.parametrize(
    "diff, call",
    [
        (_d(0.006, -0.19, 0.21), "inconclusive"),  # AIME: a wide interval is no match
        (_d(-0.01, -0.017, -0.003), "matches"),  # MMLU: below 0, but inside the margin
        (_d(0.02, 0.01, 0.03), "matches"),  # exceeds
        (_d(-0.169, -0.19, -0.15), "trails"),  # SimpleQA
        (_d(-0.05, -0.07, -0.05), "trails"),  # upper end on the margin's edge
        (_d(-0.04, -0.06, -0.02), "inconclusive"),  # crosses -5 points
    ],
)
def test_noninferiority_against_the_declared_margin(diff, call):
    assert benchmarks.noninferiority(diff, 0.05) == call
    with pytest.raises(ValueError, match="margin"):
        benchmarks.noninferiority(diff, 5)


def test_count_calls():
    c = benchmarks.count_calls(["matches", "trails", "inconclusive", "inconclusive"])
    assert c == {"n_match": 1.0, "n_trail": 1.0, "n_inconclusive": 2.0, "n_decided": 2.0, "n_benchmarks": 4.0}
    with pytest.raises(ValueError, match="calls"):
        benchmarks.count_calls(["tie"])


def test_match_covers_every_table4_benchmark_with_an_o1_entry():
    cfg = thesis.config("cpu")
    table4 = {r["benchmark"] for r in thesis._csv("published_benchmarks") if "Table 4" in r["source"]}
    with_o1 = {b for b in table4 if "o1-1217" in thesis.load_benchmarks()[b]["scores"]}
    assert with_o1 - {"codeforces_rating"} == set(cfg.benchmarks) | set(cfg.unsized)
    bench = thesis.load_benchmarks()
    assert all(bench[b]["n"] for b in cfg.benchmarks) and not any(bench[b]["n"] for b in cfg.unsized)
    assert bench["simpleqa"]["scores"]["r1"] == pytest.approx(0.301) and bench["simpleqa"]["n"] == 4326
    assert bench["aider_polyglot"]["scores"]["o1-1217"] == pytest.approx(0.617) and bench["aider_polyglot"]["n"] == 225


def test_match_metrics_on_the_published_table():
    m, extra = thesis.match_metrics(thesis.config("cpu"))
    calls = extra["match_calls"]["primary"]
    assert calls["simpleqa"] == "trails" and calls["aime2024"] == "inconclusive" and calls["mmlu"] == "matches"
    assert m["match_n_match"] + m["match_n_trail"] + m["match_n_inconclusive"] == m["match_n_benchmarks"] == 8
    # the first edition's rule (trails when hi < 0), nested pairing, SimpleQA added: 3 trailing vs 3 not
    assert m["match_zero_margin_nested_with_simpleqa"] == {"n_trail": 3.0, "n_not_trailing": 3.0}
    counts = m["match_counts"]
    assert counts["unsized_inconclusive"]["n_inconclusive"] == m["match_n_inconclusive"] + 2
    assert counts["first_five"]["n_benchmarks"] == 5 and counts["math_science"]["n_benchmarks"] == 3
    for variant in counts.values():  # every variant the rule names is computed
        assert set(variant) == {"n_match", "n_trail", "n_inconclusive", "n_decided", "n_benchmarks"}


# ----------------------------------------------------------------------------- cost per solved problem
def _seeds(*xs, n=600):
    return Metric(sum(xs) / len(xs), min(xs), max(xs), per_seed=xs, n=n, method="seeds")


def test_solved_cost_ratio_has_an_interval_and_is_not_exact():
    fpa_t, fpa_b = _seeds(77.5, 77.5, 77.5), _seeds(36.3, 36.6, 36.0)
    lenient_t, lenient_b = _seeds(1.0, 1.0, 1.0), Metric(0.484, 0.447, 0.521, per_seed=(0.485, 0.488, 0.479), n=600)
    r = benchmarks.solved_cost_ratio(fpa_t, lenient_t, fpa_b, lenient_b)
    assert r.method == "conservative" and r.lo < r.mean < r.hi and len(r.per_seed) == 3
    assert r.lo < 1 < r.hi  # answer-level: about the same per solved problem
    strict_b = Metric(0.019, 0.0135, 0.0255, per_seed=(0.016, 0.022, 0.020), n=600)
    assert benchmarks.solved_cost_ratio(fpa_t, lenient_t, fpa_b, strict_b).hi < 0.1  # strict: a format failure
    with pytest.raises(ValueError, match="accuracies"):
        benchmarks.solved_cost_ratio(fpa_t, Metric(0, 0, 0), fpa_b, lenient_b)


# ----------------------------------------------------------------------------- replications, ledger
def test_replication_classes_follow_the_recorded_criteria():
    reps = thesis.load_replications()
    assert all(r["class"] == r["scope"] for r in reps)  # the hand label agrees with the protocol's criteria
    by = {r["project"]: r["class"] for r in reps}
    assert by["DeepScaleR-1.5B"] == "rl-on-distill" and by["TinyZero"] == "r1-zero" and by["open-r1"] == "full-r1"
    row = {"scope": "", "rl": "true", "from_base": "true", "multi_stage": "true", "general_eval": "false"}
    assert cost_data.replication_class(row) == "r1-zero"


def test_the_books_bill_is_the_ledgers_one_figure(tmp_path):
    res = thesis.run(thesis.dry_run(thesis.config("smoke")), seeds=[0])
    whole = ledger.bill(ledger.ledger_rows(repo_root() / "book" / "results"))[-1]
    assert res.metrics["book_cpu_hours"] == pytest.approx(whole["cpu_hours"])
    assert res.metrics["book_n_results_files"] + res.metrics["book_n_models"] == len(
        ledger.ledger_rows(repo_root() / "book" / "results")
    )
    assert ledger.book_bill(tmp_path / "none")["cpu_hours"] == 0.0


def test_missing_upstream_metrics_are_tolerated_only_in_smoke_and_dry_runs(tmp_path, monkeypatch):
    src = repo_root() / "book" / "results"
    up = tmp_path / "results"
    up.mkdir()
    for ch in ("distillation", "engineering"):
        obj = json.loads((src / f"{ch}.json").read_text())
        if ch == "distillation":
            obj["metrics"] = {k: v for k, v in obj["metrics"].items() if "lenient" not in k}
        (up / f"{ch}.json").write_text(json.dumps(obj))
    rel = str(up.relative_to(repo_root())) if up.is_relative_to(repo_root()) else str(up)
    cfg = thesis.dry_run(replace(thesis.config("cpu"), upstream=rel))
    missing: list = []
    thesis.inference_metrics(cfg, missing)
    assert "big_base_pass_at_1_lenient" in missing
    with pytest.raises(KeyError, match="lenient"):
        thesis.inference_metrics(replace(cfg, tolerate_missing=False), [])


# ----------------------------------------------------------------------------- rules
# ----------------------------------------------------------------------------- rules
@pytest.mark.parametrize("claim_id", THESIS_RULES)
def test_each_rule_comes_out_each_way(claim_id):
    rule = rules.rule_of(claim_id)
    outcomes = {lv["verdict"] for lv in rule["levels"]} | {rule["otherwise"]}
    outcomes |= {"inconclusive"} if "inconclusive" in rule else set()
    assert set(rule["examples"]) == outcomes
    for verdict, example in rule["examples"].items():
        assert rules.outcome(rule, example) == verdict, (claim_id, verdict)


def test_not_testable_claims_are_fixed_and_listed():
    reg = claims.claims_by_id()
    ids = [r["id"] for r in thesis.load_not_testable()]
    assert len(ids) == 5
    for i in ids:
        assert reg[i]["chapter"] == "thesis" and reg[i]["rule"]["fixed"] == "not testable here"


def test_data_files_have_sources():
    for rows in (
        thesis._csv("published_benchmarks"),
        thesis._csv("published_hardware"),
        thesis._csv("published_prices"),
        thesis._csv("published_replications"),
    ):
        assert rows and all(r["source"] and r["primary"] in ("true", "false") for r in rows)


def test_bad_profile_and_config():
    with pytest.raises(ValueError, match="profile"):
        thesis.config("laptop")
    with pytest.raises(ValueError, match="pairing"):
        thesis.ThesisConfig(pairing="both")


# ----------------------------------------------------------------------------- dry run
def test_dry_run_emits_every_thesis_claim():
    cfg = thesis.dry_run(thesis.config("gpu"))
    res = thesis.run(cfg, seeds=[0])
    out = res.claims
    assert out == thesis.verdicts(res.metrics, cfg)
    assert res.config is cfg and res.wall_seconds > 0 and res.flops == 0.0
    ids = {c["id"] for c in out}
    assert ids == {c["id"] for c in claims.load_claims() if c["chapter"] == "thesis"}
    assert all(c["verdict"] for c in out)
    m = res.metrics
    assert m["match_n_match"] + m["match_n_trail"] + m["match_n_inconclusive"] == m["match_n_benchmarks"]
    assert all(c.get("variants") for c in out if c["id"] in THESIS_RULES)
    assert m["mini_solved_cost_ratio"].method == "conservative"  # from samples: never exact
    assert 0 <= m["sim_ours"]["independent"]["30"].mean <= 1
    assert np.isfinite(m["ep_comm_over_layer"]["h800"])
