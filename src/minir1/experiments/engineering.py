"""Clever engineering: what DeepSeek's mixture of experts and latent attention buy.

The engineering chapter (``notebooks/06_engineering.ipynb``) trains tiny models on the lab's
corpus (:mod:`minir1.corpus`) and measures the two architectural mechanisms of the V3 report
(arXiv 2412.19437, §2.1) at our scale:

- **Mixture of experts (MoE).** ``transformers``' ``DeepseekV3ForCausalLM`` with one shared
  and several routed experts, top-k sigmoid routing, against dense models with the same
  *active* and the same *total* parameters: loss against training FLOPs (6·N_active·D) and
  wall time, the compute multiplier at equal loss (:func:`compute_multiplier`), how evenly
  the router spreads tokens, and what routing costs in wall time on a CPU.
- **Multi-head latent attention (MLA)** against multi-head (MHA) and grouped-query attention
  (GQA): KV-cache bytes per token measured on the cache tensors (:func:`measure_kv_cache`),
  decoding speed and memory at growing context, held-out loss at about equal parameters.

Deviations from V3 and choices, stated rather than hidden:

- *Load balancing.* HF's router adds ``e_score_correction_bias`` to the scores when it picks
  experts, but that buffer starts at zero, nothing in ``transformers`` updates it, and the
  model returns no auxiliary loss: trained as is, HF's DeepseekV3 has **no** load balancing.
  :class:`RouterMonitor` adds V3's auxiliary-loss-free update (§2.1.2): after every training
  forward pass each expert's bias moves by γ towards balance (−γ if it received more tokens
  than the mean, +γ if fewer); V3 uses γ = 0.001 over ~10⁵ steps, we use γ = 0.01 over ~10³.
  V3's complementary sequence-wise auxiliary loss (α = 0.0001) is added through the router's
  output (:func:`minir1.routing.sequence_balance_loss`), so the training loop is unchanged.
- *Models* come from :mod:`minir1.architectures`.  *Baselines.* The dense models of the MoE
  comparison are the same DeepseekV3 model with dense MLPs (``first_k_dense_replace =
  n_layer``): same MLA attention, so only the MLP differs.  The dense Llama (MHA) model with
  the same active parameters is reported as well;
  against it the MoE's multiplier mixes the MoE and MLA effects.
- *Routing groups.* Node-limited routing (V3: 8 groups, 4 chosen per token) bounds traffic
  between machines; on one CPU we use a single group.
- *Curves.* Training losses on batches the model has not seen (less than one epoch), averaged
  over a trailing window; constant learning rate after warm-up, so every point of a run is
  also the end of a shorter run (no cosine schedule tied to the run's length).  FLOPs are
  6·N_active·D with embeddings counted and attention scores not, as in :mod:`minir1.cost`.
- *KV cache.* ``transformers`` 5.x caches MLA's compressed latent (``kv_lora_rank +
  qk_rope_head_dim`` values per layer and token), but at every decoding step it re-expands
  the whole cached context into per-head keys and values (no weight absorption, which
  DeepSeek's own inference uses); :func:`measure_kv_cache` reports both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import gpu_estimate
from ..architectures import (
    Shape,
    build_model,
    describe_models,
    model_configs,
)
from ..corpus import CorpusConfig, build_corpus
from ..cost import (
    count_params,
    kv_cache_bytes_per_token,
    load_model_config,
    load_published_costs,
)
from ..kvcache import decode_benchmark, measure_kv_cache
from ..profiles import check_profile
from ..routing import time_train_steps
from ..stats import Metric, as_metric, over_seeds
from ..tokenizer import build_tokenizer
from .. import rules
from ..results import ChapterResult
from .engineering_config import EngineeringConfig

# The training runs live in a companion module (imported by this chapter only); re-exported here.
from .engineering_runs import (
    Run,
    chapter_flops,
    heldout_docs,
    pack_docs,
    packed_loss,
    run_multiplier,
    run_seed,
    train_config,
    train_run,
    train_seeds,
    training_metrics,
)

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- configs
# The cpu profile: the smallest MoE that still has V3's structure (a dense first layer, one
# shared and 16 routed experts, top-2), trained past 20 tokens per active parameter.
_CPU_SHAPE = Shape(
    d_model=32,
    n_layer=3,
    n_head=2,
    first_k_dense=1,
    d_ff_dense=128,
    n_routed_experts=16,
    top_k=2,
    d_expert=32,
    kv_lora_rank=16,
    qk_rope_head_dim=4,
    qk_nope_head_dim=12,
    v_head_dim=16,
    gqa_kv_heads=1,
    max_len=256,
)

PROFILES: dict[str, EngineeringConfig] = {
    "smoke": EngineeringConfig(
        shape=replace(_CPU_SHAPE, n_layer=2, d_ff_dense=64, n_routed_experts=4, top_k=1, max_len=128),
        corpus=CorpusConfig(n_docs=400),
        steps=6,
        batch_size=4,
        seq_len=32,
        warmup_steps=2,
        smooth=3,
        n_heldout=16,
        context_lens=(16, 32),
        decode_batch=2,
        decode_steps=3,
        repeats=2,
    ),
    "cpu": EngineeringConfig(
        shape=_CPU_SHAPE,
        corpus=CorpusConfig(n_docs=60_000),
        models=("moe", "dense_active", "mha", "gqa"),
        steps=480,
        dense_steps_factor=1.5,
        batch_size=16,
        workers=2,
        lr=3e-3,
        warmup_steps=50,
        smooth=50,
        balance_gamma=0.01,
        context_lens=(64, 128, 256),
    ),
    "gpu": EngineeringConfig(
        shape=Shape(
            d_model=256,
            n_layer=6,
            n_head=8,
            d_ff_dense=1024,
            n_routed_experts=32,
            top_k=4,
            d_expert=128,
            kv_lora_rank=64,
            qk_rope_head_dim=16,
            qk_nope_head_dim=32,
            v_head_dim=32,
            gqa_kv_heads=2,
            max_len=1024,
        ),
        # 6,000 x 64 x 256 = 98M tokens: 21 per active parameter of the MoE (4.6M active, 18.4M total).
        corpus=CorpusConfig(n_docs=1_000_000),
        steps=6000,
        dense_steps_factor=2.0,
        batch_size=64,
        seq_len=256,
        lr=1e-3,
        warmup_steps=100,
        smooth=100,
        balance_gamma=0.005,
        n_heldout=2000,
        context_lens=(128, 256, 512, 1024),
        decode_batch=32,
        decode_steps=32,
    ),
}


def config(profile: str) -> EngineeringConfig:
    """The chapter's config for ``profile`` (the only place a profile string is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: EngineeringConfig) -> EngineeringConfig:
    """``cfg`` with its model shapes kept but two steps on a tiny corpus, on the CPU (tests)."""
    return replace(
        cfg,
        dry_run=True,
        corpus=replace(cfg.corpus, n_docs=300),
        steps=2,
        dense_steps_factor=1.0,
        batch_size=2,
        seq_len=min(cfg.seq_len, 64),
        warmup_steps=1,
        smooth=1,
        n_heldout=8,
        context_lens=(8,),
        decode_batch=1,
        decode_steps=1,
        repeats=1,
    )


