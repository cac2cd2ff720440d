"""Cost: what a training run costs, in parameters, FLOPs, GPU-hours, dollars and bytes.

The cost chapter (``notebooks/01_cost.ipynb``) re-derives DeepSeek-V3's published bill
(V3 report, Table 1) and checks it against physics: ``6·N·D`` FLOPs (Kaplan et al. 2020)
over the claimed GPU-hours must give a utilisation (MFU) that real runs reach.  The module
also measures this machine's matmul FLOP/s, so later chapters can report their own MFU.

Conventions and deviations, stated rather than hidden:

- :func:`count_params` counts exactly the parameters of the model ``transformers`` builds
  from the config (tests check it against ``sum(p.numel())``).  For DeepSeek-V3 that is
  the main model only: ``transformers`` does not build the multi-token-prediction (MTP)
  module that the Hugging Face checkpoint stores as layer 61; :func:`mtp_params` counts it.
- "active" = the parameters one token's forward pass uses: every dense weight, the
  router, the shared experts and the top-k routed experts of each MoE layer, and the whole
  embedding and output head (the convention of V3's "37B activated").
- :func:`training_flops` is the 6ND rule.  :func:`attention_flops_per_token` adds the
  QKᵀ and AV matmuls as Hoffmann et al. (2022, App. F) count them: the full context, not
  the causal half, unless ``causal=True``.  MLA is counted in its expanded training form.
- Dollars are GPU-hours × a rental price ($2 per H800 hour in V3 Table 1), not the cash
  DeepSeek spent; the V3 report says the figure excludes prior research and ablations.
- The published figures and the real configs are read by :mod:`minir1.cost_data` (re-exported
  here).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import torch

from .cost_data import (  # noqa: F401 (re-exported)
    CSV_COLUMNS,
    SUPPORTED_MODEL_TYPES,
    PublishedFigure,
    _check_model_type,
    all_in_over_reported,
    available_model_configs,
    load_model_config,
    load_published_costs,
)
from .stats import Metric
from .utils import atomic_write_json, device_name, repo_root


def _check_size(name: str, x: Any, *, positive: bool = False) -> float:
    """``x`` as a float; ValueError naming ``name`` if it is not a finite (positive) number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number; got {x!r}")
    if x < 0 or (positive and x == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}; got {x!r}")
    return float(x)


# ----------------------------------------------------------------------------- parameters
def _model_type(config) -> str:
    return _check_model_type(getattr(config, "model_type", type(config).__name__))


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _linear(d_in: int, d_out: int, bias: bool = False) -> int:
    return d_in * d_out + (d_out if bias else 0)


def _swiglu_mlp(d: int, d_ff: int, bias: bool = False) -> int:
    """gate, up (d -> d_ff) and down (d_ff -> d) projections."""
    return 2 * _linear(d, d_ff, bias) + _linear(d_ff, d, bias)


def _attention_params(config) -> int:
    """One layer's attention weights (MLA for DeepSeek-V3, MHA/GQA otherwise)."""
    d, H = config.hidden_size, config.num_attention_heads
    if _model_type(config) == "deepseek_v3":
        bias, q_rank, kv_rank = config.attention_bias, config.q_lora_rank, config.kv_lora_rank
        qk_head = config.qk_nope_head_dim + config.qk_rope_head_dim
        if q_rank is None:
            q = _linear(d, H * qk_head)
        else:  # q_a_proj -> RMSNorm -> q_b_proj (query compression, V3 report §2.1.1)
            q = _linear(d, q_rank, bias) + q_rank + _linear(q_rank, H * qk_head)
        kv = (
            _linear(d, kv_rank + config.qk_rope_head_dim, bias)
            + kv_rank  # kv_a_proj + norm
            + _linear(kv_rank, H * (config.qk_nope_head_dim + config.v_head_dim))
        )  # kv_b_proj
        return q + kv + _linear(H * config.v_head_dim, d, bias)
    hd, kv_heads = _head_dim(config), config.num_key_value_heads
    qkv_bias = True if _model_type(config) == "qwen2" else config.attention_bias
    o_bias = False if _model_type(config) == "qwen2" else config.attention_bias
    return _linear(d, H * hd, qkv_bias) + 2 * _linear(d, kv_heads * hd, qkv_bias) + _linear(H * hd, d, o_bias)


