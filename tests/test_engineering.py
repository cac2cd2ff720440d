"""Tests of the engineering chapter's code: the three attentions in one implementation, the KV
cache against its formula, MoE routing against top-k + shared, active and total parameters
against what a token touches, the training loop, the ledger, the compute multiplier on
hand-made curves, the metrics and the verdict."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from minir1 import architectures as arch
from minir1 import kvcache, ledger, routing
from minir1.cost import count_params, load_model_config, load_published_costs
from minir1.curves import compute_multiplier, trailing_curve
from minir1.experiments import engineering as eng
from minir1.results import VERDICTS, write_record
from minir1.stats import over_seeds, paired_seeds

CFG = eng.config("smoke")
SHAPE = CFG.shape  # the smoke profile's largest scale: d_model 24, 1 layer, 8 experts, top-2
MOE_SHAPE = replace(SHAPE, n_routed_experts=6, top_k=2, n_shared_experts=1, first_k_dense=1, n_layer=3)
ATT_SHAPE = replace(SHAPE, n_layer=2, n_head=4, gqa_kv_heads=2)
VOCAB = 40


@pytest.fixture(scope="module")
def configs():
    return arch.model_configs(ATT_SHAPE, VOCAB)


@pytest.fixture(scope="module")
def moe():
    return arch.build_model(arch.moe_config(MOE_SHAPE, VOCAB), seed=0)


def ids(n_tokens, batch=1, seed=0):
    return torch.randint(4, VOCAB, (batch, n_tokens), generator=torch.Generator().manual_seed(seed))


def _tok():
    from minir1.tokenizer import build_tokenizer

    return build_tokenizer()


# ----------------------------------------------------------------------------- one implementation, three attentions
def test_the_three_attentions_share_every_module_and_weight_outside_attention(configs):
    """MHA, GQA and MLA are the same DeepseekV3 model: every module outside the attention block
    has the same class and every parameter the same shape and (for one seed) the same initial
    values; inside it, MHA/GQA keep MLA's query and output projections and replace only K/V."""
    models = {n: arch.build_model(configs[n], seed=3) for n in ("dense_active", "mha", "gqa")}

    def outside(m):
        return {k: v for k, v in m.named_modules() if ".self_attn" not in k and not k.endswith("self_attn")}

    ref = outside(models["dense_active"])
    ref_p = {k: p for k, p in models["dense_active"].named_parameters() if ".self_attn." not in k}
    for name in ("mha", "gqa"):
        m = models[name]
        assert {k: type(v) for k, v in outside(m).items()} == {k: type(v) for k, v in ref.items()}, name
        other = {k: p for k, p in m.named_parameters() if ".self_attn." not in k}
        assert other.keys() == ref_p.keys() and all(torch.equal(other[k], ref_p[k]) for k in ref_p), name
        for la, lb in zip(models["dense_active"].model.layers, m.model.layers):
            assert type(la.self_attn).__name__ == "DeepseekV3Attention" and isinstance(lb.self_attn, arch.HeadAttention)
            assert isinstance(lb.self_attn, type(la.self_attn))  # a subclass: the same query path and output
            for k in ("q_proj", "o_proj"):
                assert torch.equal(getattr(la.self_attn, k).weight, getattr(lb.self_attn, k).weight)
            assert not hasattr(lb.self_attn, "kv_b_proj") and not hasattr(la.self_attn, "k_proj")
    assert {arch.attention_of(configs[n]) for n in ("dense_active", "mha", "gqa")} == {"mla", "mha", "gqa"}


