"""KV cache, measured: bytes per token on the real cache tensors, and decoding speed.

:func:`measure_kv_cache` generates a few tokens with a ``DynamicCache`` and sums the bytes
of the tensors the cache holds.  For DeepSeek-V3's multi-head latent attention (MLA),
``transformers`` 5.x caches the compressed latent (``kv_lora_rank`` values after the KV
norm plus the ``qk_rope_head_dim`` RoPE key, per layer and token: the V3 report's 576
values), which :func:`minir1.cost.kv_cache_bytes_per_token` predicts; but at every decoding
step it expands the whole cached context back into per-head keys and values (``kv_b_proj``
then ``expand_kv``), because it does not absorb the up-projections into the query and
output weights as DeepSeek's inference does.  Both numbers are reported: what is stored,
and what is materialised per step.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Mapping, Sequence

import torch
from transformers import DynamicCache


def _cache_bytes(cache) -> int:
    return sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values) if t is not None
    )


class _ExpandedKV:
    """Records the per-head keys and values HF's MLA materialises from the cached latent."""

    def __init__(self, model):
        self.attns = [m for m in model.modules() if hasattr(m, "expand_kv") and hasattr(m, "kv_b_proj")]
        self.last: dict[int, int] = {}
        for i, a in enumerate(self.attns):
            a.expand_kv = self._wrap(i, a.expand_kv)  # instance attribute shadows the method

    def _wrap(self, i, fn):
        def expand_kv(kv_nope, k_rot):
            k, v = fn(kv_nope, k_rot)  # (B, H, T, d_qk), (B, H, T, d_v)
            self.last[i] = k.numel() * k.element_size() + v.numel() * v.element_size()
            return k, v

        return expand_kv

    def bytes(self) -> int:
        """Bytes of keys + values of every layer at the last step."""
        return sum(self.last.values())

    def detach(self) -> None:
        for a in self.attns:
            del a.expand_kv


def _decode(model, ids: torch.Tensor, steps: int):
    """Prefill ``ids`` (B, P) into a fresh cache, then ``steps`` greedy decoding steps;
    returns the cache and the seconds the decoding steps took."""
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    tok = out.logits[:, -1:].argmax(-1)  # (B, 1)
    sync = torch.cuda.synchronize if ids.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=tok, cache=cache, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1:].argmax(-1)
    sync()
    return cache, time.perf_counter() - t0


@torch.inference_mode()
def measure_kv_cache(
    model, n_prompt: int = 12, n_new: int = 4, batch: int = 2, dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> dict[str, float]:
    """KV-cache bytes per token, measured on the cache tensors after generating ``n_new``
    tokens from an ``n_prompt``-token prompt, with the model cast to ``dtype``.

    ``cache_bytes_per_token`` is what the cache holds; ``expanded_bytes_per_token`` is what
    HF's MLA materialises per token at a decoding step (per-head keys and values of every
    layer, re-expanded from the latent; 0 for MHA/GQA, whose cache is already per head).
    """
    m = copy.deepcopy(model).to(dtype).eval()
    if getattr(m.config, "_experts_implementation", None) == "grouped_mm":
        m.config._experts_implementation = "eager"  # grouped_mm needs 16-byte rows, which bf16 may not give
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, m.config.vocab_size, (batch, n_prompt), generator=gen)  # (B, P)
    expanded = _ExpandedKV(m)
    cache, _ = _decode(m, ids.to(next(m.parameters()).device), n_new)
    n_tok = batch * (n_prompt + n_new)
    return {
        "cache_bytes_per_token": _cache_bytes(cache) / n_tok,
        "expanded_bytes_per_token": expanded.bytes() / n_tok,
        "dtype_bytes": torch.empty(0, dtype=dtype).element_size(),
        "cached_tokens": n_prompt + n_new,
    }


@torch.inference_mode()
def decode_benchmark(
    models: Mapping[str, Any],
    context_lens: Sequence[int],
    batch: int = 8,
    steps: int = 16,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, dict]:
    """Decoding speed and memory of each model after prompts of ``context_lens`` tokens.

    Returns ``{name: {ctx: {"ms_per_step": [per repeat], "cache_bytes", "expanded_bytes"}}}``
    where a step decodes one token for each of ``batch`` rows; models are interleaved in
    every repeat so that a busy machine slows them alike.  Bytes are at the model's dtype.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict] = {n: {} for n in models}
    for ctx in context_lens:
        vocab = min(m.config.vocab_size for m in models.values())
        ids = torch.randint(4, vocab, (batch, ctx), generator=gen)  # (B, ctx)
        for r in range(repeats + 1):  # repeat 0 warms up
            for name, m in models.items():
                expanded = _ExpandedKV(m)
                try:
                    cache, secs = _decode(m.eval(), ids.to(next(m.parameters()).device), steps)
                finally:
                    expanded.detach()
                rec = out[name].setdefault(
                    ctx, {"ms_per_step": [], "cache_bytes": _cache_bytes(cache), "expanded_bytes": expanded.bytes()}
                )
                if r > 0:
                    rec["ms_per_step"].append(1e3 * secs / steps)
    return out
