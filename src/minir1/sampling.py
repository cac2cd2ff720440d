"""Batched sampling with a KV cache: temperature, top-p, stop at eos, a seed per call.

Why not ``model.generate``?  For our tiny models the work per token is microseconds and
``generate``'s generality (logits processors, stopping criteria, cache bookkeeping)
dominates; this loop does only what RL needs and returns tensors ready for the GRPO
loss.  Under greedy decoding it produces exactly what HF ``generate`` produces (tested),
and it keeps left-padded prompts with the same position ids (cumulative sum of the
attention mask), so it works with any causal LM, including real checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache


@dataclass
class Generation:
    """Sampled completions.  Row ``i * G + j`` is sample ``j`` of prompt ``i``."""

    prompt_ids: torch.Tensor       # (N, P) left-padded with pad
    prompt_mask: torch.Tensor      # (N, P) 1 on real prompt tokens
    completion_ids: torch.Tensor   # (N, C) right-padded with pad after eos
    completion_mask: torch.Tensor  # (N, C) 1 on generated tokens up to and including eos
    texts: list[str] = field(default_factory=list)    # decoded completions, tags kept, eos/pad removed
    n_tokens: list[int] = field(default_factory=list)  # generated tokens per row (incl. eos)
    finished: list[bool] = field(default_factory=list)  # True when the row ended with eos

    def __len__(self) -> int:
        return len(self.texts)


def _check(max_new_tokens, temperature, top_p, num_return_sequences, batch_size):
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1; got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy); got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p!r}")
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be >= 1; got {num_return_sequences!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}")


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """Choose the next token for each row of ``logits`` (B, V)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p  # keep the smallest set reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


