"""Tests of minir1.cost: parameter counts against the models transformers builds, the
published arithmetic of the cost chapter, and the input checks."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    DeepseekV3Config,
    LlamaConfig,
    Qwen2Config,
)

from minir1 import cost, cost_data, rules
from minir1.cost import (
    MatmulBench,
    count_params,
    implied_mfu,
    kv_cache_bytes_per_token,
    load_model_config,
    load_published_costs,
    training_flops,
)
from minir1.experiments import cost as cost_exp
from minir1.results import VERDICTS


def tiny_llama(**kw):
    base = dict(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaConfig(**{**base, **kw})


def tiny_qwen2(**kw):
    base = dict(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return Qwen2Config(**{**base, **kw})


def tiny_v3(**kw):
    """MoE with a shared expert, 8 routed experts (top-2) and 1 dense layer first; MLA."""
    base = dict(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=16,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_shared_experts=1,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_group=2,
        topk_group=1,
        first_k_dense_replace=1,
        kv_lora_rank=16,
        q_lora_rank=24,
        qk_rope_head_dim=8,
        qk_nope_head_dim=8,
        v_head_dim=8,
        max_position_embeddings=64,
    )
    return DeepseekV3Config(**{**base, **kw})


def build(config, seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once


TINY = {
    "llama": tiny_llama(),
    "llama-tied": tiny_llama(tie_word_embeddings=True),
    "llama-bias": tiny_llama(attention_bias=True, mlp_bias=True),
    "llama-head_dim": tiny_llama(head_dim=16),
    "qwen2": tiny_qwen2(),
    "qwen2-tied": tiny_qwen2(tie_word_embeddings=True),
    "v3": tiny_v3(),
    "v3-no-q-lora": tiny_v3(q_lora_rank=None),
    "v3-2-shared-2-dense": tiny_v3(n_shared_experts=2, first_k_dense_replace=2, num_hidden_layers=4),
    "v3-bias-tied": tiny_v3(attention_bias=True, tie_word_embeddings=True),
}


# ----------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("name", list(TINY))
def test_count_params_total_equals_numel_of_built_model(name):
    config = TINY[name]
    counts = count_params(config)
    assert counts["total"] == numel(build(config))
    if config.model_type != "deepseek_v3":
        assert counts["active"] == counts["total"]  # dense: every parameter is used
    assert counts["total"] == cost.numel_on_meta(config)


def test_moe_active_params_match_a_manual_count():
    # tiny_v3: d=32, V=50, H=4, 3 layers (1 dense, 2 MoE), q_rank 24, kv_rank 16, rope 8,
    # nope 8, v 8, d_ff 64, expert d_ff 16, 8 routed experts (top-2), 1 shared expert.
    attn = 32 * 24 + 24 + 24 * 4 * 16 + 32 * (16 + 8) + 16 + 16 * 4 * (8 + 8) + 4 * 8 * 32
    layer = attn + 2 * 32  # + two RMSNorms
    expert, router = 3 * 32 * 16, 8 * 32
    dense_mlp = 3 * 32 * 64
    outside = 50 * 32 + 50 * 32 + 32  # embedding, head, final norm
    active = 3 * layer + dense_mlp + 2 * (2 * expert + expert + router) + outside
    total = 3 * layer + dense_mlp + 2 * (8 * expert + expert + router) + outside
    assert attn == 5160 and active == 34776 and total == 53208
    assert count_params(tiny_v3()) == {"total": total, "active": active}


def test_moe_active_params_equal_what_one_token_touches():
    """Run one token, read the router's choice in each MoE layer, and count every parameter
    outside the routed experts plus the chosen experts' slices."""
    config = tiny_v3()
    model = build(config)
    chosen = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: chosen.append(out[2].flatten().tolist()))
        for m in model.modules()
        if type(m).__name__ == "DeepseekV3TopkRouter"
    ]
    with torch.no_grad():
        model(torch.tensor([[7]]))
    for h in hooks:
        h.remove()
    assert len(chosen) == 2 and all(len(set(c)) == config.num_experts_per_tok for c in chosen)
    experts = [m for m in model.modules() if type(m).__name__ == "DeepseekV3Experts"]
    expert_ids = {id(p) for e in experts for p in e.parameters()}
    touched = sum(p.numel() for p in model.parameters() if id(p) not in expert_ids)
    for e, ids in zip(experts, chosen):
        touched += len(set(ids)) * (e.gate_up_proj[0].numel() + e.down_proj[0].numel())
    assert touched == count_params(config)["active"]


