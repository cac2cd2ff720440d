"""The engineering chapter's models: tiny DeepSeek-V3-style and Llama configs, matched in size.

:class:`Shape` holds a DeepSeek-V3-style shape (each field cites V3's value; :func:`v3_shape`
is V3 itself, and :func:`minir1.cost.count_params` gives it V3's 671B total and 37B active
parameters).  :func:`model_configs` turns a shape into the five models the chapter trains
(:data:`MODELS`):

=================  ===========================================================  =============
name               model                                                        matched to
=================  ===========================================================  =============
``moe``            ``DeepseekV3ForCausalLM``: MLA + shared and routed experts    --
``dense_active``   the same DeepseekV3 model with a dense MLP in every layer     MoE's active
``dense_total``    the same, with a wider dense MLP                             MoE's total
``mha``            ``LlamaForCausalLM``, multi-head attention                   MoE's active
``gqa``            ``LlamaForCausalLM``, grouped-query attention                MoE's active
=================  ===========================================================  =============

Models are matched by their MLP width (:func:`match_d_ff`), to within one unit of width.
Nothing here is hand-written model code: every model is ``transformers``' own class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import torch
from transformers import DeepseekV3Config, LlamaConfig

from .cost import count_params
from .routing import make_deterministic

MODELS: tuple[str, ...] = ("moe", "dense_active", "dense_total", "mha", "gqa")
LABELS: dict[str, str] = {
    "moe": "MoE (MLA)",
    "dense_active": "dense, same active (MLA)",
    "dense_total": "dense, same total (MLA)",
    "mha": "dense Llama, MHA",
    "gqa": "dense Llama, GQA",
}


# ----------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shape:
    """A DeepSeek-V3-style shape; the comparators share it and differ in MLP or attention."""

    d_model: int = 64  # hidden size (V3: 7168)
    n_layer: int = 4  # decoder layers (V3: 61)
    n_head: int = 4  # attention heads (V3: 128)
    first_k_dense: int = 1  # leading layers with a dense MLP (V3: first 3)
    d_ff_dense: int = 256  # MLP width of those dense layers (V3: 18432)
    n_routed_experts: int = 16  # routed experts per MoE layer (V3: 256)
    n_shared_experts: int = 1  # always-on shared experts (V3: 1)
    top_k: int = 2  # routed experts per token (V3: 8)
    d_expert: int = 64  # MLP width of one expert (V3: 2048)
    n_group: int = 1  # expert groups for node-limited routing (V3: 8)
    topk_group: int = 1  # groups one token may use (V3: 4)
    routed_scaling: float = 1.0  # scale of the routed experts' output (V3: 2.5)
    q_lora_rank: int | None = None  # query compression rank (V3: 1536; None = none)
    kv_lora_rank: int = 32  # MLA latent d_c (V3: 512 = 4 d_h; with 4 heads we use 2 d_h)
    qk_rope_head_dim: int = 8  # decoupled RoPE key per head (V3: 64 = d_h / 2)
    qk_nope_head_dim: int = 16  # per-head key without RoPE (V3: 128)
    v_head_dim: int = 16  # per-head value (V3: 128)
    gqa_kv_heads: int = 2  # KV heads of the GQA comparator (Llama 3 405B: 8 of 128)
    max_len: int = 512  # longest sequence (positions)


def shape_of(config, gqa_kv_heads: int = 1) -> tuple[Shape, int]:
    """The :class:`Shape` and vocabulary size of a ``DeepseekV3Config`` (e.g. the real V3
    config in ``data/model_configs/deepseek-v3.json``, read by :func:`minir1.cost.load_model_config`)."""
    c = config
    return Shape(
        d_model=c.hidden_size,
        n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads,
        first_k_dense=c.first_k_dense_replace,
        d_ff_dense=c.intermediate_size,
        n_routed_experts=c.n_routed_experts,
        n_shared_experts=c.n_shared_experts,
        top_k=c.num_experts_per_tok,
        d_expert=c.moe_intermediate_size,
        n_group=c.n_group,
        topk_group=c.topk_group,
        routed_scaling=c.routed_scaling_factor,
        q_lora_rank=c.q_lora_rank,
        kv_lora_rank=c.kv_lora_rank,
        qk_rope_head_dim=c.qk_rope_head_dim,
        qk_nope_head_dim=c.qk_nope_head_dim,
        v_head_dim=c.v_head_dim,
        gqa_kv_heads=gqa_kv_heads,
        max_len=c.max_position_embeddings,
    ), c.vocab_size


def v3_shape() -> tuple[Shape, int]:
    """DeepSeek-V3's shape and vocabulary, from its published config (``data/model_configs``)."""
    from .cost import load_model_config

    return shape_of(
        load_model_config("deepseek-v3"), gqa_kv_heads=load_model_config("llama-3.1-405b").num_key_value_heads
    )