def _moe_params(config) -> tuple[int, int]:
    """One DeepSeek-V3 MoE block: (all parameters, those one token uses)."""
    d = config.hidden_size
    expert = _swiglu_mlp(d, config.moe_intermediate_size)
    shared = _swiglu_mlp(d, config.moe_intermediate_size * (config.n_shared_experts or 0))
    router = config.n_routed_experts * d  # gate.weight; e_score_correction_bias is a buffer
    return (config.n_routed_experts * expert + shared + router, config.num_experts_per_tok * expert + shared + router)


def count_params(config) -> dict[str, int]:
    """Total and per-token active parameters of the model built from a ``transformers`` config.

    Supports Llama, Qwen2 and DeepSeek-V3 configs; equals ``sum(p.numel())`` of
    ``AutoModelForCausalLM.from_config(config)`` (tied embeddings counted once).

    >>> n = count_params(load_model_config("deepseek-v3"))
    >>> round(n["total"] / 1e9), round(n["active"] / 1e9)
    (671, 38)
    """
    mt, d, L = _model_type(config), config.hidden_size, config.num_hidden_layers
    per_layer = _attention_params(config) + 2 * d  # + input and post-attention RMSNorms
    if mt == "deepseek_v3":
        n_dense = min(config.first_k_dense_replace, L)
        dense_mlp = _swiglu_mlp(d, config.intermediate_size)
        moe_total, moe_active = _moe_params(config)
        mlp_total = n_dense * dense_mlp + (L - n_dense) * moe_total
        mlp_active = n_dense * dense_mlp + (L - n_dense) * moe_active
    else:
        mlp_total = mlp_active = L * _swiglu_mlp(d, config.intermediate_size, getattr(config, "mlp_bias", False))
    embed = config.vocab_size * d
    head = 0 if config.tie_word_embeddings else config.vocab_size * d
    shared = L * per_layer + d + embed + head  # + final RMSNorm
    return {"total": shared + mlp_total, "active": shared + mlp_active}


def mtp_params(config) -> dict[str, int]:
    """DeepSeek-V3's multi-token-prediction module(s), which ``transformers`` does not build.

    Per module (V3 report §2.2): one MoE decoder layer, the projection M (2d -> d) and three
    RMSNorms; it shares the embedding and output head with the main model, but the Hugging
    Face checkpoint stores its own copies of both.  ``stored``: as in the checkpoint;
    ``unique``: without those copies; ``active``: what one token's MTP pass multiplies,
    including the shared output head (embedding lookups cost no FLOPs but are counted in
    ``active`` of the main model, so here only the head is added).
    """
    if _model_type(config) != "deepseek_v3":
        raise ValueError(f"mtp_params needs a 'deepseek_v3' config; got {config.model_type!r}")
    d, V, n = config.hidden_size, config.vocab_size, getattr(config, "num_nextn_predict_layers", 0)
    moe_total, moe_active = _moe_params(config)
    own = _attention_params(config) + 2 * d + _linear(2 * d, d) + 3 * d
    return {
        "stored": n * (own + moe_total + 2 * V * d),
        "unique": n * (own + moe_total),
        "active": n * (own + moe_active + V * d),
    }


