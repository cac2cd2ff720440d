"""Thesis chapter: benchmark intervals, the simulation, interconnect arithmetic, rules, a dry run."""

import numpy as np
import pytest

from minir1 import benchmarks, claims, interconnect
from minir1.cost import load_model_config
from minir1 import rules
from minir1.experiments import thesis

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


# ----------------------------------------------------------------------------- rules
@pytest.mark.parametrize("claim_id", THESIS_RULES)
def test_each_rule_comes_out_each_way(claim_id):
    rule = rules.rule_of(claim_id)
    outcomes = {lv["verdict"] for lv in rule["levels"]} | {rule["otherwise"]}
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
    assert m["match_n_lead"] + m["match_n_trail"] + m["match_n_tie"] == m["match_n_benchmarks"]
    assert 0 <= m["sim_ours"]["independent"]["30"].mean <= 1
    assert np.isfinite(m["ep_comm_over_layer"]["h800"])
