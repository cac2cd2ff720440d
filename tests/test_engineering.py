"""Tests of the engineering chapter's code: the KV cache against its formula, MoE routing
against top-k + shared, active parameters against what a token touches, the ledger, the
compute multiplier on hand-made curves and the verdict."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from minir1 import architectures as arch
from minir1 import kvcache, ledger, routing
from minir1.cost import (
    count_params,
    kv_cache_bytes_per_token,
    load_model_config,
    load_published_costs,
)
from minir1.curves import compute_multiplier, trailing_curve
from minir1.experiments import engineering as eng
from minir1.results import VERDICTS, write_record
from minir1.stats import over_seeds, paired_seeds

CFG = eng.config("smoke")
SHAPE = CFG.shape  # d_model 32, 2 layers, 4 experts, top-1
MOE_SHAPE = replace(SHAPE, n_routed_experts=6, top_k=2, n_shared_experts=1, first_k_dense=1, n_layer=3)
VOCAB = 40


@pytest.fixture(scope="module")
def configs():
    return arch.model_configs(SHAPE, VOCAB)


@pytest.fixture(scope="module")
def moe():
    return arch.build_model(arch.moe_config(MOE_SHAPE, VOCAB), seed=0)


def ids(n_tokens, batch=1, seed=0):
    return torch.randint(4, VOCAB, (batch, n_tokens), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("name", ["dense_active", "mha", "gqa", "moe"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_measured_cache_bytes_equal_formula(configs, name, dtype):
    """HF's cache holds exactly what minir1.cost predicts: MLA's latent + RoPE key, or K and V
    of every KV head (MHA, GQA)."""
    model = arch.build_model(configs[name])
    kv = kvcache.measure_kv_cache(model, dtype=dtype)
    width = torch.empty(0, dtype=dtype).element_size()
    assert kv["cache_bytes_per_token"] == kv_cache_bytes_per_token(configs[name], dtype_bytes=width)


def test_mla_expands_the_latent_per_head_at_every_step(configs):
    """The discrepancy, precisely: HF stores the latent but materialises per-head keys
    (nope + rope) and values of the whole context in every layer at each decoding step."""
    c = configs["dense_active"]
    kv = kvcache.measure_kv_cache(arch.build_model(c))
    per_head = c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim
    assert kv["expanded_bytes_per_token"] == c.num_hidden_layers * c.num_attention_heads * per_head * 2
    assert kvcache.measure_kv_cache(arch.build_model(configs["mha"]))["expanded_bytes_per_token"] == 0


def test_decode_benchmark_cache_grows_with_context(configs):
    models = {n: arch.build_model(configs[n]) for n in ("dense_active", "mha")}
    out = kvcache.decode_benchmark(models, [8, 16], batch=2, steps=2, repeats=1)
    for name, per_ctx in out.items():
        per_token = kv_cache_bytes_per_token(configs[name], dtype_bytes=4)
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


@pytest.mark.parametrize("name", ["moe", "dense_active", "mha", "gqa"])
def test_active_params_equal_what_one_token_touches(configs, name):
    model = arch.build_model(configs[name])
    assert routing.touched_params(model, ids(1)) == count_params(configs[name])["active"]


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


# ----------------------------------------------------------------------------- configs
def test_v3_shape_counts_like_the_real_v3_config():
    assert count_params(arch.moe_config(*arch.v3_shape(), tie=False)) == count_params(load_model_config("deepseek-v3"))


def test_models_are_matched_in_parameters(configs):
    n = count_params(configs["moe"])
    slack = 3 * SHAPE.d_model * SHAPE.n_layer  # one unit of MLP width
    for name, target in (("dense_active", "active"), ("dense_total", "total"), ("mha", "active"), ("gqa", "active")):
        assert abs(count_params(configs[name])["total"] - n[target]) <= slack, name
    assert configs["gqa"].num_key_value_heads == SHAPE.gqa_kv_heads


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="'smoke', 'cpu', 'gpu'"):
        eng.config("laptop")
    with pytest.raises(ValueError, match="'moe'"):
        arch.check_model("mixtral")
    with pytest.raises(ValueError, match="dense_steps_factor"):
        eng.EngineeringConfig(dense_steps_factor=0.5)


def test_a_tiny_moe_trains_and_its_run_is_measured(configs):
    cfg = replace(eng.config("smoke"), steps=3, smooth=2)
    docs = [f"{a}+{b}={a + b}" for a in range(30) for b in range(10)]
    run = eng.train_run("moe", configs["moe"], _tok(), docs, docs[:20], cfg, seed=0)
    per_step = cfg.batch_size * cfg.seq_len
    assert run.flops == [6.0 * count_params(configs["moe"])["active"] * per_step * s for s in (1, 2, 3)]
    assert len(run.loss) == len(run.wall) == 3 and all(math.isfinite(x) for x in run.loss)
    assert math.isfinite(run.heldout_loss) and math.isfinite(run.heldout_loss_per_doc)
    assert all(abs(sum(layer) - 1) < 1e-9 for layer in run.expert_load)


def test_same_seed_same_run(configs):
    cfg = replace(eng.config("smoke"), steps=3, smooth=2)
    docs = [f"{a}*{b}={a * b}" for a in range(30) for b in range(10)]
    a, b = (eng.train_run("moe", configs["moe"], _tok(), docs, docs[:20], cfg, seed=1) for _ in range(2))
    assert a.loss == b.loss and a.heldout_loss == b.heldout_loss and a.expert_load == b.expert_load


def test_time_train_steps_times_every_model(configs):
    models = {n: arch.build_model(configs[n]) for n in ("moe", "dense_active")}
    times = routing.time_train_steps(models, ids(16, batch=2), repeats=2)
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())
    assert all(not m.training for m in models.values())


def _tok():
    from minir1.tokenizer import build_tokenizer

    return build_tokenizer()


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


# ----------------------------------------------------------------------------- verdict
def _metrics(mult=(1.3, 1.4, 1.5), mla_diff=(0.0, 0.01, 0.005), moe_diff=(-0.05, -0.04, -0.06), tokens=22.0):
    zero = (0.0,) * len(mla_diff)
    m = {
        "moe_compute_multiplier": over_seeds(mult, unit="ratio"),
        "moe_compute_multiplier_lower_bounds": 0.0,
        "moe_minus_dense_active_loss_equal_flops": paired_seeds(moe_diff, zero),
        "moe_compute_multiplier_vs_mha": over_seeds([1.1, 1.2, 1.0], unit="ratio"),
        "moe_total_over_active": 3.2,
        "moe_wall_multiplier": over_seeds([0.9, 0.8, 1.0], unit="ratio"),
        "moe_time_per_token_ratio": over_seeds([1.2, 1.3], unit="ratio"),
        "moe_expert_load_max_over_mean": over_seeds([2.0, 2.5, 3.0]),
        "moe_expert_load_cv": over_seeds([0.3, 0.4]),
        "moe_tokens_per_active_param": tokens,
        "min_tokens_per_active_param": 20.0,
        "quality_tolerance": 0.02,
        "mla_kv_bytes_per_token": 320.0,
        "mha_kv_bytes_per_token": 1024.0,
        "gqa_kv_bytes_per_token": 512.0,
        "mha_over_mla_kv_bytes": 3.2,
        "mla_kv_expanded_bytes_per_token": 1280.0,
        "mla_minus_mha_heldout_loss": paired_seeds(mla_diff, zero),
        "params_active": {"moe": 46096.0},
    }
    return {**m, **eng.v3_context_metrics()}


@pytest.mark.parametrize(
    "mult, moe_diff, mla_diff, kv, tokens, verdict",
    [
        ((1.3, 1.4, 1.5), (-0.05, -0.04, -0.06), (0.0, 0.01, 0.005), 320.0, 22.0, "supported"),
        ((1.2, 0.95, 1.1), (-0.05, -0.03, -0.04), (0.0, 0.01, 0.005), 320.0, 22.0, "partly supported"),  # MoE weak
        ((1.3, 1.4, 1.5), (-0.05, -0.04, -0.06), (0.03, 0.05, 0.04), 320.0, 22.0, "partly supported"),  # MLA costs
        ((0.9, 1.0, 0.95), (0.01, 0.0, 0.02), (0.0, 0.01, 0.005), 1024.0, 22.0, "not supported"),
        ((1.3, 1.4, 1.5), (-0.05, -0.04, -0.06), (0.0, 0.01, 0.005), 320.0, 0.6, "not testable here"),
    ],
)
def test_verdict_follows_the_metrics(mult, moe_diff, mla_diff, kv, tokens, verdict):
    m = _metrics(mult, mla_diff, moe_diff, tokens)
    m["mla_kv_bytes_per_token"] = kv
    m["mha_over_mla_kv_bytes"] = m["mha_kv_bytes_per_token"] / kv
    (c,) = eng.verdicts(m, CFG)
    assert c["id"] == "cost-clever-engineering" and c["verdict"] == verdict and c["verdict"] in VERDICTS
    assert "FP8" in c["evidence"] and "lower bound" not in c["evidence"]


def test_verdict_names_lower_bounds_and_missing_metrics():
    m = _metrics()
    m["moe_compute_multiplier_lower_bounds"] = 2.0
    assert "2 of 3 seeds are lower bounds" in eng.verdicts(m, CFG)[0]["evidence"]
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


def test_cpu_profile_reaches_the_regime_the_rule_reads():
    cfg = eng.config("cpu")
    n = count_params(arch.model_configs(cfg.shape, len(_tok()))["moe"])["active"]
    assert cfg.steps * cfg.batch_size * cfg.seq_len / n >= cfg.min_tokens_per_active_param


def test_dry_run_trains_the_gpu_shapes_for_two_steps_on_cpu():
    cfg = eng.dry_run(eng.config("gpu"))
    assert cfg.shape == eng.PROFILES["gpu"].shape and cfg.steps == 2 and cfg.dry_run
    res = eng.run(cfg, [0])
    assert res.config is cfg and res.wall_seconds > 0 and res.flops == eng.chapter_flops(res.detail)
    assert res.claims == eng.verdicts(res.metrics, cfg)
    assert (
        res.detail[0]["moe"].params["active"]
        == count_params(arch.model_configs(cfg.shape, len(_tok()))["moe"])["active"]
    )
    assert [c["id"] for c in res.claims] == ["cost-clever-engineering"]
    assert res.claims[0]["verdict"] == "not testable here"  # two steps are far from 20 tokens/param


# ----------------------------------------------------------------------------- determinism
def test_padded_experts_match_hf_eager_and_any_thread_count(moe):
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Experts

    experts = next(m for m in moe.modules() if isinstance(m, DeepseekV3Experts))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, experts.hidden_dim, generator=g)  # (N, d)
    idx = torch.stack([torch.randperm(experts.num_experts, generator=g)[:1] for _ in range(40)])  # (N, 1)
    idx[:7] = 0  # expert 0 gets a 5-11-row batch: the sizes MKL computes differently on 2 threads
    w = torch.rand(40, 1, generator=g)
    ref = DeepseekV3Experts.forward(experts, x, idx, w)
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append(experts(x, idx, w))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])
    assert torch.allclose(outs[0], ref, atol=1e-6)


def test_sequence_balance_loss_pushes_the_overloaded_expert_down():
    E, B, T = 4, 2, 8
    logits = torch.zeros(B * T, E, requires_grad=True)  # equal affinities
    balanced = torch.arange(B * T).remainder(E).view(-1, 1)
    assert float(routing.sequence_balance_loss(logits, balanced, B, alpha=1.0).detach()) == pytest.approx(1.0)
    skewed = torch.zeros(B * T, 1, dtype=torch.long)  # every token to expert 0
    routing.sequence_balance_loss(logits, skewed, B, alpha=1e-4).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def test_parallel_seeds_give_the_same_bits_as_one_process(configs):
    cfg = replace(eng.config("smoke"), steps=3, smooth=2)
    docs = [f"{a}+{b}={a + b}" for a in range(30) for b in range(10)]
    sub = {n: configs[n] for n in ("moe", "dense_active")}
    one = eng.train_seeds([0, 1], sub, _tok(), docs, docs[:20], cfg, "cpu")
    two = eng.train_seeds([0, 1], sub, _tok(), docs, docs[:20], replace(cfg, workers=2), "cpu")
    for s in (0, 1):
        for n in sub:
            assert one[s][n].loss == two[s][n].loss and one[s][n].heldout_loss == two[s][n].heldout_loss
