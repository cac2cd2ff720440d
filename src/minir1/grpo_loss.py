"""GRPO's maths: group-relative advantages, token log-probs, the k3 KL and the clipped loss.

The formulas and the choices behind them are in :mod:`minir1.grpo` (which re-exports every
name here, so ``from minir1.grpo import grpo_loss`` keeps working). Nothing here samples or
draws random numbers: these functions map tensors to tensors.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

LOSS_TYPES: tuple[str, ...] = ("grpo", "dapo", "dr_grpo")
SCALES: tuple[str, ...] = ("group", "batch", "none")
ADV_EPS = 1e-4  # TRL 1.16 (grpo_trainer.py): advantages / (std + 1e-4)


def _choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


# ---- advantages and KL -------------------------------------------------------------------


def group_advantages(rewards, group_size: int, scale: str = "group", eps: float = ADV_EPS) -> torch.Tensor:
    """Group-relative advantages, rows grouped prompt-major (row i*G+j = sample j of prompt i).

    ``scale``: "group" divides by each group's std + eps (GRPO), "batch" by the whole batch's
    std + eps, "none" does not divide (Dr. GRPO). Std is unbiased, as in TRL 1.16.

    >>> [round(a, 3) for a in group_advantages([1.0, 0.0, 1.0, 1.0], 2).tolist()]
    [0.707, -0.707, 0.0, 0.0]
    """
    r = torch.as_tensor(rewards, dtype=torch.float32).flatten()  # (B,)
    if not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an int >= 2; got {group_size!r}")
    if r.numel() == 0 or r.numel() % group_size:
        raise ValueError(f"the batch of {r.numel()} rewards must be a positive multiple of group_size ({group_size})")
    _choice("scale", scale, SCALES)
    grouped = r.view(-1, group_size)  # (B/G, G)
    adv = grouped - grouped.mean(dim=1, keepdim=True)  # (B/G, G)
    if scale == "group":
        adv = adv / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        adv = adv / (r.std() + eps)
    return adv.reshape(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π_θ || π_ref): exp(Δ) - Δ - 1 with Δ = log π_ref - log π_θ.

    Unbiased when tokens are sampled from π_θ, and always >= 0.

    >>> k3_kl(torch.tensor([0.0]), torch.tensor([0.0])).item()
    0.0
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


# ---- log-probs ----------------------------------------------------------------------------


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
    *,
    group: int | None = None,
) -> torch.Tensor:
    """Log-probabilities (B, C) of the last ``n_completion`` tokens under ``model``, from logits / temperature.

    Positions use the cumulative sum of the attention mask (as :mod:`minir1.sampling` does for
    left-padded prompts); masked completion positions get 0, as in TRL. With ``group`` = G and
    rows that come in groups of G with the same prompt (a GRPO rollout), a Llama / Qwen2 model
    runs each prompt once instead of G times (:func:`_shared_prompt_logprobs`; same numbers up
    to float rounding, and gradients flow the same way).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    if not 1 <= n_completion < input_ids.shape[1]:
        raise ValueError(f"n_completion must be in [1, {input_ids.shape[1] - 1}]; got {n_completion!r}")
    P = input_ids.shape[1] - n_completion
    if (
        n_completion >= 2
        and _can_share(model, input_ids[:, :P], attention_mask[:, :P], group)
        and _right_padded(attention_mask[:, P:])
    ):
        return _shared_prompt_logprobs(
            model,
            input_ids[:, :P],
            attention_mask[:, :P],
            input_ids[:, P:],
            attention_mask[:, P:],
            group,
            temperature,
        )
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=pos,
        logits_to_keep=n_completion + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :].float() / temperature  # (B, C, V) predicts tokens T-C..T-1
    targets = input_ids[:, -n_completion:]  # (B, C)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, C)
    return logp.masked_fill(attention_mask[:, -n_completion:] == 0, 0.0)


SHARED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    """``LlamaRMSNorm`` (fp32), op for op."""
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def _can_share(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group: int | None) -> bool:
    """Whether :func:`_shared_prompt_logprobs` applies: a Llama/Qwen2 model and G identical prompts per group."""
    if group is None or group < 2 or prompt_ids.shape[0] % group or type(model).__name__ not in SHARED_ARCHITECTURES:
        return False
    c = model.config
    if getattr(c, "attention_dropout", 0.0) or getattr(c, "use_sliding_window", False):
        return False
    U, P = prompt_ids.shape[0] // group, prompt_ids.shape[1]
    ids, mask = prompt_ids.view(U, group, P), prompt_mask.view(U, group, P)
    return bool((ids == ids[:, :1]).all() and (mask == mask[:, :1]).all())


def _right_padded(mask: torch.Tensor) -> bool:
    """Whether every row of a completion ``mask`` (B, C) is ones then zeros."""
    m = mask.long()
    return bool((m == m.cummin(dim=1).values).all())