def test_real_configs_give_published_sizes():
    v3 = count_params(load_model_config("deepseek-v3"))
    assert v3 == {"total": 671_026_404_352, "active": 37_552_282_624}
    # 37.55B active; 36.63B without the input embedding, the report's "37B activated"
    assert round(v3["total"] / 1e9) == 671 and round(v3["active"] / 1e9) == 38
    mtp = cost.mtp_params(load_model_config("deepseek-v3"))
    assert round((v3["total"] + mtp["stored"]) / 1e9) == 684  # model card: "685B" incl. 14B MTP
    assert round(count_params(load_model_config("llama-3.1-405b"))["total"] / 1e9) == 406
    assert round(count_params(load_model_config("qwen2.5-72b"))["total"] / 1e8) == 727


def test_unsupported_config_type_is_a_clear_error():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="model_type must be one of 'llama', 'qwen2', 'deepseek_v3'"):
        count_params(GPT2Config())
    with pytest.raises(ValueError, match="model config must be one of"):
        load_model_config("gpt-5")
    with pytest.raises(ValueError, match="mtp_params needs a 'deepseek_v3' config"):
        cost.mtp_params(tiny_llama())


# ----------------------------------------------------------------------------- KV cache
def test_real_config_kv_bytes_are_exact():
    assert kv_cache_bytes_per_token(load_model_config("deepseek-v3")) == 70_272
    assert kv_cache_bytes_per_token(load_model_config("llama-3.1-405b")) == 516_096
    assert kv_cache_bytes_per_token(load_model_config("qwen2.5-72b")) == 327_680


@pytest.mark.parametrize("name", ["llama", "qwen2", "v3"])
def test_kv_bytes_equal_what_transformers_caches(name):
    config, T = TINY[name], 5
    with torch.no_grad():
        out = build(config)(torch.arange(1, T + 1)[None], use_cache=True)
    cached = sum(t.numel() * t.element_size() for layer in out.cache.layers for t in (layer.keys, layer.values))
    assert cached == T * kv_cache_bytes_per_token(config, dtype_bytes=4)  # float32 model


# ----------------------------------------------------------------------------- FLOPs, MFU, dollars
def test_6nd():
    assert training_flops(1e9, 1e12) == 6e21
    assert training_flops(37e9, 14.8e12) == pytest.approx(3.2856e24, rel=1e-12)
    assert training_flops(0, 10) == 0.0


def test_attention_term_follows_chinchilla():
    config = tiny_llama()  # 2 layers, 4 heads of 8: forward 2·T·H·(d_qk + d_v) per layer
    assert cost.attention_flops_per_token(config, 10) == 3 * 2 * 2 * 10 * 4 * (8 + 8)
    assert cost.attention_flops_per_token(config, 9, causal=True) == 3 * 2 * 2 * 5 * 4 * 16
    n_active = count_params(config)["active"]
    assert cost.training_flops_with_attention(config, 100, 10) == (6 * n_active * 100 + 100 * 3 * 2 * 2 * 10 * 4 * 16)


def test_v3_dollars_are_exact():
    pub = load_published_costs()
    bill = cost.v3_bill(pub)
    assert bill["total"] == 5.576e6 == pub["v3_total_cost_usd"].value
    assert bill["pre-training"] == 5.328e6
    assert sum(v for k, v in bill.items() if k != "total") == pytest.approx(5.576e6, abs=1e-6)


def test_implied_mfu_of_v3_and_llama_lies_in_the_published_range():
    pub = load_published_costs()
    lo, hi = (f(pub[k].value for k in cost.MFU_PUBLISHED) for f in (min, max))
    for run in cost.published_runs(pub).values():
        assert lo <= run.mfu() <= hi, run
    peak = pub["h100_bf16_dense_flops"].value
    assert implied_mfu(6 * 37e9 * 14.8e12, 2.664e6, peak) == pytest.approx(0.3464, abs=1e-4)