@torch.inference_mode()
def _generate_batch(model, ids, mask, max_new_tokens, temperature, top_p, gen, eos_id, pad_id):
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P) positions skip left padding
    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, logits_to_keep=1,
                use_cache=True)
    logits = out.logits[:, -1, :]  # (B, V)
    next_pos = pos[:, -1:] + 1     # (B, 1)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    attn, toks = mask, []
    for _ in range(max_new_tokens):
        tok = _pick(logits, temperature, top_p, gen)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        toks.append(tok)
        done = done | (tok == eos_id)
        if bool(done.all()) or len(toks) == max_new_tokens:
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos,
                    cache=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    comp = torch.stack(toks, dim=1)  # (B, C)
    # 1 up to and including the first eos; 0 on the pad that follows it.
    is_eos = (comp == eos_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return comp, (~after_eos).long(), done


FAST_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


class _StaticCacheDecoder:
    """Llama / Qwen2 decoding with a preallocated KV cache, reusing the model's own modules.

    Same maths as the model's ``forward`` (its projections, RoPE, norms and MLP modules are
    called as they are); what it removes is the per-step bookkeeping: no growing cache
    (``torch.cat`` every step), one boolean mask, and finished rows dropped from the batch.
    """

    def __init__(self, model, batch: int, max_len: int):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        cfg, inner = model.config, model.model
        self.model, self.inner, self.rope = model, inner, apply_rotary_pos_emb
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        shape = (len(inner.layers), batch, self.n_kv, max_len, self.head_dim)  # (L, B, H_kv, T, D)
        dtype, dev = inner.embed_tokens.weight.dtype, inner.embed_tokens.weight.device
        self.k = torch.zeros(shape, dtype=dtype, device=dev)
        self.v = torch.zeros(shape, dtype=dtype, device=dev)
        self.len = 0

    def select(self, rows: torch.Tensor) -> None:
        """Keep only batch ``rows`` (drop finished sequences)."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the last position after feeding ``ids`` (B, t) at ``pos`` (B, t)."""
        B, t = ids.shape
        t0, t1 = self.len, self.len + t
        x = self.inner.embed_tokens(ids)                               # (B, t, C)
        cos, sin = self.inner.rotary_emb(x, pos)
        causal = torch.ones(t, t1, dtype=torch.bool, device=ids.device).tril(diagonal=t0)
        mask = key_mask[:, None, None, :t1] & causal                  # (B, 1, t, t1)
        # Every query may see itself, so left-pad rows stay finite (they are never read).
        mask = mask | (torch.arange(t1, device=ids.device) == (t0 + torch.arange(t, device=ids.device))[:, None])
        for i, layer in enumerate(self.inner.layers):
            attn, h = layer.self_attn, layer.input_layernorm(x)
            q = attn.q_proj(h).view(B, t, -1, self.head_dim).transpose(1, 2)        # (B, H, t, D)
            k = attn.k_proj(h).view(B, t, self.n_kv, self.head_dim).transpose(1, 2)  # (B, H_kv, t, D)
            v = attn.v_proj(h).view(B, t, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = self.rope(q, k, cos, sin)
            self.k[i, :, :, t0:t1], self.v[i, :, :, t0:t1] = k, v
            o = torch.nn.functional.scaled_dot_product_attention(
                q, self.k[i, :, :, :t1], self.v[i, :, :, :t1], attn_mask=mask, scale=attn.scaling,
                enable_gqa=q.shape[1] != self.n_kv)                                   # (B, H, t, D)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(B, t, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.len = t1
        return self.model.lm_head(self.inner.norm(x[:, -1]))           # (B, V)


@torch.inference_mode()
def _generate_batch_fast(model, ids, mask, max_new_tokens, temperature, top_p, gen, eos_id, pad_id):
    B, P = ids.shape
    dec = _StaticCacheDecoder(model, B, P + max_new_tokens)
    key_mask = torch.cat([mask.bool(), torch.ones(B, max_new_tokens, dtype=torch.bool, device=ids.device)], 1)
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)                   # (B, P)
    logits = dec(ids, pos, key_mask)
    next_pos = pos[:, -1:] + 1
    out = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=ids.device)
    alive = torch.arange(B, device=ids.device)                        # original row of each live row
    for step in range(max_new_tokens):
        tok = _pick(logits, temperature, top_p, gen)
        out[alive, step] = tok
        live = tok != eos_id
        if not bool(live.any()) or step == max_new_tokens - 1:
            break
        if not bool(live.all()):                                       # drop finished rows
            alive, tok, next_pos, key_mask = alive[live], tok[live], next_pos[live], key_mask[live]
            dec.select(live.nonzero().squeeze(1))
        logits = dec(tok[:, None], next_pos, key_mask)
        next_pos = next_pos + 1
    width = int((out != pad_id).any(0).nonzero().max()) + 1 if bool((out != pad_id).any()) else 1
    comp = out[:, :width]
    is_eos = (comp == eos_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    done = is_eos.any(dim=1)
    return comp, (~after_eos).long(), done


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, num_return_sequences: int = 1, seed: int = 0,
             batch_size: int = 256, fast: bool = True) -> Generation:
    """Sample ``num_return_sequences`` completions for each prompt (text already templated).

    ``temperature=0`` is greedy decoding.  The same ``seed`` gives the same samples.
    ``fast`` uses the static-cache decoder for Llama / Qwen2 models (else the model's
    own ``forward`` with a ``DynamicCache``, which works for any causal LM).
    """
    _check(max_new_tokens, temperature, top_p, num_return_sequences, batch_size)
    if not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    dev = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    ids = enc["input_ids"].repeat_interleave(num_return_sequences, dim=0).to(dev)   # (N, P)
    mask = enc["attention_mask"].repeat_interleave(num_return_sequences, dim=0).to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    comps, cmasks, dones = [], [], []
    was_training = model.training
    model.eval()
    step_fn = _generate_batch_fast if (fast and type(model).__name__ in FAST_ARCHITECTURES) else _generate_batch
    for s in range(0, ids.shape[0], batch_size):
        c, m, d = step_fn(model, ids[s:s + batch_size], mask[s:s + batch_size],
                                  max_new_tokens, temperature, top_p, gen, eos_id, pad_id)
        comps.append(c), cmasks.append(m), dones.append(d)
    model.train(was_training)
    width = max(c.shape[1] for c in comps)
    comp = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=pad_id) for c in comps])
    cmask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=0) for m in cmasks])
    done = torch.cat(dones)
    drop = {eos_id, pad_id, tokenizer.bos_token_id}
    texts = [tokenizer.decode([t for t in row.tolist() if t not in drop], skip_special_tokens=False)
             for row in comp.cpu()]
    return Generation(prompt_ids=ids, prompt_mask=mask, completion_ids=comp, completion_mask=cmask,
                      texts=texts, n_tokens=cmask.sum(dim=1).tolist(), finished=done.tolist())