def _shared_masks(pmask: torch.Tensor, group: int, C: int, dtype: torch.dtype, dev) -> tuple[torch.Tensor, ...]:
    """Additive attention masks of :func:`_shared_prompt_logprobs`, from the U prompts' masks ``pmask`` (U, P), bool.

    Prompt queries (U, 1, P, P): causal, not padding; each sees itself so pad rows stay finite
    (never read). Completion queries (N, 1, C-1, P+C-1): every real prompt key of their group,
    then causal over the completion.
    """
    (U, P), G = pmask.shape, group
    N, neg = U * G, torch.finfo(dtype).min
    causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()
    eye = torch.eye(P, dtype=torch.bool, device=dev)
    pbias = torch.zeros(U, 1, P, P, dtype=dtype, device=dev).masked_fill(
        ~((causal & pmask[:, None, None, :]) | eye), neg
    )  # (U, 1, P, P)
    ccausal = torch.ones(C - 1, C - 1, dtype=torch.bool, device=dev).tril()
    allowed = torch.cat([pmask[:, None, None, :].expand(U, 1, C - 1, P), ccausal.expand(U, 1, C - 1, C - 1)], -1)
    cbias = torch.zeros(U, 1, 1, C - 1, P + C - 1, dtype=dtype, device=dev).masked_fill(~allowed[:, None], neg)
    return pbias, cbias.expand(U, G, 1, C - 1, P + C - 1).reshape(N, 1, C - 1, P + C - 1)


def _shared_layer(layer, x, cos, sin, pbias, cbias, sel, shape: tuple[int, ...]) -> torch.Tensor:
    """One decoder layer of :func:`_shared_prompt_logprobs` on ``x`` (Mp + Mc', E): prompt tokens, then fed tokens.

    ``shape`` is (U, G, P, C, H, H_kv, D). The completion queries attend to their prompt's keys
    and values expanded (a view) to the G rows of the group, then to their own, causally.
    """
    F = torch.nn.functional
    U, G, P, C, H, Hkv, D = shape
    N, R = U * G, H // Hkv
    Mp, Mc = U * P, N * (C - 1)
    a, mlp = layer.self_attn, layer.mlp

    def padded(t: torch.Tensor, n: int) -> torch.Tensor:  # (Mc', n, D) -> (N, n, C-1, D), zeros elsewhere
        return t.new_zeros(Mc, n, D).index_copy(0, sel, t).view(N, C - 1, n, D).transpose(1, 2)

    h = _rms(x, layer.input_layernorm)
    q = a.q_proj(h).view(-1, H, D)
    k = a.k_proj(h).view(-1, Hkv, D)
    v = a.v_proj(h).view(-1, Hkv, D)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    qp, qc = q[:Mp].view(U, P, H, D).transpose(1, 2), padded(q[Mp:], H)
    kp, kc = k[:Mp].view(U, P, Hkv, D).transpose(1, 2), padded(k[Mp:], Hkv)
    vp, vc = v[:Mp].view(U, P, Hkv, D).transpose(1, 2), padded(v[Mp:], Hkv)
    if R > 1:
        kp, kc, vp, vc = (t.repeat_interleave(R, dim=1) for t in (kp, kc, vp, vc))
    op = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=pbias, scale=a.scaling)  # (U, H, P, D)
    kall = torch.cat([kp[:, None].expand(U, G, H, P, D).reshape(N, H, P, D), kc], dim=2)
    vall = torch.cat([vp[:, None].expand(U, G, H, P, D).reshape(N, H, P, D), vc], dim=2)
    oc = F.scaled_dot_product_attention(qc, kall, vall, attn_mask=cbias, scale=a.scaling)  # (N, H, C-1, D)
    oc = oc.transpose(1, 2).reshape(Mc, H * D).index_select(0, sel)  # (Mc', H D)
    x = x + a.o_proj(torch.cat([op.transpose(1, 2).reshape(Mp, H * D), oc]))
    return x + mlp(_rms(x, layer.post_attention_layernorm))