@pytest.mark.parametrize("name", ["mha", "gqa"])
def test_head_attention_decodes_with_its_cache_as_without(configs, name):
    """Keys and values in the cache: the next-token logits of incremental decoding equal those
    of one full forward pass (RoPE positions, cache and GQA grouping all right)."""
    from transformers import DynamicCache

    model = arch.build_model(configs[name], seed=1)
    x = ids(12, batch=2)
    with torch.no_grad():
        full = model(input_ids=x).logits[:, -3:]
        cache = DynamicCache(config=model.config)
        model(input_ids=x[:, :-3], cache=cache, use_cache=True)
        steps = [model(input_ids=x[:, i : i + 1], cache=cache, use_cache=True).logits for i in range(9, 12)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_gqa_with_one_group_per_head_is_mha(configs):
    """GQA with as many KV heads as query heads computes exactly what MHA does."""
    c = arch.attention_config(configs["dense_active"], ATT_SHAPE.n_head)
    a, b = arch.build_model(configs["mha"], seed=2), arch.build_model(c, seed=2)
    x = ids(10)
    with torch.no_grad():
        assert torch.equal(a(input_ids=x).logits, b(input_ids=x).logits)
    with pytest.raises(ValueError, match="n_kv_heads"):
        arch.attention_config(configs["dense_active"], 3)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", ["moe", "dense_active", "mha", "gqa"])
def test_param_counts_equal_the_built_model_and_what_one_token_touches(configs, name):
    model = arch.build_model(configs[name])
    n = arch.param_counts(configs[name])
    assert n["total"] == sum(p.numel() for p in model.parameters())
    assert routing.touched_params(model, ids(1)) == n["active"]


def test_moe_active_and_total_parameters_by_hand():
    """The cpu profile's MoEs, counted by hand: every layer holds attention, two norms, a router
    (E × d), one shared expert and E routed experts (3 · d · d_expert each); a token uses the
    shared expert and top-k routed ones.  Sparsity is 7-9× at every scale (V3: 18×; the first
    edition: 2.9×), and grows with scale."""
    V, ratios = len(_tok()), []
    for _, s in eng.config("cpu").scales:
        c = arch.moe_config(s, V)
        d, E, k, de = s.d_model, s.n_routed_experts, s.top_k, s.d_expert
        qk = s.qk_nope_head_dim + s.qk_rope_head_dim
        att = d * s.n_head * qk + d * (s.kv_lora_rank + s.qk_rope_head_dim) + s.kv_lora_rank
        att += s.kv_lora_rank * s.n_head * (s.qk_nope_head_dim + s.v_head_dim) + s.n_head * s.v_head_dim * d
        expert, shared = 3 * d * de, V * d + d  # embedding (tied) + final norm
        per_layer = att + 2 * d + E * d + s.n_shared_experts * expert
        n = arch.param_counts(c)
        assert n["total"] == shared + s.n_layer * (per_layer + E * expert)
        assert n["active"] == shared + s.n_layer * (per_layer + k * expert)
        assert n["total"] == sum(p.numel() for p in arch.build_model(c).parameters())
        ratios.append(n["total"] / n["active"])
    assert all(7 <= r <= 9 for r in ratios) and ratios == sorted(ratios)


def test_v3_shape_counts_like_the_real_v3_config():
    assert count_params(arch.moe_config(*arch.v3_shape(), tie=False)) == count_params(load_model_config("deepseek-v3"))


def test_dense_baseline_is_matched_to_the_moe_active_parameters(configs):
    n = arch.param_counts(configs["moe"])["active"]
    assert abs(arch.param_counts(configs["dense_active"])["total"] - n) <= 3 * ATT_SHAPE.d_model * ATT_SHAPE.n_layer
    assert configs["gqa"].num_key_value_heads == ATT_SHAPE.gqa_kv_heads


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("name", ["dense_active", "mha", "gqa", "moe"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_measured_cache_bytes_equal_formula(configs, name, dtype):
    """The cache holds exactly what the formula says: MLA's latent + RoPE key, or K and V of
    every KV head (MHA, GQA)."""
    kv = kvcache.measure_kv_cache(arch.build_model(configs[name]), dtype=dtype)
    width = torch.empty(0, dtype=dtype).element_size()
    assert kv["cache_bytes_per_token"] == arch.kv_bytes_per_token(configs[name], dtype_bytes=width)


def test_mla_expands_the_latent_per_head_at_every_step(configs):
    c = configs["dense_active"]
    kv = kvcache.measure_kv_cache(arch.build_model(c))
    per_head = c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim
    assert kv["expanded_bytes_per_token"] == c.num_hidden_layers * c.num_attention_heads * per_head * 2
    assert kvcache.measure_kv_cache(arch.build_model(configs["mha"]))["expanded_bytes_per_token"] == 0


def test_decode_benchmark_cache_grows_with_context(configs):
    models = {n: arch.build_model(configs[n]) for n in ("dense_active", "mha")}
    out = kvcache.decode_benchmark(models, [8, 16], batch=2, steps=2, repeats=1)
    for name, per_ctx in out.items():
        per_token = arch.kv_bytes_per_token(configs[name], dtype_bytes=4)
        for ctx, rec in per_ctx.items():
            assert rec["cache_bytes"] == 2 * (ctx + 2) * per_token  # prompt + decoded tokens, 2 rows
            assert len(rec["ms_per_step"]) == 1 and rec["ms_per_step"][0] > 0


# ----------------------------------------------------------------------------- routing
def test_each_token_uses_exactly_top_k_routed_plus_shared_experts(moe):
    mon = routing.RouterMonitor(moe)
    shared_tokens = []
    handles = [
        layer.mlp.shared_experts.register_forward_hook(
            lambda m, a, o: shared_tokens.append(a[0].reshape(-1, a[0].shape[-1]).shape[0])
        )
        for layer in moe.model.layers
        if hasattr(layer.mlp, "shared_experts")
    ]
    x = ids(10, batch=3)
    with torch.no_grad():
        moe(input_ids=x)
    mon.detach()
    for h in handles:
        h.remove()
    n_moe_layers = MOE_SHAPE.n_layer - MOE_SHAPE.first_k_dense
    assert len(mon.routers) == n_moe_layers and shared_tokens == [x.numel()] * n_moe_layers
    for idx, counts in zip(mon.last_indices, mon.counts):
        assert idx.shape == (x.numel(), MOE_SHAPE.top_k)
        assert all(len(set(row)) == MOE_SHAPE.top_k for row in idx.tolist())  # k distinct experts
        assert counts.sum() == x.numel() * MOE_SHAPE.top_k


def test_only_the_chosen_experts_get_gradient_and_matter(moe):
    """For one token, exactly the router's top-k experts receive gradient; changing the
    weights of any other expert leaves the output bit-for-bit unchanged."""
    x = ids(1)
    mon = routing.RouterMonitor(moe)
    moe.zero_grad()
    moe(input_ids=x, labels=x).logits.sum().backward()
    mon.detach()
    layers = [layer.mlp for layer in moe.model.layers if hasattr(layer.mlp, "experts")]
    for mlp, idx in zip(layers, mon.last_indices):
        chosen = set(idx[0].tolist())
        grad = mlp.experts.gate_up_proj.grad.abs().sum(dim=(1, 2))  # (E,)
        assert {e for e in range(len(grad)) if grad[e] > 0} == chosen
        assert mlp.shared_experts.gate_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        before = moe(input_ids=x).logits
        mlp, chosen = layers[-1], set(mon.last_indices[-1][0].tolist())
        other = next(e for e in range(MOE_SHAPE.n_routed_experts) if e not in chosen)
        saved = mlp.experts.down_proj[other].clone()
        mlp.experts.down_proj[other] += 1.0
        assert torch.equal(moe(input_ids=x).logits, before)
        mlp.experts.down_proj[other] = saved
        mlp.experts.down_proj[next(iter(chosen))] += 1.0
        assert not torch.equal(moe(input_ids=x).logits, before)
        mlp.experts.down_proj[next(iter(chosen))] -= 1.0


def test_many_tokens_touch_more_experts_than_one(moe):
    n = count_params(moe.config)
    touched = routing.touched_params(moe, ids(64, batch=4))
    assert n["active"] < touched <= n["total"]


def test_bias_update_moves_towards_balance(moe):
    router = next(m for m in moe.modules() if routing._is_router(m))
    mon = routing.RouterMonitor(moe, gamma=0.01)
    bias0 = router.e_score_correction_bias.clone()
    moe.eval()
    with torch.no_grad():
        moe(input_ids=ids(20, batch=2))
    assert torch.equal(router.e_score_correction_bias, bias0)  # eval: counts only
    mon.reset()
    moe.train()
    with torch.no_grad():
        moe(input_ids=ids(20, batch=2))
    moe.eval()
    mon.detach()
    load = mon.counts[0]
    step = router.e_score_correction_bias - bias0
    assert torch.allclose(step.double(), 0.01 * torch.sign(load.mean() - load), atol=1e-7)
    router.e_score_correction_bias.copy_(bias0)


def test_load_balance():
    assert routing.load_balance([[0.5, 0.5], [1.0, 0.0]]) == {"cv": 0.5, "max_over_mean": 2.0}
    with pytest.raises(ValueError, match="fractions"):
        routing.load_balance([])


# ----------------------------------------------------------------------------- configs and training
def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="'smoke', 'cpu', 'gpu'"):
        eng.config("laptop")
    with pytest.raises(ValueError, match="'moe'"):
        arch.check_model("mixtral")
    with pytest.raises(ValueError, match="dense_steps_factor"):
        eng.EngineeringConfig(dense_steps_factor=0.5)
    with pytest.raises(ValueError, match="scales"):
        eng.EngineeringConfig(scales=(("S", SHAPE),))


def test_cpu_profile_reaches_the_regime_the_rule_reads_at_three_growing_scales():
    cfg, V = eng.config("cpu"), len(_tok())
    configs = cfg.configs(V)
    n = [arch.param_counts(configs[sc]["moe"])["active"] for sc, _ in cfg.scales]
    assert len(n) >= 3 and n == sorted(n) and n[-1] >= 3 * n[0]
    for sc, k in zip(configs, n):
        assert cfg.moe_steps(k) * cfg.batch_size * cfg.seq_len / k >= cfg.min_tokens_per_active_param
        assert set(configs[sc]) == set(cfg.models_at(sc))
    assert cfg.n_seeds >= 5 and set(configs["L"]) == {"moe", "dense_active", "mha", "gqa"}
    assert eng.estimate_gpu(eng.config("gpu"))["stages"]  # the gpu profile's jobs are all countable


def _data(seq_len=16, n=60):
    tok = _tok()
    docs = [f"{a}+{b}={a + b}" for a in range(30) for b in range(10)]
    return eng.Data(eng.pack_docs(tok, docs, seq_len), eng.pack_docs(tok, docs[:n], seq_len), tuple(docs[:20]), tok)


def test_train_packed_is_the_book_training_loop_on_packed_windows():
    """The chapter's loop on pre-packed windows gives the same losses as minir1.train.train
    packing the same documents itself."""
    from minir1.train import train

    tok, docs = _tok(), [f"{a}*{b}={a * b}" for a in range(20) for b in range(10)]
    cfg = replace(CFG, batch_size=4, seq_len=16)
    tc = eng.train_config(cfg, 5, seed=3)
    c = arch.model_configs(SHAPE, len(tok))["dense_active"]
    a, b = arch.build_model(c, seed=0, device="cpu"), arch.build_model(c, seed=0, device="cpu")
    ours = eng.train_packed(a, eng.pack_docs(tok, docs, 16), tc)
    ref = train(b, tok, [("", d) for d in docs], tc)
    assert [h["loss"] for h in ours] == pytest.approx([h["loss"] for h in ref.history], abs=1e-6)


def test_a_tiny_moe_trains_and_its_run_is_measured():
    cfg, data = replace(CFG, batch_size=2, seq_len=16, smooth=2), _data()
    c = arch.model_configs(SHAPE, len(_tok()))["moe"]
    run = eng.train_run(eng.Job(0, "L", "moe", c, 3), data, cfg)
    per_step = cfg.batch_size * cfg.seq_len
    assert run.flops == [6.0 * arch.param_counts(c)["active"] * per_step * s for s in (1, 2, 3)]
    assert len(run.loss) == len(run.wall) == 3 and all(math.isfinite(x) for x in run.loss)
    assert math.isfinite(run.heldout_loss) and math.isfinite(run.heldout_loss_per_doc)
    assert all(abs(sum(layer) - 1) < 1e-9 for layer in run.expert_load)


def test_parallel_runs_give_the_same_bits_as_one_process():
    cfg, data = replace(CFG, batch_size=2, seq_len=16, steps=3, smooth=2), _data()
    configs = {
        sc: {n: c for n, c in m.items() if n in ("moe", "dense_active")} for sc, m in cfg.configs(len(_tok())).items()
    }
    jobs = [j for j in eng.jobs_for([0, 1], configs, cfg) if j.scale != "M"]
    one = eng.train_all(jobs, data, cfg, "cpu")
    two = eng.train_all(jobs, data, replace(cfg, workers=2), "cpu")
    for s in (0, 1):
        for sc in ("S", "L"):
            for n in ("moe", "dense_active"):
                assert (
                    one[s][sc][n].loss == two[s][sc][n].loss
                    and one[s][sc][n].heldout_loss == two[s][sc][n].heldout_loss
                )


def test_grouped_experts_match_the_eager_loop_on_any_thread_count(moe):
    """transformers' grouped_mm experts (what build_model uses) equal its eager loop and give the
    same bits on 1 and 2 threads."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Experts

    experts = next(m for m in moe.modules() if isinstance(m, DeepseekV3Experts))
    assert moe.config._experts_implementation == "grouped_mm"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, experts.hidden_dim, generator=g)  # (N, d)
    idx = torch.stack([torch.randperm(experts.num_experts, generator=g)[:2] for _ in range(40)])  # (N, 2)
    idx[:7, 0] = 0  # expert 0 gets a 5-11-row batch: the sizes MKL computes differently on 2 threads
    w = torch.rand(40, 2, generator=g)
    moe.config._experts_implementation = "eager"
    try:
        ref = experts(x, idx, w)
    finally:
        moe.config._experts_implementation = "grouped_mm"
    outs, threads = [], torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append(experts(x, idx, w))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1]) and torch.allclose(outs[0], ref, atol=1e-6)


def test_padded_eager_experts_match_hf_eager(moe):
    """The fallback for widths grouped_mm cannot take (make_deterministic) equals HF's loop."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Experts

    experts = next(m for m in moe.modules() if isinstance(m, DeepseekV3Experts))
    g = torch.Generator().manual_seed(1)
    x, idx = (
        torch.randn(30, experts.hidden_dim, generator=g),
        torch.randint(0, experts.num_experts, (30, 1), generator=g),
    )
    w = torch.rand(30, 1, generator=g)
    out = routing._deterministic_experts_forward(experts, x, idx, w)
    moe.config._experts_implementation = "eager"
    try:
        assert torch.allclose(out, experts(x, idx, w), atol=1e-6)
    finally:
        moe.config._experts_implementation = "grouped_mm"
    odd = arch.moe_config(replace(MOE_SHAPE, d_expert=6), VOCAB)  # 24-byte rows: grouped_mm cannot
    assert arch.build_model(odd).config._experts_implementation == "eager"


def test_time_train_steps_times_every_model(configs):
    models = {n: arch.build_model(configs[n]) for n in ("moe", "dense_active")}
    times = routing.time_train_steps(models, ids(16, batch=2), repeats=2)
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())
    assert all(not m.training for m in models.values())


# ----------------------------------------------------------------------------- curves
FLOPS = [10 ** (9 + 0.1 * i) for i in range(31)]  # 1e9 .. 1e12
LOSS = [12.0 - math.log10(f) for f in FLOPS]  # 3 .. 0, linear in log FLOPs


def test_multiplier_interpolates_in_log_flops():
    m = compute_multiplier(1e10, 1.5, FLOPS, LOSS)  # dense reaches 1.5 at 10^10.5
    assert m.kind == "interpolated" and m.value == pytest.approx(10**0.5, rel=1e-9)


def test_multiplier_bounds():
    low = compute_multiplier(1e10, -1.0, FLOPS, LOSS)
    assert low.kind == "lower bound" and low.value == pytest.approx(100.0)
    high = compute_multiplier(1e10, 5.0, FLOPS, LOSS)
    assert high.kind == "upper bound" and high.value == pytest.approx(0.1)


def test_multiplier_uses_the_first_crossing_of_a_noisy_curve():
    noisy = [2.0, 1.0, 3.0, 0.5]  # dips below 1.2 at the 2nd point, bounces back up
    m = compute_multiplier(10.0, 1.2, [10.0, 100.0, 1000.0, 10000.0], noisy)
    assert m.value == pytest.approx(10**0.8)  # 80% of the way from 2.0 down to 1.0


def test_multiplier_refuses_bad_curves():
    with pytest.raises(ValueError, match="> 0"):
        compute_multiplier(0.0, 1.0, FLOPS, LOSS)
    with pytest.raises(ValueError, match="equally long"):
        compute_multiplier(1.0, 1.0, FLOPS, LOSS[:-1])


def test_trailing_curve():
    assert trailing_curve([1, 2, 3], [3, 2, 1], 5) == ([2.0], [2.0])  # window capped at length
    with pytest.raises(ValueError, match="window"):
        trailing_curve([1], [1], 0)


# ----------------------------------------------------------------------------- ledger
def _results(tmp_path, chapter, flops, wall):
    return write_record(
        chapter,
        profile="cpu",
        seeds=[0],
        config={},
        metrics={"x": 1.0},
        claims=[],
        wall_seconds=wall,
        flops=flops,
        out_dir=tmp_path,
    )


def test_ledger_sums_the_results_files_it_finds(tmp_path):
    _results(tmp_path, "a", 1e15, 3600.0)
    _results(tmp_path, "b", 0.0, 1800.0)
    _results(tmp_path, "bench", 2e15, 360.0)
    rows = ledger.read_ledger(tmp_path)
    assert [r.chapter for r in rows] == ["a", "b", "bench"]  # bench.json included
    cfg = ledger.LedgerConfig(cores=2, usd_per_gpu_hour=2.0, gpu_peak_flops=1e15, assumed_mfu=0.5)
    total = ledger.bill(rows, cfg)[-1]
    assert total["cpu_hours"] == pytest.approx((3600 + 1800 + 360) * 2 / 3600)
    assert total["gpu_hours"] == pytest.approx(3e15 / (1e15 * 0.5) / 3600)
    assert total["usd"] == pytest.approx(2.0 * total["gpu_hours"])
    assert [r.chapter for r in ledger.read_ledger(tmp_path, exclude=("b",))] == ["a", "bench"]
    m = ledger.ledger_metrics(rows, load_published_costs(), cfg)
    assert m["book_n_results_files"] == 3 and m["v3_total_cost_usd"] == pytest.approx(5.576e6)


@pytest.mark.parametrize("drop", ["flops", "wall_seconds"])
def test_ledger_fails_clearly_without_flops_or_wall_time(tmp_path, drop):
    path = _results(tmp_path, "good", 1e12, 10.0)
    obj = json.loads(path.read_text())
    del obj["provenance"][drop]
    (tmp_path / "broken.json").write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=rf"broken\.json.*provenance\.{drop}"):
        ledger.read_ledger(tmp_path)


