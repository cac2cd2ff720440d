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


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, num_return_sequences: int = 1, seed: int = 0,
             batch_size: int = 256) -> Generation:
    """Sample ``num_return_sequences`` completions for each prompt (text already templated).

    ``temperature=0`` is greedy decoding.  The same ``seed`` gives the same samples.
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
    for s in range(0, ids.shape[0], batch_size):
        c, m, d = _generate_batch(model, ids[s:s + batch_size], mask[s:s + batch_size],
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
