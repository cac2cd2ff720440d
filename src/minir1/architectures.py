"""The engineering chapter's models: tiny DeepSeek-V3-style MoE and dense models, and three
attention variants in one implementation.

:class:`Shape` holds a DeepSeek-V3-style shape (each field cites V3's value; :func:`v3_shape`
is V3 itself, and :func:`minir1.cost.count_params` gives it V3's 671B total and 37B active
parameters).  :func:`model_configs` turns a shape into the models the chapter trains
(:data:`MODELS`), every one a ``transformers`` ``DeepseekV3ForCausalLM``:

=================  ==============================================================  ============
name               model                                                           attention
=================  ==============================================================  ============
``moe``            one shared and ``n_routed_experts`` routed experts, top-k       MLA
``dense_active``   the same model with a dense MLP, matched to the MoE's active     MLA
``mha``            ``dense_active`` with multi-head attention                      MHA
``gqa``            ``dense_active`` with grouped-query attention                   GQA
=================  ==============================================================  ============

**One implementation, three attentions.**  ``mha`` and ``gqa`` are ``dense_active`` with each
layer's ``DeepseekV3Attention`` (MLA) replaced by :class:`HeadAttention`, a subclass that keeps
its query projection, its split of each head into a RoPE and a non-RoPE part, its RoPE, scaling,
attention function and output projection, and changes only where keys and values come from:
per-head projections of the hidden state (``n_kv_heads`` heads; GQA: fewer KV heads than query
heads) instead of an up-projection of the cached latent.  Embeddings, norms, MLPs and the loss
are the same modules, and a seed gives them the same initial weights in all three.  The MHA/GQA
heads keep MLA's head dimensions (``qk_nope_head_dim + qk_rope_head_dim`` per key, RoPE on the
last ``qk_rope_head_dim``), so attention parameters differ by the K/V path alone.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    ALL_ATTENTION_FUNCTIONS,
    DeepseekV3Attention,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from .cost import count_params, kv_cache_bytes_per_token
from .routing import make_deterministic

MODELS: tuple[str, ...] = ("moe", "dense_active", "mha", "gqa")
ATTENTIONS: tuple[str, ...] = ("mla", "mha", "gqa")
LABELS: dict[str, str] = {
    "moe": "MoE (MLA)",
    "dense_active": "dense, same active (MLA)",
    "mha": "dense, same active, MHA",
    "gqa": "dense, same active, GQA",
}


# ----------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shape:
    """A DeepSeek-V3-style shape; the comparators share it and differ in MLP or attention."""

    d_model: int = 32  # hidden size (V3: 7168)
    n_layer: int = 3  # decoder layers (V3: 61)
    n_head: int = 4  # attention heads (V3: 128)
    first_k_dense: int = 0  # leading layers with a dense MLP (V3: first 3)
    d_ff_dense: int = 128  # MLP width of those dense layers (V3: 18432)
    n_routed_experts: int = 64  # routed experts per MoE layer (V3: 256)
    n_shared_experts: int = 1  # always-on shared experts (V3: 1)
    top_k: int = 2  # routed experts per token (V3: 8)
    d_expert: int = 16  # MLP width of one expert (V3: 2048)
    n_group: int = 1  # expert groups for node-limited routing (V3: 8)
    topk_group: int = 1  # groups one token may use (V3: 4)
    routed_scaling: float = 1.0  # scale of the routed experts' output (V3: 2.5)
    q_lora_rank: int | None = None  # query compression rank (V3: 1536; None = none)
    kv_lora_rank: int = 16  # MLA latent d_c (V3: 512 = 4 d_h)
    qk_rope_head_dim: int = 4  # decoupled RoPE key per head (V3: 64 = d_h / 2)
    qk_nope_head_dim: int = 8  # per-head key without RoPE (V3: 128)
    v_head_dim: int = 8  # per-head value (V3: 128)
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


# ----------------------------------------------------------------------------- attention variants
def attention_config(config: DeepseekV3Config, n_kv_heads: int | None) -> DeepseekV3Config:
    """``config`` with MLA replaced by per-head attention with ``n_kv_heads`` KV heads (MHA when
    it equals the query heads, GQA when fewer); ``None`` keeps MLA.  The choice is stored in
    ``config.minir1_kv_heads`` (read by :func:`build_model`, :func:`param_counts`)."""
    c = copy.deepcopy(config)
    if n_kv_heads is not None:
        if n_kv_heads < 1 or c.num_attention_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads must divide num_attention_heads={c.num_attention_heads}; got {n_kv_heads!r}")
        c.num_key_value_heads = n_kv_heads
    c.minir1_kv_heads = n_kv_heads
    return c


def attention_of(config) -> str:
    """``"mla"``, ``"mha"`` or ``"gqa"``: the attention a config builds."""
    n = getattr(config, "minir1_kv_heads", None)
    return "mla" if n is None else ("mha" if n == config.num_attention_heads else "gqa")


class HeadAttention(DeepseekV3Attention):
    """MHA / GQA in DeepseekV3's attention block: MLA's query path, RoPE split, scaling,
    attention function and output projection, with keys and values projected per KV head.

    Keys: ``n_kv_heads`` heads of ``qk_nope_head_dim + qk_rope_head_dim`` (RoPE on the last
    part, as MLA's queries); values: ``n_kv_heads`` heads of ``v_head_dim``.  The cache stores
    these per-head keys and values, as Llama's does.
    """

    def __init__(self, config: DeepseekV3Config, layer_idx: int):
        super().__init__(config, layer_idx)
        del self.kv_a_proj_with_mqa, self.kv_a_layernorm, self.kv_b_proj  # MLA's K/V path
        self.n_kv_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.n_kv_heads
        self.k_proj = nn.Linear(self.hidden_size, self.n_kv_heads * self.qk_head_dim, bias=config.attention_bias)
        self.v_proj = nn.Linear(self.hidden_size, self.n_kv_heads * self.v_head_dim, bias=config.attention_bias)

    def forward(self, hidden_states, position_embeddings, attention_mask, cache=None, **kwargs):
        B, T = hidden_states.shape[:-1]
        if self.q_lora_rank is None:
            q = self.q_proj(hidden_states)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
        q = q.view(B, T, -1, self.qk_head_dim).transpose(1, 2)  # (B, H, T, d_qk)
        k = self.k_proj(hidden_states).view(B, T, -1, self.qk_head_dim).transpose(1, 2)  # (B, H_kv, T, d_qk)
        v = self.v_proj(hidden_states).view(B, T, -1, self.v_head_dim).transpose(1, 2)  # (B, H_kv, T, d_v)
        q_pass, q_rot = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        k_pass, k_rot = torch.split(k, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        q_rot, k_rot = _rope(self.config)(q_rot, k_rot, *position_embeddings)
        q, k = torch.cat((q_pass, q_rot), dim=-1), torch.cat((k_pass, k_rot), dim=-1)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = attend(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs)
        return self.o_proj(out.reshape(B, T, -1).contiguous()), weights


def _rope(config) -> Callable:
    """The RoPE function DeepseekV3Attention applies for ``config`` (interleaved or not)."""
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as m

    return m.apply_rotary_pos_emb_interleave if config.rope_interleave else apply_rotary_pos_emb


def _swap_attention(model, seed: int) -> None:
    """Replace every layer's MLA by :class:`HeadAttention`, keeping its query and output
    projections' initial weights; the new K/V projections are drawn from ``seed``."""
    config, gen = model.config, torch.Generator().manual_seed(10_007 + seed)
    for layer in model.model.layers:
        old = layer.self_attn
        new = HeadAttention(config, old.layer_idx)
        new.load_state_dict(old.state_dict(), strict=False)  # q_proj (or q_a/q_b), o_proj
        for lin in (new.k_proj, new.v_proj):
            with torch.no_grad():
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * config.initializer_range)
                if lin.bias is not None:
                    lin.bias.zero_()
        layer.self_attn = new