def test_ledger_folder_and_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ledger.read_ledger(tmp_path / "nowhere")
    assert ledger.read_ledger(tmp_path / "nowhere", missing_ok=True) == []
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        ledger.read_ledger(tmp_path)


# ----------------------------------------------------------------------------- metrics
def _run(name, scale, seed, loss, n_active=1000, total=None, per_step=100):
    return eng.Run(
        name=name,
        seed=seed,
        scale=scale,
        params={"total": total or n_active, "active": n_active},
        loss=list(loss),
        flops=[6.0 * n_active * per_step * (i + 1) for i in range(len(loss))],
        wall=[0.1 * (i + 1) for i in range(len(loss))],
        heldout_loss=loss[-1],
        heldout_loss_per_doc=loss[-1],
        tokens_per_s=1000.0,
        epochs=0.5,
        expert_load=[[0.5, 0.5]] if name == "moe" else [],
    )


def _synthetic_runs(gain=(1.5, 1.6, 1.7), seeds=(0, 1, 2, 3, 4)):
    """MoE curves that a dense curve (loss = 4 − log10 FLOPs step) reaches ``gain`` × later."""
    runs = {}
    for s in seeds:
        runs[s] = {}
        for sc, g, n in zip(("S", "M", "L"), gain, (1000, 2000, 4000)):
            dense = [5.0 - math.log10(i + 1) - 0.001 * s for i in range(40)]
            moe = [5.0 - math.log10(g * (i + 1)) - 0.001 * s for i in range(20)]
            runs[s][sc] = {
                "moe": _run("moe", sc, s, moe, n, 8 * n),
                "dense_active": _run("dense_active", sc, s, dense, n),
            }
        runs[s]["L"]["mha"] = _run("mha", "L", s, runs[s]["L"]["dense_active"].loss[:-1] + [0.6 + 0.001 * s], 4100)
        runs[s]["L"]["gqa"] = _run("gqa", "L", s, runs[s]["L"]["dense_active"].loss[:-1] + [0.62], 3900)
    return runs