def check_model(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"model name must be one of {', '.join(map(repr, MODELS))}; got {name!r}")
    return name


def _common(vocab_size: int, tokens: Mapping[str, int] | None, max_len: int, tie: bool) -> dict:
    ids = {k: v for k, v in (tokens or {}).items() if k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return dict(
        vocab_size=vocab_size,
        tie_word_embeddings=tie,
        max_position_embeddings=max_len,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        **ids,
    )


def moe_config(
    shape: Shape,
    vocab_size: int,
    tokens: Mapping[str, int] | None = None,
    *,
    tie: bool = True,
    d_ff: int | None = None,
    dense: bool = False,
) -> DeepseekV3Config:
    """A ``DeepseekV3Config`` of ``shape``; ``dense=True`` gives every layer a dense MLP of
    width ``d_ff`` (default ``shape.d_ff_dense``): the same MLA model without experts."""
    s = shape
    return DeepseekV3Config(
        hidden_size=s.d_model,
        num_hidden_layers=s.n_layer,
        num_attention_heads=s.n_head,
        num_key_value_heads=s.n_head,
        intermediate_size=d_ff or s.d_ff_dense,
        moe_intermediate_size=s.d_expert,
        n_routed_experts=s.n_routed_experts,
        n_shared_experts=s.n_shared_experts,
        num_experts_per_tok=s.top_k,
        first_k_dense_replace=s.n_layer if dense else s.first_k_dense,
        n_group=s.n_group,
        topk_group=s.topk_group,
        routed_scaling_factor=s.routed_scaling,
        norm_topk_prob=True,
        q_lora_rank=s.q_lora_rank,
        kv_lora_rank=s.kv_lora_rank,
        qk_rope_head_dim=s.qk_rope_head_dim,
        qk_nope_head_dim=s.qk_nope_head_dim,
        v_head_dim=s.v_head_dim,
        **_common(vocab_size, tokens, s.max_len, tie),
    )


def llama_config(
    shape: Shape,
    vocab_size: int,
    tokens: Mapping[str, int] | None = None,
    *,
    n_kv_head: int | None = None,
    d_ff: int | None = None,
    tie: bool = True,
) -> LlamaConfig:
    """A dense Llama of ``shape``'s width and depth: MHA, or GQA with ``n_kv_head`` KV heads."""
    s = shape
    return LlamaConfig(
        hidden_size=s.d_model,
        num_hidden_layers=s.n_layer,
        num_attention_heads=s.n_head,
        num_key_value_heads=n_kv_head or s.n_head,
        intermediate_size=d_ff or s.d_ff_dense,
        **_common(vocab_size, tokens, s.max_len, tie),
    )


def match_d_ff(make: Callable[[int], Any], target: int) -> Any:
    """The config ``make(d_ff)`` whose parameter count is closest to ``target`` (count is
    linear in the MLP width ``d_ff``).

    >>> s = Shape()
    >>> c = match_d_ff(lambda f: llama_config(s, 100, d_ff=f), 250_000)
    >>> abs(count_params(c)["total"] - 250_000) <= 3 * s.d_model * s.n_layer
    True
    """
    p1, p2 = count_params(make(1))["total"], count_params(make(2))["total"]
    d_ff = max(1, round((target - (p1 - (p2 - p1))) / (p2 - p1)))
    return make(d_ff)


def model_configs(shape: Shape, vocab_size: int, tokens: Mapping[str, int] | None = None) -> dict:
    """The five models of the chapter, by name (:data:`MODELS`), matched in parameters:
    dense models to the MoE's active (or total) count, MHA and GQA to ``dense_active``."""
    moe = moe_config(shape, vocab_size, tokens)
    n = count_params(moe)

    def mla(f):
        return moe_config(shape, vocab_size, tokens, d_ff=f, dense=True)

    return {
        "moe": moe,
        "dense_active": match_d_ff(mla, n["active"]),
        "dense_total": match_d_ff(mla, n["total"]),
        "mha": match_d_ff(lambda f: llama_config(shape, vocab_size, tokens, d_ff=f), n["active"]),
        "gqa": match_d_ff(
            lambda f: llama_config(shape, vocab_size, tokens, d_ff=f, n_kv_head=shape.gqa_kv_heads), n["active"]
        ),
    }


def build_model(config, seed: int = 0, device: str | None = None):
    """A freshly initialised causal LM of ``config`` (weights depend only on ``seed``), on
    ``device`` (default: the GPU when one is visible, else the CPU).  A DeepseekV3 MoE gets
    :func:`minir1.routing.make_deterministic` experts (thread-count-independent results)."""
    from transformers import AutoModelForCausalLM

    from .utils import device as default_device

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    if getattr(config, "pad_token_id", None) is not None:
        model.generation_config.pad_token_id = config.pad_token_id
    make_deterministic(model)  # MoE experts: the same bits on any number of CPU threads
    return model.to(device or default_device()).eval()


def shape_table(shape: Shape, vocab_size: int) -> list[dict]:
    """Our MoE's shape next to V3's (as strings), with parameters counted from both configs."""
    v3_s, v3_vocab = v3_shape()
    ours, v3 = count_params(moe_config(shape, vocab_size)), count_params(moe_config(v3_s, v3_vocab, tie=False))

    def fmt(x):
        return "none" if x is None else (f"{x:,}" if isinstance(x, int) else f"{x:g}")

    rows = [
        {"": k, "ours": fmt(getattr(shape, k)), "DeepSeek-V3": fmt(getattr(v3_s, k))}
        for k in asdict(shape)
        if k not in ("gqa_kv_heads", "max_len")
    ]
    rows += [
        {"": "params total", "ours": fmt(ours["total"]), "DeepSeek-V3": fmt(v3["total"])},
        {"": "params active", "ours": fmt(ours["active"]), "DeepSeek-V3": fmt(v3["active"])},
        {
            "": "total / active",
            "ours": f"{ours['total'] / ours['active']:.1f}",
            "DeepSeek-V3": f"{v3['total'] / v3['active']:.1f}",
        },
    ]
    return rows


def describe_models(configs: Mapping[str, Any]) -> dict[str, dict]:
    """Architecture, MLP width, KV heads and parameters of each model, for the results file."""
    out = {}
    for name, c in configs.items():
        n = count_params(c)
        moe = c.model_type == "deepseek_v3" and c.first_k_dense_replace < c.num_hidden_layers
        out[name] = {
            "label": LABELS[name],
            "architecture": type(c).__name__.removesuffix("Config"),
            "attention": "MLA"
            if c.model_type == "deepseek_v3"
            else (
                "MHA" if c.num_key_value_heads == c.num_attention_heads else f"GQA ({c.num_key_value_heads} KV heads)"
            ),
            "mlp": (
                f"{c.first_k_dense_replace} dense × {c.intermediate_size}, then {c.n_shared_experts} "
                f"shared + top-{c.num_experts_per_tok} of {c.n_routed_experts} experts × "
                f"{c.moe_intermediate_size}"
                if moe
                else f"dense × {c.intermediate_size}"
            ),
            "params_total": n["total"],
            "params_active": n["active"],
        }
    return out