def param_counts(config) -> dict[str, int]:
    """Total and active parameters of the model :func:`build_model` makes from ``config``:
    :func:`minir1.cost.count_params`, with MLA's K/V path replaced by per-head K and V
    projections for MHA/GQA configs (equals ``sum(p.numel())``; tested)."""
    n = dict(count_params(config))
    if attention_of(config) != "mla":
        c, d = config, config.hidden_size
        mla_kv = d * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank
        mla_kv += c.kv_lora_rank * c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim)
        heads_kv = d * c.num_key_value_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim)
        n = {k: v + c.num_hidden_layers * (heads_kv - mla_kv) for k, v in n.items()}
    return n


def kv_bytes_per_token(config, dtype_bytes: int = 2) -> int:
    """KV-cache bytes per token over all layers: MLA's latent + RoPE key
    (:func:`minir1.cost.kv_cache_bytes_per_token`), or K and V of every KV head."""
    if attention_of(config) == "mla":
        return kv_cache_bytes_per_token(config, dtype_bytes=dtype_bytes)
    c = config
    per_layer = c.num_key_value_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim)
    return per_layer * c.num_hidden_layers * dtype_bytes


# ----------------------------------------------------------------------------- the chapter's models
def match_d_ff(make: Callable[[int], Any], target: int) -> Any:
    """The config ``make(d_ff)`` whose parameter count is closest to ``target`` (count is
    linear in the MLP width ``d_ff``).

    >>> s = Shape()
    >>> c = match_d_ff(lambda f: moe_config(s, 100, d_ff=f, dense=True), 50_000)
    >>> abs(count_params(c)["total"] - 50_000) <= 3 * s.d_model * s.n_layer
    True
    """
    p1, p2 = count_params(make(1))["total"], count_params(make(2))["total"]
    d_ff = max(1, round((target - (p1 - (p2 - p1))) / (p2 - p1)))
    return make(d_ff)