def test_metrics_read_the_multiplier_its_trend_and_equal_flops_pairs():
    cfg = replace(CFG, smooth=1, batch_size=10, seq_len=10)
    runs = _synthetic_runs()
    m, extra = eng.moe_metrics(runs, cfg)
    assert [round(m["moe_compute_multiplier_by_scale"][sc].mean, 6) for sc in "SML"] == [1.5, 1.6, 1.7]
    assert (
        m["moe_compute_multiplier"].method == "conservative" and m["moe_compute_multiplier_bootstrap"].method == "seeds"
    )
    assert m["moe_multiplier_trend"].mean == pytest.approx(math.log(1.7 / 1.5) / math.log(4), rel=0.05)
    assert m["moe_tokens_per_active_param"] == pytest.approx(20 * 100 / 4000) and m["moe_total_over_active"] == 8
    assert extra["multiplier_kinds"]["L"] == ["interpolated"] * 5
    att = eng.attention_metrics(runs, cfg)
    diffs = [runs[s]["L"]["dense_active"].heldout_loss - runs[s]["L"]["mha"].heldout_loss for s in runs]
    assert att["mla_minus_mha_heldout_loss"].per_seed == pytest.approx(diffs)
    assert att["mla_minus_mha_heldout_loss_rescaled"]["0.01"].mean == pytest.approx(
        2 * att["mla_minus_mha_heldout_loss"].mean
    )
    spent, pairs = eng.flops_metrics(runs)
    for a, b in pairs["equal_flops"]:  # the test of the published results reads these the same way
        fa, fb = spent["flops_spent"][a].per_seed, spent["flops_spent"][b].per_seed
        assert all(max(x, y) / min(x, y) <= 1.05 for x, y in zip(fa, fb))