def _shared_prompt_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, group, temperature):
    """:func:`token_logprobs` for G samples per prompt, running each prompt once (not G times).

    The same maths as the model's ``forward`` (fp32; checked against TRL's loss and gradients
    in ``tests/test_grpo_trl.py``): the U distinct prompts (U, P) run through every layer once;
    the N = U·G completions (N, C-1) attend to their prompt's keys and values, expanded (a view)
    to the G rows of the group, so autograd sums the gradient of the G rows into the one prompt
    pass. Only completion tokens whose next token is scored are fed (the last one and the right
    padding after eos are not), so the linear layers see no padding. Positions are
    cumsum(mask) - 1 as in :func:`token_logprobs`; the completion mask must be right padding
    (ones then zeros), which causal attention keeps away from every scored position.
    """
    inner, cfg = model.model, model.config
    N, P = prompt_ids.shape
    C = completion_ids.shape[1]
    U, G = N // group, group
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    D = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    dev = prompt_ids.device
    pids, pmask = prompt_ids[::G], prompt_mask[::G].bool()  # (U, P)
    ppos = (pmask.long().cumsum(-1) - 1).clamp(min=0)  # (U, P)
    cpos = ppos[:, -1:].repeat_interleave(G, 0) + 1 + torch.arange(C - 1, device=dev)  # (N, C-1)
    Mp, Mc = U * P, N * (C - 1)
    # Only fed tokens whose next token is scored are needed (a prefix of each row): the linear
    # layers run on those alone; attention scatters them back to the padded (N, C-1) layout.
    sel = completion_mask[:, 1:].reshape(-1).nonzero().squeeze(1)  # (Mc',) into the Mc fed tokens
    fed = completion_ids[:, :-1].reshape(-1)[sel]
    x = inner.embed_tokens(torch.cat([pids.reshape(-1), fed]))  # (Mp + Mc', E)
    cos, sin = inner.rotary_emb(x[None], torch.cat([ppos.reshape(-1), cpos.reshape(-1)[sel]])[None])
    cos, sin = cos[0, :, None], sin[0, :, None]  # (M, 1, D)
    pbias, cbias = _shared_masks(pmask, G, C, x.dtype, dev)  # (U, 1, P, P), (N, 1, C-1, P+C-1)
    for layer in inner.layers:
        x = _shared_layer(layer, x, cos, sin, pbias, cbias, sel, (U, G, P, C, H, Hkv, D))
    last = x[:Mp].view(U, P, -1)[:, -1].repeat_interleave(G, 0)  # (N, E): predicts each first token
    logits = model.lm_head(_rms(torch.cat([last, x[Mp:]]), inner.norm)).float() / temperature  # (N + Mc', V)
    targets = torch.cat([completion_ids[:, 0], completion_ids[:, 1:].reshape(-1)[sel]])
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N + Mc',)
    rest = lp.new_zeros(Mc).index_copy(0, sel, lp[N:]).view(N, C - 1)
    logp = torch.cat([lp[:N, None], rest], dim=1)  # (N, C)
    return logp.masked_fill(completion_mask == 0, 0.0)


# ---- loss ---------------------------------------------------------------------------------


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, max_completion_length: int | None = None
) -> torch.Tensor:
    """Average a per-token loss (B, C) to a scalar.

    "grpo": mean over each sequence's tokens, then over sequences (DeepSeekMath's 1/|o_i|);
    "dapo": sum over all tokens / number of tokens in the batch (token-level);
    "dr_grpo": sum over all tokens / (B × max_completion_length) (constant, Dr. GRPO).
    """
    _choice("loss_type", loss_type, LOSS_TYPES)
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dapo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if max_completion_length is None or max_completion_length < 1:
        raise ValueError(
            "loss_type='dr_grpo' needs max_completion_length >= 1 (the constant denominator); "
            f"got {max_completion_length!r}"
        )
    return (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    clip_eps_low: float = 0.2,
    clip_eps_high: float | None = None,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    kl_ratio_correction: bool = False,
) -> tuple[torch.Tensor, dict]:
    """The clipped GRPO surrogate loss and its statistics.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask``: (B, C); ``adv``: (B,). Returns ``(loss, stats)``
    with stats ``kl`` (masked token mean of the KL term, or nan without ``ref_logp``), ``clip_frac``
    (tokens whose ratio left the trust region on the side that the min() clips), ``ratio``.
    """
    if kl_coef > 0 and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp (log-probs of the frozen reference model)")
    eps_high = clip_eps_low if clip_eps_high is None else clip_eps_high
    a = adv.unsqueeze(1)  # (B, 1)
    ratio = torch.exp(logp - old_logp)  # (B, C)
    clipped = torch.clamp(ratio, 1 - clip_eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * a, clipped * a)  # (B, C)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else None
    if kl is not None and kl_ratio_correction:  # DeepSeek-V3.2: unbiased reverse-KL gradient off-policy
        kl = kl * ratio
    if kl_coef > 0:
        per_token = per_token + kl_coef * kl
    loss = aggregate(per_token, mask, loss_type, max_completion_length)
    with torch.no_grad():
        m = mask.float()
        n = m.sum().clamp(min=1.0)
        out = ((ratio < 1 - clip_eps_low) & (a < 0)) | ((ratio > 1 + eps_high) & (a > 0))
        stats = {
            "kl": float((kl * m).sum() / n) if kl is not None else math.nan,
            "clip_frac": float((out.float() * m).sum() / n),
            "ratio": float((ratio * m).sum() / n),
        }
    return loss, stats