def estimate_gpu(cfg: EngineeringConfig, n_seeds: int = 3) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate`: every model's training per seed.

    The MoE's launch floor counts each routed layer as ``1 + n_routed_experts / 4`` dense layers
    (``transformers``' DeepseekV3 MoE loops over its experts in Python); the decoding benchmark is
    seconds and is left out."""
    configs = model_configs(cfg.shape, len(build_tokenizer()))
    stages = []
    for name in cfg.models:
        layers = cfg.shape.n_layer
        if name == "moe":
            layers += (cfg.shape.n_layer - cfg.shape.first_k_dense) * cfg.shape.n_routed_experts // 4
        n_active = count_params(configs[name])["active"]
        steps = cfg.steps_of(name) * n_seeds
        stages.append(gpu_estimate.training(f"train {name}", n_active, layers, steps, cfg.batch_size, cfg.seq_len))
    return gpu_estimate.estimate("engineering", stages)


# ----------------------------------------------------------------------------- measurements
ATTENTION_OF = {"mla": "dense_active", "mha": "mha", "gqa": "gqa"}  # attention -> model measured


def kv_metrics(configs: Mapping[str, Any], models: Mapping[str, Any]) -> dict:
    """Measured (bf16) and formula KV-cache bytes per token of MLA, MHA and GQA."""
    m = {}
    for att, name in ATTENTION_OF.items():
        kv = measure_kv_cache(models[name])
        m[f"{att}_kv_bytes_per_token"] = kv["cache_bytes_per_token"]
        m[f"{att}_kv_bytes_formula"] = float(kv_cache_bytes_per_token(configs[name], dtype_bytes=2))
        if att == "mla":
            m["mla_kv_expanded_bytes_per_token"] = kv["expanded_bytes_per_token"]
    m["mha_over_mla_kv_bytes"] = m["mha_kv_bytes_per_token"] / m["mla_kv_bytes_per_token"]
    return m


def decode_metrics(bench: Mapping[str, dict]) -> dict:
    """Series of :func:`decode_benchmark` output keyed by attention, then context length."""
    rev = {v: k for k, v in ATTENTION_OF.items()}
    out: dict[str, dict] = {"decode_ms_per_step": {}, "decode_cache_bytes": {}, "decode_expanded_bytes": {}}
    for name, per_ctx in bench.items():
        att = rev.get(name, name)
        out["decode_ms_per_step"][att] = {str(c): over_seeds(r["ms_per_step"]) for c, r in per_ctx.items()}
        out["decode_cache_bytes"][att] = {str(c): float(r["cache_bytes"]) for c, r in per_ctx.items()}
        out["decode_expanded_bytes"][att] = {str(c): float(r["expanded_bytes"]) for c, r in per_ctx.items()}
    return out


def overhead_metrics(times: Mapping[str, Sequence[float]]) -> dict:
    """Time per training token of the MoE over the dense models, per interleaved repeat."""
    return {
        "moe_time_per_token_ratio": over_seeds(
            [a / b for a, b in zip(times["moe"], times["dense_active"])], unit="ratio"
        ),
        "moe_time_per_token_ratio_vs_mha": over_seeds(
            [a / b for a, b in zip(times["moe"], times["mha"])], unit="ratio"
        ),
        "train_seconds_per_token": {n: over_seeds(t) for n, t in times.items()},
    }


def v3_context_metrics() -> dict:
    """V3-scale numbers the verdict compares with: sparsity, KV bytes and the GPU-hour gap,
    from the real configs (``data/model_configs``) and published figures."""
    pub, v3, llama = load_published_costs(), load_model_config("deepseek-v3"), load_model_config("llama-3.1-405b")
    n = count_params(v3)
    heads, d_qk = v3.num_attention_heads, v3.qk_nope_head_dim + v3.qk_rope_head_dim
    return {
        "v3_total_over_active": n["total"] / n["active"],
        "v3_params_active": float(n["active"]),
        "v3_kv_bytes_per_token": float(kv_cache_bytes_per_token(v3)),
        "v3_kv_expanded_bytes_per_token_per_layer": float(heads * (d_qk + v3.v_head_dim) * 2),
        "llama405b_kv_bytes_per_token": float(kv_cache_bytes_per_token(llama)),
        "gap_llama405b_over_v3_gpu_hours": pub["llama405b_gpu_hours"].value / pub["v3_total_gpu_hours"].value,
        "v3_total_gpu_hours": pub["v3_total_gpu_hours"].value,
        "llama405b_gpu_hours": pub["llama405b_gpu_hours"].value,
    }


@dataclass(frozen=True)
class FreshMeasurements:
    """What :func:`measure_fresh` measures on untrained models (seed 0), each a results-file
    block: KV-cache bytes, decoding speed and memory, and the time per training token."""

    kv: dict  # kv_metrics
    decode: dict  # decode_metrics
    overhead: dict  # overhead_metrics

    def metrics(self) -> dict:
        """The three blocks in the order the results file lists them."""
        return {**self.kv, **self.decode, **self.overhead}


def measure_fresh(
    cfg: EngineeringConfig, configs: Mapping[str, Any], tok, heldout: Sequence[str], device: str | None
) -> FreshMeasurements:
    """Time a training step of the MoE and the dense models, benchmark decoding, then measure
    the KV caches, on freshly initialised models (in this order: timings before anything else)."""
    fresh = {n: build_model(configs[n], seed=0, device=device) for n in ("moe", "dense_active", "mha", "gqa")}
    batch = pack_docs(tok, heldout, cfg.seq_len)[: cfg.batch_size]  # (B, T)
    times = time_train_steps({n: fresh[n] for n in ("moe", "dense_active", "mha")}, batch, cfg.repeats + 1)
    bench = decode_benchmark(fresh, cfg.context_lens, cfg.decode_batch, cfg.decode_steps, cfg.repeats + 1)
    kv = kv_metrics(configs, fresh)
    return FreshMeasurements(kv=kv, decode=decode_metrics(bench), overhead=overhead_metrics(times))


# ----------------------------------------------------------------------------- run
def run(cfg: EngineeringConfig, seeds: Sequence[int], progress: bool | None = None) -> ChapterResult:
    """Train every model of ``cfg.models`` for each seed, time them, measure KV caches and
    decoding, and judge ``cost-clever-engineering``.  ``progress``: a bar over seeds (default:
    shown unless ``cfg.dry_run``)."""
    t0 = time.perf_counter()
    device = "cpu" if cfg.dry_run else None
    progress = not cfg.dry_run if progress is None else progress
    # The tokenizer, the models' configs and the corpus (held-out documents: test-split problems).
    tok = build_tokenizer()
    special = {k: getattr(tok, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    configs = {n: c for n, c in model_configs(cfg.shape, len(tok), special).items() if n in cfg.models}
    docs, heldout = build_corpus(cfg.corpus), heldout_docs(cfg.corpus, cfg.n_heldout)
    # Train every model for every seed; no batch may be seen twice.
    runs = train_seeds(seeds, configs, tok, docs, heldout, cfg, device, progress)
    train_m, train_extra = training_metrics(runs, cfg)
    if train_m["max_epochs"] > 1:
        raise RuntimeError(f"some batch was seen twice (max_epochs = {train_m['max_epochs']:.2f}); raise corpus.n_docs")
    # Time, decode and measure caches on fresh models; then V3-scale context and the verdict.
    fresh = measure_fresh(cfg, configs, tok, heldout, device)
    metrics = {**train_m, **fresh.metrics(), **v3_context_metrics()}
    extra = {**train_extra, "models": describe_models(configs), "tokenizer_vocab": len(tok)}
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        claims=verdicts(metrics, cfg),
        extra=extra,
        flops=chapter_flops(runs),
        wall_seconds=time.perf_counter() - t0,
        detail=runs,
    )


# ----------------------------------------------------------------------------- verdict
def _share(mult: float, sparsity: float) -> str:
    """The share (log scale) of an MoE's total/active ratio that its multiplier realises."""
    return "none" if mult <= 1 else f"{math.log(mult) / math.log(sparsity):.0%}"


def _m(metrics: Mapping[str, Any], key: str) -> Metric:
    return as_metric(metrics[key])


def _moe_evidence(metrics: Mapping[str, Any]) -> str:
    def v(k):
        return rules.resolve(k, metrics)

    mult, n_lb = _m(metrics, "moe_compute_multiplier"), int(v("moe_compute_multiplier_lower_bounds"))
    regime = v("moe_tokens_per_active_param") >= v("min_tokens_per_active_param")
    bound = (
        f" ({n_lb} of {mult.n} seeds are lower bounds: the dense model never reached the MoE's loss)" if n_lb else ""
    )
    head = (
        f"MoE: trained on {v('moe_tokens_per_active_param'):.3g} tokens per active parameter "
        f"({'at least' if regime else 'fewer than'} the {v('min_tokens_per_active_param'):.0f} the rule "
        f"requires{'' if regime else ', so the multiplier is not read'}). "
    )
    return head + (
        f"Our DeepSeek-style MoE ({v('moe_total_over_active'):.1f}× more total than active parameters) against "
        f"the same model with a dense MLP of its active size: compute multiplier at equal loss "
        f"{mult.fmt(2)} over seeds, paired{bound}; at equal FLOPs, MoE minus dense "
        f"{_m(metrics, 'moe_minus_dense_active_loss_equal_flops').fmt(3)} nats/token (paired by seed); "
        f"{_share(mult.mean, v('moe_total_over_active'))} (log scale) of the MoE's sparsity; against a dense "
        f"Llama (MHA) {_m(metrics, 'moe_compute_multiplier_vs_mha').fmt(2)}. On this CPU a routed token costs "
        f"{_m(metrics, 'moe_time_per_token_ratio').fmt(2)} a dense token's time, so in wall time the multiplier "
        f"is {_m(metrics, 'moe_wall_multiplier').fmt(2)}. Balance (V3 bias update γ plus sequence-wise loss α): "
        f"busiest expert {_m(metrics, 'moe_expert_load_max_over_mean').fmt(2)}× the mean load, coefficient of "
        f"variation {_m(metrics, 'moe_expert_load_cv').fmt(2)}."
    )


def _mla_evidence(metrics: Mapping[str, Any]) -> str:
    def v(k):
        return rules.resolve(k, metrics)

    return (
        f"MLA: the cache holds {v('mla_kv_bytes_per_token'):.0f} bytes per token (bf16, measured on the "
        f"cache tensors, equal to the latent formula) against MHA's {v('mha_kv_bytes_per_token'):.0f} and "
        f"GQA's {v('gqa_kv_bytes_per_token'):.0f} ({v('mha_over_mla_kv_bytes'):.1f}× smaller than MHA), at a "
        f"held-out loss difference MLA − MHA of {_m(metrics, 'mla_minus_mha_heldout_loss').fmt(3)} nats/token "
        f"(paired by seed; tolerance {v('quality_tolerance'):.2f}); transformers re-expands the latent into "
        f"{v('mla_kv_expanded_bytes_per_token'):.0f} bytes of per-head keys and values per cached token at "
        f"every decoding step (no weight absorption), so the saving is in storage, not in work."
    )


def _scale_evidence(metrics: Mapping[str, Any]) -> str:
    def v(k):
        return rules.resolve(k, metrics)

    gap, sp = v("gap_llama405b_over_v3_gpu_hours"), v("v3_total_over_active")
    return (
        f"Scale: Llama 3.1 405B used {gap:.1f}× V3's GPU-hours; V3 computes {sp:.1f}× fewer parameters "
        f"per token than it stores, so the gap is explained if its MoE is worth ~{gap:.0f}× its active "
        f"compute, {_share(gap, sp)} of its sparsity. Not testable here: whether the share measured at our "
        f"scale grows with scale, FP8 training (no FP8 matmul on a CPU), and the cluster engineering "
        f"(expert parallelism, all-to-all kernels, DualPipe) that makes routing cheap in wall time."
    )


def verdicts(metrics: Mapping[str, Any], cfg: EngineeringConfig) -> list[dict]:
    """``cost-clever-engineering`` by its rule in ``data/claims.yml`` (MoE multiplier read only
    in the regime the rule names; MLA's cache and quality, paired by seed).  The rule reads
    only ``metrics`` (the regime and tolerance are copied there from ``cfg``)."""
    evidence = " ".join((_moe_evidence(metrics), _mla_evidence(metrics), _scale_evidence(metrics)))
    return [rules.judge("cost-clever-engineering", metrics, evidence)]


__all__ = [
    "ATTENTION_OF",
    "PROFILES",
    "ChapterResult",
    "EngineeringConfig",
    "FreshMeasurements",
    "Run",
    "chapter_flops",
    "config",
    "decode_metrics",
    "dry_run",
    "estimate_gpu",
    "heldout_docs",
    "kv_metrics",
    "measure_fresh",
    "overhead_metrics",
    "pack_docs",
    "packed_loss",
    "run",
    "run_multiplier",
    "run_seed",
    "train_config",
    "train_run",
    "train_seeds",
    "training_metrics",
    "v3_context_metrics",
    "verdicts",
]