# ----------------------------------------------------------------------------- verdict
def _metrics(
    mult=(1.3, 1.4, 1.5, 1.35, 1.45),
    trend=(0.1, 0.0, 0.2, 0.1, 0.15),
    mla_diff=(0.0, 0.005, -0.005, 0.002, 0.0),
    tokens=21.0,
):
    from minir1.stats_hier import conservative

    zero = (0.0,) * len(mla_diff)
    d = paired_seeds(mla_diff, zero)
    m = {
        "moe_compute_multiplier": conservative(over_seeds(mult, unit="ratio")),
        "moe_compute_multiplier_bootstrap": over_seeds(mult, unit="ratio"),
        "moe_compute_multiplier_by_scale": {sc: conservative(over_seeds(mult, unit="ratio")) for sc in "SML"},
        "moe_compute_multiplier_lower_bounds": 0.0,
        "moe_multiplier_trend": conservative(over_seeds(trend)),
        "moe_multiplier_trend_bootstrap": over_seeds(trend),
        "moe_minus_dense_active_loss_equal_flops": paired_seeds((-0.05, -0.04, -0.06, -0.05, -0.05), zero),
        "moe_total_over_active": 8.5,
        "moe_wall_multiplier": over_seeds([0.9, 0.8, 1.0], unit="ratio"),
        "moe_time_per_token_ratio": over_seeds([1.2, 1.3], unit="ratio"),
        "moe_expert_load_max_over_mean": over_seeds([2.0, 2.5, 3.0]),
        "moe_tokens_per_active_param": tokens,
        "min_tokens_per_active_param": 20.0,
        "quality_tolerance": 0.02,
        "mla_kv_bytes_per_token": 80.0,
        "mha_kv_bytes_per_token": 320.0,
        "gqa_kv_bytes_per_token": 160.0,
        "mha_over_mla_kv_bytes": 4.0,
        "mha_over_gqa_kv_bytes": 2.0,
        "mla_kv_expanded_bytes_per_token": 320.0,
        "mla_minus_mha_heldout_loss": conservative(d),
        "mla_minus_mha_heldout_loss_bootstrap": d,
        "mla_minus_mha_heldout_loss_per_doc": conservative(d),
        "mla_minus_mha_heldout_loss_rescaled": {"0.01": conservative(d), "0.04": conservative(d)},
        "gqa_minus_mha_heldout_loss": conservative(d),
    }
    return {**m, **eng.v3_context_metrics()}