def test_published_costs_rows_are_complete():
    pub = load_published_costs()
    assert all(f.source and f.cite and f.unit for f in pub.values())
    assert not pub["r1_rl_gpu_hours"].primary and pub["llama405b_gpu_hours"].primary
    assert pub["v3_total_gpu_hours"].value == sum(
        pub[k].value
        for k in ("v3_pretraining_gpu_hours", "v3_context_extension_gpu_hours", "v3_post_training_gpu_hours")
    )


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: training_flops(-1, 10), "n_active_params"),
        (lambda: training_flops(1, -10), "n_tokens"),
        (lambda: training_flops(float("nan"), 10), "n_active_params"),
        (lambda: implied_mfu(1e20, 0, 1e12), "gpu_hours"),
        (lambda: implied_mfu(1e20, 10, -1), "peak_flops_per_s"),
        (lambda: kv_cache_bytes_per_token(tiny_llama(), dtype_bytes=0), "dtype_bytes"),
        (lambda: cost.attention_flops_per_token(tiny_llama(), -4), "seq_len"),
    ],
)
def test_negative_sizes_raise_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------------------- verdicts, machine
CFG = cost_exp.config("smoke")


def _metrics():
    pub = load_published_costs()
    configs = {n: load_model_config(n) for n in cost_exp.MODEL_CONFIGS}
    m = cost.cost_metrics(pub, configs)
    return {**m, **cost_exp.comparison_metrics(pub, m["r1_compute_cost_usd"], CFG)}


def test_verdicts_cover_the_chapter_claims():
    claims = cost_exp.verdicts(_metrics(), CFG)
    assert [c["id"] for c in claims] == ["cost-final-run", "cost-fraction-of-compute"]
    assert all(c["verdict"] in VERDICTS for c in claims)
    assert "$5.58M" in claims[0]["evidence"] and "34.6%" in claims[0]["evidence"]
    assert "article's own basis" in claims[1]["evidence"]
    assert all(c["variants"] and "variants agree" in c["evidence"] for c in claims)
    with pytest.raises(rules.RuleError, match="not in the results"):
        cost_exp.verdicts({}, CFG)


def _ratio(lo, hi):
    return {"mean": (lo * hi) ** 0.5, "lo": lo, "hi": hi}


def test_verdict_follows_the_numbers():
    m = _metrics()
    too_few_hours = {**m, "v3_implied_mfu_bf16_with_attention": 2 * m["mfu_published_max"]}
    assert cost_exp.verdicts(too_few_hours, CFG)[0]["verdict"] == "not supported"
    big_gap = {**m, "r1_all_in_over_reported": _ratio(2.5, 90)}
    assert cost_exp.verdicts(big_gap, CFG)[0]["verdict"] == "supported"
    no_gap = {**m, "r1_all_in_over_reported": _ratio(1.05, 1.5)}
    assert cost_exp.verdicts(no_gap, CFG)[0]["verdict"] == "partly supported"
    assert cost_exp.verdicts(m, CFG)[0]["verdict"] == "inconclusive"  # documented 1.05x .. with hardware 91x
    cheap = {**m, "frontier_over_r1_compute": _ratio(200.0, 200.0)}
    assert cost_exp.verdicts(cheap, CFG)[1]["verdict"] == "supported"
    straddle = {**m, "frontier_over_r1_compute": _ratio(4.0, 15.0)}
    assert cost_exp.verdicts(straddle, CFG)[1]["verdict"] == "inconclusive"
    dear = {**m, "frontier_over_r1_compute": _ratio(2.0, 2.0)}
    assert cost_exp.verdicts(dear, CFG)[1]["verdict"] == "not supported"


