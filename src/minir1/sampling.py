"""Batched sampling with a KV cache: temperature, top-p, stop at eos, a seed per call.

Why not ``model.generate``?  For our tiny models a decode step is a few milliseconds of
small matmuls and reads of the KV cache, and ``generate``'s generality (module dispatch,
logits processors, a cache that grows by concatenation, a flash-attention kernel that costs
~0.7 ms per layer for one query row on the CPU) takes as long again. For Llama and Qwen2
models :class:`_Decoder` writes the forward pass out by hand (fp32, allclose to HF's
forward; tested), shares each prompt's keys and values among its G samples, which is what
GRPO asks for, and lets rows that have finished leave the batch. Under greedy decoding it
produces exactly what HF ``generate`` produces (tested), and it keeps left-padded prompts
with the same position ids (cumulative sum of the attention mask). Other causal LMs go
through their own ``forward`` with a ``DynamicCache``.

Sampling draws one uniform number per row and step from the call's seeded generator and
picks the token by inverse CDF (:func:`_pick`), so the same seed gives the same tokens, bit
for bit, and on the fast path a row's tokens do not depend on when other rows finish.
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


def _pick(logits: torch.Tensor, temperature: float, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """Choose the next token for each row of ``logits`` (B, V), given one uniform draw ``u`` (B,) in [0, 1) per row.

    Inverse-CDF sampling: the first token whose cumulative probability exceeds ``u`` times the
    total. One random number per row instead of one per vocabulary entry (``torch.multinomial``
    draws an exponential for every entry, which cost more than the rest of the pick). The
    largest float32 ``torch.rand`` gives is 1 - 2^-24, so ``u * total < total`` and the token
    chosen always has probability > 0 (never outside the top-p set).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    order = None
    if top_p < 1.0:  # sample in sorted order among the smallest set reaching top_p
        probs, order = probs.sort(dim=-1, descending=True)
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > top_p, 0.0)
    cdf = probs.cumsum(dim=-1)  # (B, V)
    tok = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)  # (B, 1)
    return (tok if order is None else order.gather(-1, tok)).squeeze(-1)


def stop_ids(model, tokenizer) -> int | torch.Tensor:
    """The token id(s) that end a completion: the tokenizer's eos id, or a tensor of ids when the model's
    generation config names others too (a chat checkpoint ends its turn with its own token, e.g. Qwen2.5's
    ``<|im_end|>``; :func:`minir1.checkpoint.load_checkpoint` writes them there). The book's models name only
    the tokenizer's eos, so for them this is that int and sampling is exactly what it was.
    """
    eos = tokenizer.eos_token_id
    named = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    named = [] if named is None else [named] if isinstance(named, int) else list(named)
    ids = sorted({i for i in [eos, *named] if i is not None})
    if ids == [eos]:
        return eos
    return torch.tensor(ids, dtype=torch.long, device=next(model.parameters()).device)


def _is_stop(tok: torch.Tensor, stop: int | torch.Tensor) -> torch.Tensor:
    """Where ``tok`` holds a stop token (``stop``: one id, or a tensor of ids; see :func:`stop_ids`)."""
    return tok == stop if isinstance(stop, int) else torch.isin(tok, stop)


def _first_stop(comp: torch.Tensor, stop: int | torch.Tensor) -> torch.Tensor:
    """(N, T) bool: each row's first stop token (needed where the pad token is also a stop token)."""
    hit = _is_stop(comp, stop).long()
    return (hit.cumsum(dim=1) == 1) & (hit == 1)


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
        tok = _pick(logits, temperature, top_p, torch.rand(ids.shape[0], generator=gen, device=ids.device))
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        toks.append(tok)
        done = done | _is_stop(tok, eos_id)
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
    is_eos = _is_stop(comp, eos_id).long()
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