@pytest.mark.parametrize(
    "mult, trend, mla_diff, tokens, verdict",
    [
        ((1.3, 1.4, 1.5, 1.35, 1.45), (0.1, 0.0, 0.2, 0.1, 0.15), (0.0, 0.005, -0.005, 0.002, 0.0), 21.0, "supported"),
        (
            (1.3, 1.4, 1.5, 1.35, 1.45),
            (0.1, 0.0, 0.2, 0.1, 0.15),
            (0.05, 0.06, 0.04, 0.05, 0.05),
            21.0,
            "partly supported",
        ),  # MLA costs quality
        (
            (1.3, 1.4, 1.5, 1.35, 1.45),
            (-0.3, -0.2, -0.25, -0.3, -0.2),
            (0.0, 0.005, -0.005, 0.002, 0.0),
            21.0,
            "partly supported",
        ),  # the multiplier falls with scale: the MoE leg fails, MLA's holds
        ((0.9, 1.2, 1.0, 1.1, 0.95), (0.1, 0.0, 0.2, 0.1, 0.15), (0.05, 0.06, 0.04, 0.05, 0.05), 21.0, "inconclusive"),
        (
            (0.8, 0.85, 0.9, 0.8, 0.85),
            (0.1, 0.0, 0.2, 0.1, 0.15),
            (0.0, 0.03, -0.01, 0.02, 0.01),
            21.0,
            "inconclusive",
        ),  # MLA's interval crosses the margin
        (
            (0.8, 0.85, 0.9, 0.8, 0.85),
            (-0.3, -0.2, -0.25, -0.3, -0.2),
            (0.05, 0.06, 0.04, 0.05, 0.05),
            21.0,
            "not supported",
        ),
        (
            (1.3, 1.4, 1.5, 1.35, 1.45),
            (0.1, 0.0, 0.2, 0.1, 0.15),
            (0.0, 0.005, -0.005, 0.002, 0.0),
            6.0,
            "not testable here",
        ),
    ],
)
def test_verdict_follows_the_metrics(mult, trend, mla_diff, tokens, verdict):
    (c,) = eng.verdicts(_metrics(mult, trend, mla_diff, tokens), CFG)
    assert c["id"] == "cost-clever-engineering" and c["verdict"] == verdict and c["verdict"] in VERDICTS
    assert "FP8" in c["evidence"] and "lower bound" not in c["evidence"] and "91–100%" in c["evidence"]
    assert len(c["variants"]) == 7 and "variants agree" in c["evidence"]