def test_variants_read_each_peak_and_comparator_set():
    m = _metrics()
    assert m["v3_implied_mfu_fp8"] == pytest.approx(0.1731, abs=1e-4)
    assert m["v3_implied_mfu_fp8"] < m["mfu_published_min"] == 0.213
    final, fraction = cost_exp.verdicts(m, CFG)
    by_name = {v["name"]: v["verdict"] for v in final["variants"]}
    assert by_name["FP8 peak (V3 trained its matmuls in FP8)"] == "not supported"  # 17.3% < the 21.3% floor
    sets = {v["name"]: v["verdict"] for v in fraction["variants"]}
    assert sets["2023 comparators only (GPT-4, Gemini Ultra; AI Index 2024)"] == "partly supported"  # 13.3x
    assert fraction["verdict"] == "not supported"  # Claude 3.5 Sonnet, $20M-$50M: 3.4x-8.5x
    assert "disagree" in fraction["evidence"]


def test_comparators_and_all_in_are_arithmetic_on_sourced_figures():
    pub = load_published_costs()
    costs = cost_data.comparator_costs(pub)
    assert costs["llama405b"] == (30.84e6 * 2, 30.84e6 * 2) and costs["claude35_sonnet"] == (20e6, 50e6)
    for _, lo, hi, _ in cost_data.COMPARATORS.values():
        assert pub[lo].source and pub[hi].source
    assert pub["claude35_sonnet_training_cost_usd_low"].primary and not pub["gpt4_training_cost_usd"].primary
    r = cost_data.cheapest_ratio(costs, list(costs), 5.87e6)
    assert (r.lo, r.hi) == pytest.approx((20e6 / 5.87e6, 50e6 / 5.87e6)) and r.lo <= r.mean <= r.hi
    allin = cost_data.all_in_over_reported(pub)
    assert allin.lo == pytest.approx((5.576e6 + 294e3) / 5.576e6) and allin.mean == allin.lo
    assert allin.hi == pytest.approx((5.576e6 + 294e3 + 500e6) / 5.576e6)
    items = cost_data.all_in_items(pub)
    assert all(i["source"] for i in items) and any(i["usd"] is None for i in items)
    with pytest.raises(ValueError, match="names"):
        cost_data.cheapest_ratio(costs, [], 1.0)


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (cost_data._data_dir()).glob("published_*.csv")) + ["not_testable"]
)
def test_every_published_figure_names_its_source_and_primary_or_secondary(name):
    rows = cost_data.load_csv(name)  # raises naming the row when either is missing
    assert rows and all(r["source"].strip() and r["primary"] in ("true", "false") for r in rows)


def test_config_resolves_profiles_and_dry_run_runs_gpu_shapes():
    with pytest.raises(ValueError, match="profile"):
        cost_exp.config("tpu")
    if not torch.cuda.is_available():  # a reader's laptop: the gpu profile falls back to the cpu benchmarks
        assert cost_exp.config("gpu") == cost_exp.PROFILES["cpu"]
    cfg = cost_exp.dry_run(cost_exp.PROFILES["gpu"])
    assert cfg.dry_run and not cost_exp.PROFILES["gpu"].dry_run
    assert cfg.bench.n == 8192 and cfg.benches()["float32"].device == "cpu"
    res = cost_exp.run(cfg, seeds=[0])
    assert res.metrics["machine_matmul_flops_per_s"].mean > 0
    assert [c["id"] for c in res.claims] == ["cost-final-run", "cost-fraction-of-compute"]
    assert res.claims == cost_exp.verdicts(res.metrics, cfg)
    assert res.config is cfg and res.wall_seconds > 0 and res.flops > 0


def test_matmul_flops_are_positive_and_cached(tmp_path):
    bench = MatmulBench(n=64, repeats=3, inner=2)
    samples = cost.matmul_flops_samples(bench)
    assert len(samples) == 3 and all(s > 0 and math.isfinite(s) for s in samples)
    assert cost.measure_matmul_flops(n=64, repeats=2) > 0
    path = tmp_path / "machine_flops.json"
    cost.record_machine_flops(bench, samples, path)
    assert path.exists()
    with pytest.raises(ValueError, match="dtype must be"):
        cost.matmul_flops_samples(MatmulBench(dtype="float16"))