def model_configs(shape: Shape, vocab_size: int, tokens: Mapping[str, int] | None = None) -> dict:
    """The models of :data:`MODELS` by name: the MoE, the dense model with its active
    parameters (MLA), and that dense model with MHA and with GQA (same MLP width)."""
    moe = moe_config(shape, vocab_size, tokens)
    dense = match_d_ff(lambda f: moe_config(shape, vocab_size, tokens, d_ff=f, dense=True), count_params(moe)["active"])
    return {
        "moe": attention_config(moe, None),
        "dense_active": attention_config(dense, None),
        "mha": attention_config(dense, shape.n_head),
        "gqa": attention_config(dense, shape.gqa_kv_heads),
    }


def build_model(config, seed: int = 0, device: str | None = None):
    """A freshly initialised causal LM of ``config`` (weights depend only on ``seed``), on
    ``device`` (default: the GPU when one is visible, else the CPU).

    Experts run through ``transformers``' ``grouped_mm`` implementation where it dispatches (one
    grouped product per projection, the same bits on 1 and 2 CPU threads) when the widths are
    multiples of 4 (its 16-byte strides); otherwise :func:`minir1.routing.make_deterministic` pads
    the eager loop.  MHA/GQA configs get
    :class:`HeadAttention` (see :func:`_swap_attention`)."""
    from transformers import AutoModelForCausalLM

    from .utils import device as default_device

    experts = "grouped_mm" if config.hidden_size % 4 == 0 and config.moe_intermediate_size % 4 == 0 else "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, experts_implementation=experts)
    if attention_of(config) != "mla":
        _swap_attention(model, seed)
    if getattr(config, "pad_token_id", None) is not None:
        model.generation_config.pad_token_id = config.pad_token_id
    if model.config._experts_implementation != "grouped_mm":
        make_deterministic(model)
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
    """Attention, MLP, KV heads and parameters of each model, for the results file."""
    out = {}
    for name, c in configs.items():
        n, att = param_counts(c), attention_of(c)
        moe = c.first_k_dense_replace < c.num_hidden_layers
        out[name] = {
            "label": LABELS[name],
            "architecture": "DeepseekV3",
            "attention": {"mla": "MLA", "mha": "MHA"}.get(att, f"GQA ({c.num_key_value_heads} KV heads)"),
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
