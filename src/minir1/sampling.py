"""Batched sampling with a KV cache: temperature, top-p, stop at eos, a seed per call.

Why not ``model.generate``?  For our tiny models a decode step is a few milliseconds of
small matmuls and reads of the KV cache, and ``generate``'s generality (module dispatch,
logits processors, a cache that grows by concatenation, a flash-attention kernel that costs
~0.7 ms per layer for one query row on the CPU) takes as long again. For Llama and Qwen2
models :class:`_Decoder` writes the forward pass out by hand (fp32, allclose to HF's
forward; tested) and shares each prompt's keys and values among its G samples, which is
what GRPO asks for. Under greedy decoding it produces exactly what HF ``generate`` produces
(tested), and it keeps left-padded prompts with the same position ids (cumulative sum of the
attention mask). Other causal LMs go through their own ``forward`` with a ``DynamicCache``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache


@dataclass
class Generation:
    """Sampled completions.  Row ``i * G + j`` is sample ``j`` of prompt ``i``."""

    prompt_ids: torch.Tensor  # (N, P) left-padded with pad
    prompt_mask: torch.Tensor  # (N, P) 1 on real prompt tokens
    completion_ids: torch.Tensor  # (N, C) right-padded with pad after eos
    completion_mask: torch.Tensor  # (N, C) 1 on generated tokens up to and including eos
    texts: list[str] = field(default_factory=list)  # decoded completions, tags kept, eos/pad removed
    n_tokens: list[int] = field(default_factory=list)  # generated tokens per row (incl. eos)
    finished: list[bool] = field(default_factory=list)  # True when the row ended with eos

    def __len__(self) -> int:
        return len(self.texts)


def set_threads(n: int) -> int:
    """Set torch's intra-op threads once for a whole run (``n >= 1``); returns ``n``.

    Tiny models run best on one thread per process. Results are bit-identical for a given
    thread count; across thread counts the matmul reductions may split differently (see
    ``tests/test_determinism.py`` for what holds on this machine).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be an int >= 1; got {n!r}")
    torch.set_num_threads(n)
    return n


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
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, logits_to_keep=1, use_cache=True)
    logits = out.logits[:, -1, :]  # (B, V)
    next_pos = pos[:, -1:] + 1  # (B, 1)
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
        out = model(
            input_ids=tok[:, None],
            attention_mask=attn,
            position_ids=next_pos,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    comp = torch.stack(toks, dim=1)  # (B, C)
    # 1 up to and including the first eos; 0 on the pad that follows it.
    is_eos = (comp == eos_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return comp, (~after_eos).long(), done


FAST_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


class _Weights:
    """One layer's weights, fused for decoding: one QKV matmul, one gate-up matmul."""

    def __init__(self, layer):
        a, mlp = layer.self_attn, layer.mlp

        def cat(*ms):
            return torch.cat([m.weight for m in ms], 0).detach()

        def bias(*ms):
            return torch.cat([m.bias for m in ms]).detach() if all(m.bias is not None for m in ms) else None

        self.qkv_w, self.qkv_b = cat(a.q_proj, a.k_proj, a.v_proj), bias(a.q_proj, a.k_proj, a.v_proj)
        self.o_w, self.o_b = a.o_proj.weight.detach(), a.o_proj.bias
        self.gu_w, self.gu_b = cat(mlp.gate_proj, mlp.up_proj), bias(mlp.gate_proj, mlp.up_proj)
        self.down_w, self.down_b = mlp.down_proj.weight.detach(), mlp.down_proj.bias
        self.act = mlp.act_fn
        self.ln1, self.ln1_eps = layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon
        self.ln2, self.ln2_eps = (
            layer.post_attention_layernorm.weight.detach(),
            layer.post_attention_layernorm.variance_epsilon,
        )
        self.scale = a.scaling


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """``LlamaRMSNorm`` (fp32), op for op."""
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class _Decoder:
    """Llama / Qwen2 decoding written out by hand, with one preallocated KV cache per prompt group.

    The same maths as the model's ``forward`` in fp32 (RMSNorm op for op, RoPE from the
    model's own rotary module, tabulated once), but with no module dispatch in the loop:
    one fused QKV matmul and one fused gate-up matmul per layer, RoPE on q and k at once, and
    attention as batched matmuls against a static cache.

    The G samples of one prompt share a cache ``(L, U, H_kv, P + T·G, D)``: the prompt's keys
    first (run once per prompt, not once per sample), then the generated keys step-major
    (slot ``P + t·G + g`` holds sample g's key of step t). At step j the G × (H / H_kv)
    queries of a prompt and kv head meet the contiguous slice ``[:P + (j+1)·G]`` in one
    matmul, and an additive mask keeps each sample to the prompt and its own tokens (the
    other samples' slots get weight exactly 0). Decoding a tiny model is bound by per-op
    overhead and memory traffic, not arithmetic: two large batched matmuls per layer cost less
    than the G-times-smaller per-row ones they replace, and the prompt is read once per group.
    """

    def __init__(self, model, n_prompts: int, group: int, prompt_len: int, max_new: int):
        cfg, inner = model.config, model.model
        self.H, self.Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.G = group
        self.layers = [_Weights(layer) for layer in inner.layers]
        self.embed = inner.embed_tokens.weight.detach()
        self.norm, self.norm_eps = inner.norm.weight.detach(), inner.norm.variance_epsilon
        self.head = model.lm_head  # called as a module, so forward hooks on it still apply
        dtype, dev = self.embed.dtype, self.embed.device
        pos = torch.arange(prompt_len + max_new, device=dev)[None]  # (1, T)
        cos, sin = inner.rotary_emb(self.embed[:1], pos)  # (1, T, D) each
        half = self.D // 2
        self.cos = cos[0]  # (T, D)
        # rotate_half(x) * sin == swap_halves(x) * [-sin1, sin2] exactly (only signs move)
        self.sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)  # (T, D)
        L, U, G, R = len(self.layers), n_prompts, group, self.H // self.Hkv
        self.P = prompt_len
        self.k = torch.zeros((L, U, self.Hkv, prompt_len + max_new * G, self.D), dtype=dtype, device=dev)
        self.v = torch.zeros_like(self.k)
        # additive mask (U, 1, G·R, P + T·G): -inf on left padding and on the other samples' slots
        own = torch.eye(G, dtype=torch.bool, device=dev).repeat_interleave(R, 0).repeat(1, max_new)  # (G R, T G)
        gen = torch.zeros(G * R, max_new * G, dtype=dtype, device=dev).masked_fill(~own, float("-inf"))
        self.bias = torch.cat(
            [torch.zeros(U, 1, G * R, prompt_len, dtype=dtype, device=dev), gen.expand(U, 1, -1, -1)], -1
        )
        self.len = 0  # generated tokens cached

    def select(self, groups: torch.Tensor) -> None:
        """Keep only prompt ``groups`` (drop groups whose rows have all finished)."""
        end = self.P + self.len * self.G
        k = torch.zeros((self.k.shape[0], len(groups), *self.k.shape[2:]), dtype=self.k.dtype, device=self.k.device)
        v = torch.zeros_like(k)
        k[:, :, :, :end], v[:, :, :, :end] = self.k[:, groups, :, :end], self.v[:, groups, :, :end]
        self.k, self.v, self.bias = k, v, self.bias[groups]

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """RoPE on ``x`` (B, t, n, D) with tabulated ``cos``/``sin`` (B, t, 1, D), as ``apply_rotary_pos_emb``."""
        B, t, n, D = x.shape
        swapped = x.view(B, t, n, 2, D // 2).flip(3).view(B, t, n, D)
        return x * cos + swapped * sin

    def _mlp_and_attn_out(self, x, o, w):
        F = torch.nn.functional
        x = x + F.linear(o, w.o_w, w.o_b)
        gate, up = F.linear(_rms(x, w.ln2, w.ln2_eps), w.gu_w, w.gu_b).chunk(2, dim=-1)
        return x + F.linear(w.act(gate) * up, w.down_w, w.down_b)

    def _qkv(self, x, pos, w):
        """Normed input -> q, k, v (B, t, n, D) with RoPE on q and k."""
        B, t = x.shape[:2]
        H, Hkv = self.H, self.Hkv
        qkv = torch.nn.functional.linear(_rms(x, w.ln1, w.ln1_eps), w.qkv_w, w.qkv_b).view(B, t, H + 2 * Hkv, self.D)
        qk = self._rope(qkv[:, :, : H + Hkv], self.cos[pos][:, :, None], self.sin[pos][:, :, None])
        return qk[:, :, :H], qk[:, :, H:], qkv[:, :, H + Hkv :]

    def prefill(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the ``U`` distinct prompts ``ids`` (U, P), left-padded; logits (U, V) of their last position."""
        U, P = ids.shape
        H, Hkv, D = self.H, self.Hkv, self.D
        R = H // Hkv
        self.bias[..., :P].masked_fill_(~mask.bool()[:, None, None, :], float("-inf"))
        causal = torch.ones(P, P, dtype=torch.bool, device=ids.device).tril()
        # causal and not padding; every query sees itself, so pad rows stay finite (never read)
        bias = (
            self.bias[:, :, :1, :P]
            .masked_fill(~causal, float("-inf"))
            .masked_fill(torch.eye(P, dtype=torch.bool, device=ids.device), 0.0)[:, :, None]
        )  # (U, 1, 1, P, P)
        x = torch.nn.functional.embedding(ids, self.embed)  # (U, P, C)
        for i, w in enumerate(self.layers):
            q, k, v = self._qkv(x, pos, w)
            kp, vp = self.k[i, :, :, :P], self.v[i, :, :, :P]  # (U, H_kv, P, D) views
            kp.copy_(k.transpose(1, 2)), vp.copy_(v.transpose(1, 2))
            q = q.transpose(1, 2).reshape(U * Hkv, R * P, D)
            s = torch.bmm(q, kp.reshape(U * Hkv, P, D).transpose(1, 2)).view(U, Hkv, R, P, P)
            p = torch.softmax(s * w.scale + bias, dim=-1).view(U * Hkv, R * P, P)
            o = torch.bmm(p, vp.reshape(U * Hkv, P, D)).view(U, H, P, D).transpose(1, 2).reshape(U, P, H * D)
            x = self._mlp_and_attn_out(x, o, w)
        return self.head(_rms(x[:, -1], self.norm, self.norm_eps))  # (U, V)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Feed one token per row, ``tok`` (N,) at ``pos`` (N,); logits (N, V). Rows are prompt-major."""
        N = tok.shape[0]
        G, H, Hkv, D = self.G, self.H, self.Hkv, self.D
        U, R, P, j = N // G, H // Hkv, self.P, self.len
        n = P + (j + 1) * G  # keys in use: the prompt, then j + 1 steps of G samples
        bias = self.bias[..., :n]  # (U, 1, G R, n)
        x = torch.nn.functional.embedding(tok[:, None], self.embed)  # (N, 1, C)
        for i, w in enumerate(self.layers):
            q, k, v = self._qkv(x, pos[:, None], w)  # (N, 1, n, D)
            self.k[i, :, :, P + j * G : n] = k.view(U, G, Hkv, D).transpose(1, 2)
            self.v[i, :, :, P + j * G : n] = v.view(U, G, Hkv, D).transpose(1, 2)
            qg = q.view(U, G, Hkv, R, D).transpose(1, 2).reshape(U, Hkv, G * R, D)
            kc, vc = self.k[i, :, :, :n], self.v[i, :, :, :n]  # (U, H_kv, n, D), no copy
            o = torch.nn.functional.scaled_dot_product_attention(qg, kc, vc, attn_mask=bias, scale=w.scale)
            o = o.view(U, Hkv, G, R, D).transpose(1, 2).reshape(N, 1, H * D)
            x = self._mlp_and_attn_out(x, o, w)
        self.len = j + 1
        return self.head(_rms(x[:, -1], self.norm, self.norm_eps))  # (N, V)


# Drop finished prompt groups from the batch only when at most this fraction of them is still
# live: each drop copies the KV caches, so dropping one at a time costs more than it saves.
COMPACT_AT = 0.75


@torch.inference_mode()
def _generate_batch_fast(model, ids, mask, group, max_new_tokens, temperature, top_p, gen, eos_id, pad_id):
    """``ids``/``mask`` (U, P): distinct prompts; ``group`` samples each; rows of the result are prompt-major."""
    U, P = ids.shape
    N = U * group
    dec = _Decoder(model, U, group, P, max_new_tokens)
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (U, P)
    logits = dec.prefill(ids, pos, mask).repeat_interleave(group, dim=0)  # (N, V)
    next_pos = (pos[:, -1] + 1).repeat_interleave(group)  # (N,)
    out = torch.full((N, max_new_tokens), pad_id, dtype=torch.long, device=ids.device)
    alive = torch.arange(N, device=ids.device)  # original row of each batch row
    done = torch.zeros(N, dtype=torch.bool, device=ids.device)  # batch rows that emitted eos
    for step in range(max_new_tokens):
        tok = _pick(logits, temperature, top_p, gen)
        tok = tok.masked_fill(done, pad_id)
        out[alive, step] = tok
        done = done | (tok == eos_id)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        live_groups = ~done.view(-1, group).all(dim=1)  # (groups,)
        if int(live_groups.sum()) <= COMPACT_AT * len(live_groups):  # drop finished groups
            live = live_groups.repeat_interleave(group)
            alive, tok, next_pos, done = alive[live], tok[live], next_pos[live], done[live]
            dec.select(live_groups.nonzero().squeeze(1))
        logits = dec.step(tok, next_pos)
        next_pos = next_pos + 1
    width = int((out != pad_id).any(0).nonzero().max()) + 1 if bool((out != pad_id).any()) else 1
    comp = out[:, :width]
    is_eos = (comp == eos_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return comp, (~after_eos).long(), is_eos.any(dim=1)


def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_return_sequences: int = 1,
    seed: int = 0,
    batch_size: int = 256,
    fast: bool = True,
) -> Generation:
    """Sample ``num_return_sequences`` completions for each prompt (text already templated).

    ``temperature=0`` is greedy decoding.  The same ``seed`` gives the same samples.
    ``fast`` uses the hand-written decoder for Llama / Qwen2 models (:class:`_Decoder`; else
    the model's own ``forward`` with a ``DynamicCache``, which works for any causal LM). The
    fast path batches whole prompt groups: ``batch_size // num_return_sequences`` prompts
    (at least one) per call.
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
    ids = enc["input_ids"].repeat_interleave(num_return_sequences, dim=0).to(dev)  # (N, P)
    mask = enc["attention_mask"].repeat_interleave(num_return_sequences, dim=0).to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    comps, cmasks, dones = [], [], []
    was_training = model.training
    model.eval()
    if fast and type(model).__name__ in FAST_ARCHITECTURES:  # whole prompt groups per batch
        G, per = num_return_sequences, max(1, batch_size // num_return_sequences)
        uids, umask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
        for s in range(0, uids.shape[0], per):
            c, m, d = _generate_batch_fast(
                model, uids[s : s + per], umask[s : s + per], G, max_new_tokens, temperature, top_p, gen, eos_id, pad_id
            )
            comps.append(c), cmasks.append(m), dones.append(d)
    else:
        for s in range(0, ids.shape[0], batch_size):
            c, m, d = _generate_batch(
                model,
                ids[s : s + batch_size],
                mask[s : s + batch_size],
                max_new_tokens,
                temperature,
                top_p,
                gen,
                eos_id,
                pad_id,
            )
            comps.append(c), cmasks.append(m), dones.append(d)
    model.train(was_training)
    width = max(c.shape[1] for c in comps)
    comp = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=pad_id) for c in comps])
    cmask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=0) for m in cmasks])
    done = torch.cat(dones)
    drop = {eos_id, pad_id, tokenizer.bos_token_id}
    texts = [
        tokenizer.decode([t for t in row.tolist() if t not in drop], skip_special_tokens=False) for row in comp.cpu()
    ]
    return Generation(
        prompt_ids=ids,
        prompt_mask=mask,
        completion_ids=comp,
        completion_mask=cmask,
        texts=texts,
        n_tokens=cmask.sum(dim=1).tolist(),
        finished=done.tolist(),
    )