def test_a_variant_that_disagrees_is_named():
    m = _metrics(mla_diff=(0.015, 0.012, 0.018, 0.014, 0.016))  # equivalent within 0.02, not within 0.01
    from minir1.stats_hier import conservative

    d = conservative(paired_seeds((0.03, 0.024, 0.036, 0.028, 0.032), (0.0,) * 5))  # the same, × 0.02 / 0.01
    m["mla_minus_mha_heldout_loss_rescaled"] = {"0.01": d, "0.04": m["mla_minus_mha_heldout_loss"]}
    (c,) = eng.verdicts(m, CFG)
    assert c["verdict"] == "supported"
    assert {v["name"]: v["verdict"] for v in c["variants"]}["equivalence margin 0.01 nats"] == "partly supported"
    assert "disagree: equivalence margin 0.01 nats → partly supported" in c["evidence"]


def test_verdict_names_lower_bounds_and_missing_metrics():
    m = _metrics()
    m["moe_compute_multiplier_lower_bounds"] = 2.0
    assert "2 of 5 seeds are lower bounds" in eng.verdicts(m, CFG)[0]["evidence"]
    del m["mla_kv_bytes_per_token"]
    with pytest.raises(ValueError, match="mla_kv_bytes_per_token"):
        eng.verdicts(m, CFG)