def numel_on_meta(config) -> int:
    """``sum(p.numel())`` of the model ``transformers`` builds from ``config``, on the meta
    device (no memory is allocated, so a 671B-parameter config takes about a second)."""
    from transformers import AutoModelForCausalLM

    _model_type(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- FLOPs, MFU, KV
def training_flops(n_active_params: float, n_tokens: float) -> float:
    """The 6ND rule: forward 2N + backward 4N FLOPs per token (Kaplan et al. 2020, §2.1).

    >>> f"{training_flops(37e9, 14.8e12):.3e}"
    '3.286e+24'
    """
    return 6.0 * _check_size("n_active_params", n_active_params) * _check_size("n_tokens", n_tokens)


def attention_flops_per_token(config, seq_len: int, *, causal: bool = False) -> float:
    """Training FLOPs per token of the attention scores (QKᵀ) and the weighted sum (AV).

    Forward, per layer: ``2·T·H·d_qk + 2·T·H·d_v`` (Hoffmann et al. 2022, App. F); training
    is three times the forward pass.  ``causal=True`` uses the average context (T + 1) / 2.
    """
    seq_len = int(_check_size("seq_len", seq_len, positive=True))
    H, L = config.num_attention_heads, config.num_hidden_layers
    if _model_type(config) == "deepseek_v3":
        d_qk, d_v = config.qk_nope_head_dim + config.qk_rope_head_dim, config.v_head_dim
    else:
        d_qk = d_v = _head_dim(config)
    ctx = (seq_len + 1) / 2 if causal else seq_len
    return 3.0 * L * 2.0 * ctx * H * (d_qk + d_v)


def training_flops_with_attention(config, n_tokens: float, seq_len: int, *, causal: bool = False) -> float:
    """6ND with N = the config's active parameters, plus the attention term."""
    n_active = count_params(config)["active"]
    return training_flops(n_active, n_tokens) + _check_size("n_tokens", n_tokens) * attention_flops_per_token(
        config, seq_len, causal=causal
    )


def implied_mfu(flops: float, gpu_hours: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: useful FLOPs over what the GPUs could have done at peak.

    >>> pub = load_published_costs()
    >>> round(implied_mfu(training_flops(37e9, 14.8e12), 2.664e6, pub["h100_bf16_dense_flops"].value), 3)
    0.346
    """
    flops = _check_size("flops", flops)
    seconds = 3600.0 * _check_size("gpu_hours", gpu_hours, positive=True)
    return flops / (seconds * _check_size("peak_flops_per_s", peak_flops_per_s, positive=True))


def kv_cache_bytes_per_token(config, dtype_bytes: int = 2) -> int:
    """Bytes of KV cache one token adds at inference, over all layers.

    MLA caches the compressed latent and the decoupled RoPE key per layer
    (``kv_lora_rank + qk_rope_head_dim``); MHA/GQA cache K and V for each KV head.

    >>> kv_cache_bytes_per_token(load_model_config("deepseek-v3"))
    70272
    """
    dtype_bytes = int(_check_size("dtype_bytes", dtype_bytes, positive=True))
    L = config.num_hidden_layers
    if _model_type(config) == "deepseek_v3":
        return (config.kv_lora_rank + config.qk_rope_head_dim) * L * dtype_bytes
    return 2 * config.num_key_value_heads * _head_dim(config) * L * dtype_bytes


# ----------------------------------------------------------------------------- training runs
@dataclass(frozen=True)
class TrainingRun:
    """A published training run: what it was billed and what it must have computed."""

    name: str
    gpu_hours: float  # V3 pre-training: 2,664K H800 GPU-hours (V3 report, Table 1)
    n_active_params: float  # V3: 37e9 activated per token (V3 report, §1)
    n_tokens: float  # V3: 14.8e12 pre-training tokens
    usd_per_gpu_hour: float  # V3: the rental price of V3 report, Table 1
    peak_flops_per_s: float  # dense BF16 peak of the GPU (H100/H800 SXM datasheet)

    def cost_usd(self) -> float:
        return _check_size("gpu_hours", self.gpu_hours) * self.usd_per_gpu_hour

    def flops(self) -> float:
        return training_flops(self.n_active_params, self.n_tokens)

    def mfu(self, peak_flops_per_s: float | None = None) -> float:
        return implied_mfu(self.flops(), self.gpu_hours, peak_flops_per_s or self.peak_flops_per_s)


def v3_bill(pub: Mapping[str, PublishedFigure]) -> dict[str, float]:
    """V3 Table 1 re-derived: GPU-hours of each stage × the rental price, in dollars."""
    rate = pub["v3_usd_per_gpu_hour"].value
    stages = {
        "pre-training": "v3_pretraining_gpu_hours",
        "context extension": "v3_context_extension_gpu_hours",
        "post-training": "v3_post_training_gpu_hours",
    }
    bill = {stage: pub[key].value * rate for stage, key in stages.items()}
    bill["total"] = sum(pub[key].value for key in stages.values()) * rate
    return bill


def published_runs(pub: Mapping[str, PublishedFigure]) -> dict[str, TrainingRun]:
    """V3's pre-training run and Llama 3.1 405B's run, from the published figures.

    V3 uses its pre-training GPU-hours only (the 14.8T tokens are pre-training tokens);
    Llama's model card gives one number for all stages, which slightly lowers its MFU.
    """
    rate, peak = pub["v3_usd_per_gpu_hour"].value, pub["h100_bf16_dense_flops"].value
    return {
        "deepseek-v3": TrainingRun(
            "DeepSeek-V3 pre-training",
            pub["v3_pretraining_gpu_hours"].value,
            pub["v3_active_params"].value,
            pub["v3_tokens"].value,
            rate,
            peak,
        ),
        "llama-3.1-405b": TrainingRun(
            "Llama 3.1 405B (all stages)",
            pub["llama405b_gpu_hours"].value,
            pub["llama405b_params"].value,
            pub["llama405b_tokens"].value,
            rate,
            peak,
        ),
    }


# ----------------------------------------------------------------------------- this machine
@dataclass(frozen=True)
class MatmulBench:
    """Square-matmul timing: each timed sample runs ``inner`` matmuls of 2n³ FLOPs each."""

    n: int = 1024  # matrix side
    dtype: str = "float32"  # "float32" or "bfloat16"
    device: str = "cpu"  # "cpu" or "cuda"
    repeats: int = 10  # timed samples; the chapter's CI is over these
    inner: int = 8  # matmuls per sample, so that one sample lasts long enough to time

    def flops(self) -> float:
        """FLOPs the whole measurement performs (one warm-up sample included)."""
        return 2.0 * self.n**3 * self.inner * (self.repeats + 1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_flops_samples(bench: MatmulBench, seed: int = 0) -> list[float]:
    """Achieved FLOP/s of each of ``bench.repeats`` timed samples (after one warm-up)."""
    if bench.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16'; got {bench.dtype!r}")
    for name in ("n", "repeats", "inner"):
        _check_size(name, getattr(bench, name), positive=True)
    dtype = getattr(torch, bench.dtype)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(bench.n, bench.n, generator=gen).to(bench.device, dtype)  # (n, n)
    b = torch.randn(bench.n, bench.n, generator=gen).to(bench.device, dtype)  # (n, n)
    samples = []
    for i in range(bench.repeats + 1):
        _sync(bench.device)
        t0 = time.perf_counter()
        for _ in range(bench.inner):
            c = a @ b  # (n, n)
        _sync(bench.device)
        if i > 0:  # sample 0 warms up caches, threads and kernels
            samples.append(2.0 * bench.n**3 * bench.inner / (time.perf_counter() - t0))
    del c
    return samples


def measure_matmul_flops(
    n: int = 1024, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 10
) -> float:
    """Median achieved FLOP/s of ``n × n`` matmuls on this machine."""
    name = str(dtype).removeprefix("torch.")
    return statistics.median(matmul_flops_samples(MatmulBench(n, name, device, repeats)))


def _flops_cache_path() -> Path:
    return repo_root() / ".artifacts" / "machine_flops.json"


def _bench_key(bench: MatmulBench) -> str:
    return f"{device_name()}|{bench.device}|{bench.dtype}|n={bench.n}"


def record_machine_flops(bench: MatmulBench, samples: list[float], path: str | os.PathLike | None = None) -> Path:
    """Store a measurement in ``.artifacts/machine_flops.json`` for :func:`machine_peak`."""
    path = Path(path) if path is not None else _flops_cache_path()
    cache = json.loads(path.read_text()) if path.exists() else {}
    cache[_bench_key(bench)] = {
        "bench": asdict(bench),
        "median": statistics.median(samples),
        "samples": list(samples),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write_json(path, cache)


def machine_peak(
    bench: MatmulBench | None = None, *, force: bool = False, path: str | os.PathLike | None = None
) -> float:
    """This machine's matmul FLOP/s for ``bench`` (default: :class:`MatmulBench` ``()``, the
    ``cpu`` profile's float32 benchmark): the denominator of MFU.

    Measured once and cached per device in ``.artifacts/machine_flops.json`` (the cost
    chapter measures fresh and records its result); ``force=True`` measures again.
    """
    bench = bench if bench is not None else MatmulBench()
    path = Path(path) if path is not None else _flops_cache_path()
    entry = json.loads(path.read_text()).get(_bench_key(bench)) if path.exists() else None
    if entry is None or force:
        samples = matmul_flops_samples(bench)
        record_machine_flops(bench, samples, path)
        return statistics.median(samples)
    return float(entry["median"])


# ----------------------------------------------------------------------------- metrics
# Items of data/published_costs.csv that are MFUs of large published training runs: their span
# is the range a claimed bill must imply to be physically plausible.
MFU_PUBLISHED: tuple[str, ...] = (
    "gpt3_mfu_bf16",
    "gopher_mfu",
    "mtnlg_mfu",
    "palm_mfu",
    "megascale_175b_mfu",
    "llama405b_mfu_bf16_low",
    "llama405b_mfu_bf16_high",
)


def cost_metrics(pub: Mapping[str, PublishedFigure], configs: Mapping[str, Any]) -> dict[str, Any]:
    """Every number of the cost chapter, from the published figures and the real configs
    (floats; the all-in ranges as :class:`~minir1.stats.Metric`; the comparators: the chapter).

    ``configs`` maps ``"deepseek-v3"``, ``"llama-3.1-405b"`` and ``"qwen2.5-72b"`` to
    ``transformers`` configs (see :func:`load_model_config`).
    """
    runs, bill = published_runs(pub), v3_bill(pub)
    v3, llama = runs["deepseek-v3"], runs["llama-3.1-405b"]
    counts = {k: count_params(c) for k, c in configs.items()}
    m = {
        "v3_published_cost_usd": pub["v3_total_cost_usd"].value,
        "v3_total_cost_usd": bill["total"],
        "v3_pretraining_cost_usd": bill["pre-training"],
        "v3_total_gpu_hours": bill["total"] / pub["v3_usd_per_gpu_hour"].value,
        "v3_active_params": v3.n_active_params,
        "llama405b_params": llama.n_active_params,
        "v3_training_flops": v3.flops(),
        "llama405b_training_flops": llama.flops(),
        "v3_implied_mfu_bf16": v3.mfu(),
        "v3_implied_mfu_fp8": v3.mfu(pub["h100_fp8_dense_flops"].value),
        "fp8_over_bf16_peak": pub["h100_bf16_dense_flops"].value / pub["h100_fp8_dense_flops"].value,
        "llama405b_implied_mfu_bf16": llama.mfu(),
        "llama405b_cost_usd": llama.cost_usd(),
        "r1_rl_cost_usd": pub["r1_rl_gpu_hours"].value * v3.usd_per_gpu_hour,
        "gpt4_cost_usd": pub["gpt4_training_cost_usd"].value,
        "gemini_ultra_cost_usd": pub["gemini_ultra_training_cost_usd"].value,
        "deepseek_hardware_usd": pub["deepseek_hardware_usd"].value,
        "llama405b_mfu_reported_low": pub["llama405b_mfu_bf16_low"].value,
        "llama405b_mfu_reported_high": pub["llama405b_mfu_bf16_high"].value,
    }
    mfus = [pub[k].value for k in MFU_PUBLISHED]
    m["mfu_published_min"], m["mfu_published_max"] = min(mfus), max(mfus)
    m["r1_total_cost_usd"] = m["v3_total_cost_usd"] + m["r1_rl_cost_usd"]
    m["r1_cost_10x_usd"] = 10 * m["r1_total_cost_usd"]
    m["gpu_hours_ratio_llama_over_v3"] = llama.gpu_hours / m["v3_total_gpu_hours"]
    m["active_params_ratio_llama_over_v3"] = llama.n_active_params / v3.n_active_params
    m["flops_ratio_v3_over_llama"] = v3.flops() / llama.flops()
    m["v3_active_params_counted"], m["v3_total_params_counted"] = (
        counts["deepseek-v3"]["active"],
        counts["deepseek-v3"]["total"],
    )
    m["v3_mtp_params_stored"] = mtp_params(configs["deepseek-v3"])["stored"]
    m["llama405b_params_counted"] = counts["llama-3.1-405b"]["total"]
    m["qwen72b_params_counted"] = counts["qwen2.5-72b"]["total"]
    for short, name in (("v3", "deepseek-v3"), ("llama405b", "llama-3.1-405b"), ("qwen72b", "qwen2.5-72b")):
        m[f"{short}_kv_cache_bytes_per_token"] = kv_cache_bytes_per_token(configs[name])
    sens = mfu_sensitivity(pub, configs)
    m["v3_implied_mfu_bf16_with_attention"] = sens["+ attention at 4096 (full context)"]["deepseek-v3"]
    m["llama405b_implied_mfu_bf16_with_attention"] = sens["+ attention at 4096 (full context)"]["llama-3.1-405b"]
    # Utilisation vs FLOPs: GPU-hours ratio = FLOPs ratio × MFU ratio (same peak on H800/H100).
    for tag, key in (("", "v3_implied_mfu_bf16"), ("_with_attention", "v3_implied_mfu_bf16_with_attention")):
        mfu_ratio = m[key] / m[key.replace("v3_", "llama405b_")]
        m[f"mfu_ratio_v3_over_llama{tag}"] = mfu_ratio
        m[f"hours_gap_share_from_mfu{tag}"] = math.log(mfu_ratio) / math.log(llama.gpu_hours / v3.gpu_hours)
    m["v3_implied_mfu_fp8_with_attention"] = m["v3_implied_mfu_bf16_with_attention"] * m["fp8_over_bf16_peak"]
    m["r1_compute_cost_usd"] = m["r1_total_cost_usd"]  # GPU time only, like the comparators
    m["r1_all_in_over_reported"] = all_in_over_reported(pub)
    m["v3_all_in_over_reported"] = all_in_over_reported(pub, with_r1_rl=False)
    return {k: v if isinstance(v, Metric) else float(v) for k, v in m.items()}


def mfu_sensitivity(
    pub: Mapping[str, PublishedFigure], configs: Mapping[str, Any], seq_len: int = 4096
) -> dict[str, dict[str, float]]:
    """Implied MFU of V3 and Llama 3.1 405B as the FLOP count grows more complete.

    Rows: 6ND with the published N; with N counted from the config; plus the attention term
    at ``seq_len`` (4K, as in the ISCA 2025 paper's Table 2), causal and full-context; and
    for V3 plus its MTP module's per-token parameters.
    """
    runs, out = published_runs(pub), {}
    for name, run in runs.items():
        config, d = configs[name], run.n_tokens
        n_counted = count_params(config)["active"]
        att = {c: d * attention_flops_per_token(config, seq_len, causal=c) for c in (True, False)}
        mtp = mtp_params(config)["active"] if name == "deepseek-v3" else 0
        rows = {
            "6ND, published N": run.flops(),
            "6ND, N counted from config": training_flops(n_counted, d),
            f"+ attention at {seq_len} (causal)": training_flops(n_counted, d) + att[True],
            f"+ attention at {seq_len} (full context)": training_flops(n_counted, d) + att[False],
            "+ MTP module (V3 only)": training_flops(n_counted + mtp, d) + att[False],
        }
        for row, flops in rows.items():
            out.setdefault(row, {})[name] = implied_mfu(flops, run.gpu_hours, run.peak_flops_per_s)
    return out