def _rope_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HF's rotary ``cos``, ``sin`` (..., D) -> ``cos`` and a signed ``sin`` for :func:`_rope`.

    ``rotate_half(x) * sin == swap_halves(x) * [-sin1, sin2]`` exactly (only signs move), so
    RoPE needs one flip instead of two slices, a negation and a concatenation.
    """
    half = sin.shape[-1] // 2
    return cos, torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """``apply_rotary_pos_emb`` on ``x`` (..., D) with tables from :func:`_rope_tables` (broadcast to ``x``)."""
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)
    return torch.addcmul(x * cos, swapped, signed_sin)


def _plus_linear(x: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``x + F.linear(h, w, b)`` with the residual ``x`` as the bias: one ``addmm``, not a matmul and an add."""
    return torch.nn.functional.linear(h, w, x if b is None else x + b)


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """``LlamaRMSNorm`` (fp32) in one fused kernel instead of six (allclose; bit-equal on this machine)."""
    return torch.nn.functional.rms_norm(x, w.shape, w, eps)


class _Decoder:
    """Llama / Qwen2 decoding written out by hand, with a preallocated KV cache written in place.

    The same maths as the model's ``forward`` in fp32 (RMSNorm fused, RoPE from the model's own
    rotary module, tabulated once), but with no module dispatch in the loop: one fused QKV
    matmul and one fused gate-up matmul per layer, RoPE on q and k at once, and attention as
    batched matmuls against a static cache. Decoding a tiny model is bound by per-op overhead
    and by reading the KV cache, not by arithmetic.

    The G samples of a prompt share its keys and values: each prompt runs once
    (:meth:`prefill`) into a prompt cache ``(L, U·H_kv, P, D)``, read once per group at every
    step (the G × H/H_kv queries of a prompt and kv head meet it in one matmul); the generated
    keys go to a cache ``(L, B·H_kv, T, D)``, one row per sample and kv head, written in place.
    The two score blocks are joined for one softmax. Finished rows can leave the batch
    (:meth:`select`): their group slots then get zero queries in the prompt matmul.
    """

    def __init__(self, model, n_prompts: int, group: int, prompt_len: int, max_new: int):
        cfg, inner = model.config, model.model
        self.H, self.Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.G, self.P = group, prompt_len
        self.layers = [_Weights(layer) for layer in inner.layers]
        self.embed = inner.embed_tokens.weight.detach()
        self.norm, self.norm_eps = inner.norm.weight.detach(), inner.norm.variance_epsilon
        self.head = model.lm_head  # called as a module, so forward hooks on it still apply
        dtype, dev = self.embed.dtype, self.embed.device
        cos, sin = inner.rotary_emb(self.embed[:1], torch.arange(prompt_len + max_new, device=dev)[None])  # (1, T, D)
        self.cos, self.sin = _rope_tables(cos[0], sin[0])  # (T, D) each
        L, UH = len(self.layers), n_prompts * self.Hkv
        self.kp = torch.zeros((L, UH, prompt_len, self.D), dtype=dtype, device=dev)
        self.vp = torch.zeros_like(self.kp)
        self.pbias = torch.zeros(UH, 1, prompt_len, dtype=dtype, device=dev)  # additive: -inf on left padding
        # written at position t before any read of [:t + 1]: no need to zero them
        self.kg = torch.empty((L, UH * group, max_new, self.D), dtype=dtype, device=dev)
        self.vg = torch.empty_like(self.kg)
        self.slots = torch.arange(n_prompts * group, device=dev)  # batch row -> prompt · G + sample
        self.full = True  # every slot of every prompt group is a batch row (no row dropped)
        self.len = 0  # generated tokens cached

    def select(self, rows: torch.Tensor) -> None:
        """Keep only batch ``rows`` (drop rows that have finished); prompts with no row left go too."""
        Hkv, G = self.Hkv, self.G
        heads = torch.arange(Hkv, device=rows.device)
        keep, n = (rows[:, None] * Hkv + heads).flatten(), self.len
        # The kept rows move to the front of the same buffers (a view): only the n positions
        # written so far are copied, and no fresh memory is touched (index_select, not advanced
        # indexing: the same copy, several times faster on the CPU).
        for c in (self.kg, self.vg):
            for layer in c:  # (B·H_kv, T, D) each
                layer[: len(keep), :n] = layer[:, :n].index_select(0, keep)
        self.kg, self.vg = self.kg[:, : len(keep)], self.vg[:, : len(keep)]
        slots = self.slots[rows]
        prompts, which = torch.unique(slots // G, return_inverse=True)  # prompts still in use
        kept = (prompts[:, None] * Hkv + heads).flatten()
        self.kp, self.vp, self.pbias = self.kp.index_select(1, kept), self.vp.index_select(1, kept), self.pbias[kept]
        self.slots = which * G + slots % G
        self.full = len(rows) == len(prompts) * G

    def _to_groups(self, x: torch.Tensor) -> torch.Tensor:
        """Per row (B, H_kv, R, n) -> per prompt (U·H_kv, G·R, n): a group's rows side by side, 0 for dropped rows."""
        U, G, (_, Hkv, R, n) = self.kp.shape[1] // self.Hkv, self.G, x.shape
        if not self.full:
            x = x.new_zeros(U * G, Hkv, R, n).index_copy_(0, self.slots, x)
        return x.view(U, G, Hkv, R, n).transpose(1, 2).reshape(U * Hkv, G * R, n)

    def _from_groups(self, x: torch.Tensor) -> torch.Tensor:
        """Per prompt (U·H_kv, G·R, n) -> per row (B, H_kv, R, n), the inverse of :meth:`_to_groups` (may be a view)."""
        U, G, Hkv, n = self.kp.shape[1] // self.Hkv, self.G, self.Hkv, x.shape[-1]
        x = x.view(U, Hkv, G, -1, n).transpose(1, 2)  # (U, G, H_kv, R, n)
        return x.flatten(0, 1) if self.full else x.flatten(0, 1).index_select(0, self.slots)

    @staticmethod
    def _rest_of_layer(x, o, w):
        """Output projection of the attention ``o``, residual, then the MLP block and its residual."""
        x = _plus_linear(x, o, w.o_w, w.o_b)
        gate, up = torch.nn.functional.linear(_rms(x, w.ln2, w.ln2_eps), w.gu_w, w.gu_b).chunk(2, dim=-1)
        return _plus_linear(x, w.act(gate) * up, w.down_w, w.down_b)

    def _qkv(self, x, cos, sin, w):
        """Input (..., C) -> q (..., H, D) and k, v (..., H_kv, D), RoPE on q and k."""
        H, Hkv = self.H, self.Hkv
        qkv = torch.nn.functional.linear(_rms(x, w.ln1, w.ln1_eps), w.qkv_w, w.qkv_b).unflatten(-1, (-1, self.D))
        qk = _rope(qkv[..., : H + Hkv, :], cos, sin)
        return qk[..., :H, :], qk[..., H:, :], qkv[..., H + Hkv :, :]

    def prefill(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the ``U`` distinct prompts ``ids`` (U, P), left-padded; logits (U, V) of their last position."""
        U, P = ids.shape
        H, Hkv, D = self.H, self.Hkv, self.D
        pad = ~mask.bool()  # (U, P)
        self.pbias.masked_fill_(pad.repeat_interleave(Hkv, 0)[:, None], float("-inf"))
        causal = torch.ones(P, P, dtype=torch.bool, device=ids.device).tril()
        # causal and not padding; every query sees itself, so pad rows stay finite (never read)
        allowed = (causal & ~pad[:, None, None, :]) | torch.eye(P, dtype=torch.bool, device=ids.device)
        bias = torch.zeros(allowed.shape, dtype=self.kp.dtype, device=ids.device).masked_fill(~allowed, float("-inf"))
        x = torch.nn.functional.embedding(ids, self.embed)  # (U, P, C)
        cos, sin = self.cos[pos][:, :, None], self.sin[pos][:, :, None]  # (U, P, 1, D)
        for i, w in enumerate(self.layers):
            q, k, v = (t.transpose(1, 2) for t in self._qkv(x, cos, sin, w))  # (U, heads, P, D)
            self.kp[i].view(U, Hkv, P, D).copy_(k)
            self.vp[i].view(U, Hkv, P, D).copy_(v)
            o = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, scale=w.scale, enable_gqa=H != Hkv
            )  # (U, H, P, D)
            x = self._rest_of_layer(x, o.transpose(1, 2).reshape(U, P, H * D), w)
        return self.head(_rms(x[:, -1], self.norm, self.norm_eps))  # (U, V)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Feed one token per batch row, ``tok`` (B,) at ``pos`` (B,); logits (B, V)."""
        B = tok.shape[0]
        H, Hkv, D, P, t = self.H, self.Hkv, self.D, self.P, self.len
        R = H // Hkv  # query heads per kv head (HF's repeat_kv)
        cos, sin = self.cos.index_select(0, pos)[:, None], self.sin.index_select(0, pos)[:, None]  # (B, 1, D)
        x = torch.nn.functional.embedding(tok, self.embed)  # (B, C)
        for i, w in enumerate(self.layers):
            q, k, v = self._qkv(x, cos, sin, w)  # (B, H, D), (B, H_kv, D), (B, H_kv, D)
            self.kg[i, :, t] = k.reshape(B * Hkv, D)
            self.vg[i, :, t] = v.reshape(B * Hkv, D)
            q = q.view(B, Hkv, R, D)
            # scores against the prompt (per group) and against the row's own generated keys
            sp = torch.baddbmm(self.pbias, self._to_groups(q), self.kp[i].transpose(1, 2), alpha=w.scale)
            sg = torch.bmm(q.reshape(B * Hkv, R, D), self.kg[i, :, : t + 1].transpose(1, 2)).mul_(w.scale)
            p = torch.softmax(torch.cat([self._from_groups(sp), sg.view(B, Hkv, R, t + 1)], dim=-1), dim=-1)
            o = torch.bmm(p.view(B * Hkv, R, -1)[..., P:], self.vg[i, :, : t + 1]).view(B, Hkv, R, D)
            o = o + self._from_groups(torch.bmm(self._to_groups(p[..., :P]), self.vp[i]))
            x = self._rest_of_layer(x, o.view(B, H * D), w)
        self.len = t + 1
        return self.head(_rms(x, self.norm, self.norm_eps))  # (B, V)


# Drop finished rows from the batch once at most this fraction of them is still live: each
# drop copies the KV caches, so dropping rows one at a time would cost more than it saves.
COMPACT_AT = 0.875


@torch.inference_mode()
def _generate_batch_fast(model, ids, mask, group, max_new_tokens, temperature, top_p, gen, eos_id, pad_id):
    """``ids``/``mask`` (U, P): distinct prompts; ``group`` samples each; rows of the result are prompt-major.

    Row n's token at step t is picked with the uniform ``u[t, n]``, drawn up front, so a row's
    samples do not depend on which other rows are still in the batch.
    """
    U, P = ids.shape
    N = U * group
    dec = _Decoder(model, U, group, P, max_new_tokens)
    u = torch.rand(max_new_tokens, N, generator=gen, device=ids.device)  # (T, N)
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (U, P)
    logits = dec.prefill(ids, pos, mask).repeat_interleave(group, dim=0)  # (N, V)
    next_pos = (pos[:, -1] + 1).repeat_interleave(group)  # (N,)
    out = torch.full((max_new_tokens, N), pad_id, dtype=torch.long, device=ids.device)  # step-major
    alive = torch.arange(N, device=ids.device)  # original row of each batch row
    done = torch.zeros(N, dtype=torch.bool, device=ids.device)  # batch rows that emitted eos
    for step in range(max_new_tokens):
        tok = _pick(logits, temperature, top_p, u[step, alive]).masked_fill_(done, pad_id)
        out[step].index_copy_(0, alive, tok)
        done |= _is_stop(tok, eos_id)
        finished = int(done.sum())
        if finished == len(done) or step == max_new_tokens - 1:
            break
        if finished and len(done) - finished <= COMPACT_AT * len(done):  # drop finished rows
            live = ~done
            alive, tok, next_pos, done = alive[live], tok[live], next_pos[live], done[live]
            dec.select(live.nonzero().squeeze(1))
        logits = dec.step(tok, next_pos)
        next_pos = next_pos + 1
    out = out.T  # (N, T)
    real = out != pad_id
    if not isinstance(eos_id, int) or eos_id == pad_id:  # a pad that is also a stop token ends a row: keep it
        real = real | _first_stop(out, eos_id)
    width = int(real.any(0).nonzero().max()) + 1 if bool(real.any()) else 1
    comp = out[:, :width]
    is_eos = _is_stop(comp, eos_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return comp, (~after_eos).long(), is_eos.any(dim=1)


def _encode_left(tokenizer, prompts: list[str]):
    """Tokenize ``prompts`` left-padded, as decoding needs; the tokenizer's padding side is restored."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        return tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side


def _sample_batches(model, enc, ids, mask, group: int, batch_size: int, fast: bool, args: tuple) -> tuple[list, ...]:
    """Sample batch by batch; ``(completions, masks, finished)``, one list entry per batch.

    ``enc``: the prompts, once each; ``ids``/``mask`` (N, P): each prompt repeated ``group``
    times. ``args`` = (max_new_tokens, temperature, top_p, generator, eos_id, pad_id).
    """
    comps, cmasks, dones = [], [], []
    if fast and type(model).__name__ in FAST_ARCHITECTURES:  # whole prompt groups per batch
        per = max(1, batch_size // group)
        uids, umask = enc["input_ids"].to(ids.device), enc["attention_mask"].to(ids.device)
        for s in range(0, uids.shape[0], per):
            c, m, d = _generate_batch_fast(model, uids[s : s + per], umask[s : s + per], group, *args)
            comps.append(c), cmasks.append(m), dones.append(d)
    else:
        for s in range(0, ids.shape[0], batch_size):
            c, m, d = _generate_batch(model, ids[s : s + batch_size], mask[s : s + batch_size], *args)
            comps.append(c), cmasks.append(m), dones.append(d)
    return comps, cmasks, dones


def _collect(tokenizer, ids, mask, comps: list, cmasks: list, dones: list, stop=None) -> Generation:
    """Join the batches (right-padded to the widest) and decode the completions (stop, pad and bos tokens dropped)."""
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    width = max(c.shape[1] for c in comps)
    comp = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=pad_id) for c in comps])
    cmask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=0) for m in cmasks])
    done = torch.cat(dones)
    drop = {eos_id, pad_id, tokenizer.bos_token_id} | (
        {int(i) for i in stop.tolist()} if torch.is_tensor(stop) else set()
    )
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
    enc = _encode_left(tokenizer, prompts)
    ids = enc["input_ids"].repeat_interleave(num_return_sequences, dim=0).to(dev)  # (N, P)
    mask = enc["attention_mask"].repeat_interleave(num_return_sequences, dim=0).to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    stop = stop_ids(model, tokenizer)  # the tokenizer's eos id (the book's models), or several ids
    args = (max_new_tokens, temperature, top_p, gen, stop, tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    batches = _sample_batches(model, enc, ids, mask, num_return_sequences, batch_size, fast, args)
    model.train(was_training)
    return _collect(tokenizer, ids, mask, *batches, stop=stop)