def test_verdict_ids_match_the_claims_registry():
    from minir1.claims import claims_by_id

    ids = {k for k, v in claims_by_id().items() if v.get("chapter") == "engineering"}
    assert ids == {c["id"] for c in eng.verdicts(_metrics(), CFG)}


def test_the_companion_module_is_imported_by_the_engineering_chapter_only():
    src = Path(eng.__file__).parents[2]  # src/
    users = {
        p.relative_to(src).as_posix()
        for p in src.rglob("*.py")
        if p.name != "engineering_runs.py" and "engineering_runs" in p.read_text(encoding="utf-8")
    }
    assert users == {"minir1/experiments/engineering.py"}
    assert eng.train_run.__module__ == "minir1.experiments.engineering_runs"  # re-exported by the chapter


def test_dry_run_trains_the_gpu_shapes_for_two_steps_on_cpu():
    cfg = eng.dry_run(eng.config("gpu"))
    assert cfg.scales == eng.PROFILES["gpu"].scales and cfg.steps == 2 and cfg.dry_run
    res = eng.run(cfg, [0])
    assert res.config is cfg and res.wall_seconds > 0 and res.flops == eng.chapter_flops(res.detail)
    assert res.claims == eng.verdicts(res.metrics, cfg)
    for sc, configs in cfg.configs(len(_tok())).items():
        assert res.detail[0][sc]["moe"].params == arch.param_counts(configs["moe"])
    assert [c["id"] for c in res.claims] == ["cost-clever-engineering"]
    assert res.claims[0]["verdict"] == "not testable here"  # two steps are far from 20 tokens/param
