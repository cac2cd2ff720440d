"""Group Relative Policy Optimization (GRPO), as in DeepSeekMath and DeepSeek-R1.

For each prompt we sample a group of G completions, score them with rule-based reward
functions, and use the group itself as the baseline (no value network)::

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + 1e-4)                      (advantage)
    L   = -min(ρ_t A_i, clip(ρ_t, 1 - ε_low, 1 + ε_high) A_i) + β KL_k3,t       (per token)
    ρ_t = π_θ(o_t | q, o_<t) / π_old(o_t | q, o_<t)
    KL_k3,t = π_ref/π_θ - log(π_ref/π_θ) - 1

and average the per-token loss over the batch in one of three ways (``loss_type``).

How this module departs from the papers, on purpose:

* **Std epsilon.** The papers divide by the group std; like TRL 1.16 we add 1e-4 (and use
  the unbiased, Bessel-corrected std, as TRL's ``nanstd`` does) so an all-equal group gets
  advantage 0 instead of 0/0.
* **Learning rate.** R1 used 3e-6 on a 671B model (DeepSeekMath 1e-6). Our tiny from-scratch models need a far
  larger one (REFERENCE's feasibility run: 5e-4 collapsed, 5e-5 worked); default 5e-5.
* **Group size.** R1 sampled G = 16; we default to G = 8 to fit a CPU budget.
* **Clip ε.** R1's first RL stage used ε = 10 (almost no clipping); we keep DeepSeekMath's
  and TRL's ε = 0.2.
* **β = 0 by default** (R1: 0.001, DeepSeekMath: 0.04, TRL: 0.0): R1's value barely acts and
  costs a reference forward pass; the KL to the initial model is still logged (``log_kl``).
* **KL estimator.** k3, as in DeepSeekMath. TRL 1.16 multiplies it by the ratio ρ by default
  (DeepSeek-V3.2's unbiased form, ``use_bias_correction_kl``); here that is opt-in
  (``kl_ratio_correction``).
* **Loss aggregation.** Default "grpo" (the papers' per-sequence mean 1/|o_i|); TRL 1.16
  defaults to "dapo" (token mean); "dr_grpo" divides by a constant.
* **One optimizer step per rollout by default** (μ = 1), like TRL; μ > 1 reuses the batch
  with importance ratios against the detached rollout-time log-probs.
* **Log-probs are taken from logits divided by the sampling temperature**, as TRL does, so
  that the policy being optimised is the one that sampled. Position ids are cumsum(mask) - 1,
  as in :mod:`minir1.sampling`; TRL passes none, which under RoPE (relative positions) gives
  the same numbers up to rounding.

R1's values quoted in :class:`GRPOConfig` (G = 16, β = 0.001, lr 3e-6, ε = 10, 32 questions
per step) come from the Nature / arXiv v2 version of the paper (secondary; see REFERENCE).

The loss is checked against ``trl.GRPOTrainer`` to 1e-5 (``tests/test_grpo_trl.py``).
:func:`minir1.grpo_trl.train_grpo_trl` runs the same experiment through TRL with the same
signature as :func:`train_grpo` (a peer module: it imports this one, never the reverse), so an
experiment chooses its engine by choosing the function.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from minir1.utils import seed_everything

LOSS_TYPES: tuple[str, ...] = ("grpo", "dapo", "dr_grpo")
SCALES: tuple[str, ...] = ("group", "batch", "none")
ADV_EPS = 1e-4  # TRL 1.16 (grpo_trainer.py): advantages / (std + 1e-4)

RewardFunc = Callable[..., list]  # (completions, task=[...], key=[...], **kw) -> list[float]


def _choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


@dataclass
class GRPOConfig:
    """Hyper-parameters of one GRPO run (paper values in each field's comment)."""

    group_size: int = 8  # G samples per prompt. R1: 16; DeepSeekMath: 64; TRL: 8. Ours 8 (CPU budget)
    batch_size: int = 64  # completions per step (= prompts × G). R1: 32 questions × 16 = 512
    steps: int = 100  # rollout steps. R1-Zero: 10,400 (Nature version)
    lr: float = 5e-5  # R1: 3e-6; DeepSeekMath, TRL: 1e-6. Tiny models need more (5e-4 collapsed)
    kl_coef: float = 0.0  # β. R1: 0.001; DeepSeekMath: 0.04; TRL: 0.0. Ours 0.0 (no reference forward pass)
    kl_ratio_correction: bool = False  # multiply k3 by the ratio ρ (DeepSeek-V3.2; TRL 1.16 default True). Papers: no
    clip_eps_low: float = 0.2  # ε (lower). DeepSeekMath and TRL: 0.2; R1 first RL stage: 10
    clip_eps_high: float | None = None  # ε (upper); None = clip_eps_low. DAPO: 0.28
    loss_type: str = "grpo"  # "grpo" (per-sequence mean, as in the papers), "dapo" (TRL default), "dr_grpo"
    scale_rewards: str = "group"  # "group" (papers, TRL default), "batch", "none" (Dr. GRPO)
    num_iterations: int = 1  # μ optimizer steps per rollout batch. DeepSeekMath: 1; TRL: 1
    temperature: float = 1.0  # sampling temperature (> 0); TRL: 1.0. Log-probs use logits / temperature
    top_p: float = 1.0  # nucleus sampling; TRL: 1.0
    max_completion_length: int = 64  # tokens per completion. R1 allowed tens of thousands; TRL: 512
    reward_weights: tuple[float, ...] | None = None  # one per reward function; None = all 1.0 (TRL default)
    max_grad_norm: float = 1.0  # gradient clipping; TRL: 1.0
    weight_decay: float = 0.0  # AdamW; TRL: 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW; TRL (HF Trainer): (0.9, 0.999)
    template: str = "compact"  # prompt template for minir1.tokenizer.format_prompt ("compact" or "r1")
    log_kl: bool = True  # measure KL to the initial model even when kl_coef = 0 (costs one forward)
    eval_every: int = 10  # steps between held-out evaluations (0 = only at start and end)
    log_every: int = 1  # steps between log lines (0 = silent)
    gen_batch_size: int = 256  # rows per sampling call (bounds memory; another value draws other samples)

    def __post_init__(self):
        if not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(f"group_size must be an int >= 2 (GRPO needs a group baseline); got {self.group_size!r}")
        if self.batch_size < 1 or self.batch_size % self.group_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a positive multiple of group_size ({self.group_size})"
            )
        _choice("loss_type", self.loss_type, LOSS_TYPES)
        _choice("scale_rewards", self.scale_rewards, SCALES)
        for name in ("steps", "num_iterations", "max_completion_length", "gen_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for GRPO sampling; got {self.temperature!r}")
        if self.lr <= 0 or self.kl_coef < 0 or self.clip_eps_low < 0:
            raise ValueError(
                "lr must be > 0, kl_coef >= 0 and clip_eps_low >= 0; "
                f"got lr={self.lr}, kl_coef={self.kl_coef}, clip_eps_low={self.clip_eps_low}"
            )

    @property
    def eps_high(self) -> float:
        return self.clip_eps_low if self.clip_eps_high is None else self.clip_eps_high

    def to_dict(self) -> dict:
        return asdict(self)


# ---- maths --------------------------------------------------------------------------------


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
    F = torch.nn.functional
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
    neg = torch.finfo(x.dtype).min
    # prompt queries: causal, not padding; each sees itself so pad rows stay finite (never read)
    causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()
    eye = torch.eye(P, dtype=torch.bool, device=dev)
    pbias = torch.zeros(U, 1, P, P, dtype=x.dtype, device=dev).masked_fill(
        ~((causal & pmask[:, None, None, :]) | eye), neg
    )  # (U, 1, P, P)
    # completion queries: every real prompt key of their group, then causal over the completion
    ccausal = torch.ones(C - 1, C - 1, dtype=torch.bool, device=dev).tril()
    allowed = torch.cat([pmask[:, None, None, :].expand(U, 1, C - 1, P), ccausal.expand(U, 1, C - 1, C - 1)], -1)
    cbias = torch.zeros(U, 1, 1, C - 1, P + C - 1, dtype=x.dtype, device=dev).masked_fill(~allowed[:, None], neg)
    cbias = cbias.expand(U, G, 1, C - 1, P + C - 1).reshape(N, 1, C - 1, P + C - 1)
    R = H // Hkv

    def padded(t: torch.Tensor, n: int) -> torch.Tensor:  # (Mc', n, D) -> (N, n, C-1, D), zeros elsewhere
        return t.new_zeros(Mc, n, D).index_copy(0, sel, t).view(N, C - 1, n, D).transpose(1, 2)

    for layer in inner.layers:
        a, mlp = layer.self_attn, layer.mlp
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
        x = x + mlp(_rms(x, layer.post_attention_layernorm))
    last = x[:Mp].view(U, P, -1)[:, -1].repeat_interleave(G, 0)  # (N, E): predicts each first token
    logits = model.lm_head(_rms(torch.cat([last, x[Mp:]]), inner.norm)).float() / temperature  # (N + Mc', V)
    targets = torch.cat([completion_ids[:, 0], completion_ids[:, 1:].reshape(-1)[sel]])
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N + Mc',)
    rest = lp.new_zeros(Mc).index_copy(0, sel, lp[N:]).view(N, C - 1)
    logp = torch.cat([lp[:N, None], rest], dim=1)  # (N, C)
    return logp.masked_fill(completion_mask == 0, 0.0)


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


# ---- records ------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One step's batch: G samples for each of B/G prompts; row i*G+j is sample j of prompt i."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 on prompt tokens
    completion_ids: torch.Tensor  # (B, C) right-padded
    completion_mask: torch.Tensor  # (B, C) 1 on generated tokens up to and including eos
    texts: list[str]  # decoded completions (tags kept)
    tasks: list  # task name per row
    keys: list  # answer key per row
    rewards_per_func: torch.Tensor  # (B, F) unweighted, one column per reward function
    rewards: torch.Tensor  # (B,) weighted sum
    adv: torch.Tensor  # (B,) group-relative advantages
    correct: dict[str, torch.Tensor] = field(default_factory=dict)  # accuracy name -> (B,) 0/1
    old_logp: torch.Tensor | None = None  # (B, C) rollout policy, detached; only when μ > 1
    ref_logp: torch.Tensor | None = None  # (B, C) frozen reference model

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)  # (B, P + C)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)  # (B, P + C)

    @property
    def n_completion(self) -> int:
        return self.completion_ids.shape[1]


@dataclass
class GRPOResult:
    """What :func:`train_grpo` returns."""

    model: Any  # the trained policy (the same object that was passed in)
    history: list[dict]  # one record per step (see :func:`train_grpo`)
    evals: list[dict] = field(default_factory=list)  # {"step": s, **eval_fn(model)}, from step 0


# ---- rollouts -----------------------------------------------------------------------------


def func_name(f) -> str:
    """A reward function's name, for log keys (``functools.partial`` unwrapped)."""
    return getattr(f, "__name__", None) or getattr(getattr(f, "func", None), "__name__", type(f).__name__)


def score(reward_funcs: Sequence[RewardFunc], texts: list[str], tasks: list, keys: list) -> torch.Tensor:
    """Rewards (B, F): column j is ``reward_funcs[j](texts, task=tasks, key=keys)``."""
    cols = []
    for f in reward_funcs:
        r = list(f(texts, task=tasks, key=keys))
        if len(r) != len(texts):
            raise ValueError(
                f"reward function {func_name(f)!r} returned {len(r)} rewards for {len(texts)} "
                "completions; it must return one float per completion"
            )
        col = torch.tensor([float(x) for x in r], dtype=torch.float32)
        if not torch.isfinite(col).all():
            raise ValueError(f"reward function {func_name(f)!r} returned a non-finite reward")
        cols.append(col)
    return torch.stack(cols, dim=1)  # (B, F)


def prompt_batches(problems: Sequence, n: int, seed: int):
    """Yield lists of ``n`` problems forever, walking seeded shuffles of ``problems`` (like TRL's sampler)."""
    g = torch.Generator().manual_seed(seed)
    buf: list = []
    while True:
        while len(buf) < n:
            buf += [problems[i] for i in torch.randperm(len(problems), generator=g).tolist()]
        yield buf[:n]
        buf = buf[n:]


def make_rollout(
    model,
    tokenizer,
    problems: Sequence,
    reward_funcs: Sequence[RewardFunc],
    cfg: GRPOConfig,
    *,
    seed: int,
    ref_model=None,
    accuracy_funcs: dict | None = None,
) -> Rollout:
    """Sample G completions per problem, score them and compute advantages (and old/ref log-probs)."""
    from minir1.sampling import generate
    from minir1.tokenizer import format_prompt

    G = cfg.group_size
    prompts = [format_prompt(tokenizer, p.question, template=cfg.template) for p in problems]
    gen = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        num_return_sequences=G,
        seed=seed,
        batch_size=cfg.gen_batch_size,
    )
    tasks = [p.task for p in problems for _ in range(G)]
    keys = [p.key for p in problems for _ in range(G)]
    per_func = score(reward_funcs, gen.texts, tasks, keys)  # (B, F)
    weights = torch.tensor(cfg.reward_weights or [1.0] * len(reward_funcs), dtype=torch.float32)
    rewards = (per_func * weights).sum(dim=1)  # (B,)
    dev = gen.completion_ids.device
    ro = Rollout(
        gen.prompt_ids,
        gen.prompt_mask,
        gen.completion_ids,
        gen.completion_mask,
        gen.texts,
        tasks,
        keys,
        per_func,
        rewards,
        group_advantages(rewards, G, cfg.scale_rewards).to(dev),
    )
    for name, f in (accuracy_funcs or {}).items():
        ro.correct[name] = score([f], gen.texts, tasks, keys)[:, 0]
    with torch.no_grad():
        if cfg.num_iterations > 1:  # the rollout policy, frozen for the μ inner steps
            ro.old_logp = token_logprobs(
                model, ro.input_ids, ro.attention_mask, ro.n_completion, cfg.temperature, group=cfg.group_size
            )
        if ref_model is not None:
            ro.ref_logp = token_logprobs(
                ref_model, ro.input_ids, ro.attention_mask, ro.n_completion, cfg.temperature, group=cfg.group_size
            )
    return ro


# ---- training -----------------------------------------------------------------------------


# Skip the backward pass through groups whose advantages are all zero when that is exact (see _policy_logprobs).
SKIP_ZERO_ADVANTAGE_GROUPS = True


def _policy_logprobs(model, ro: Rollout, cfg: GRPOConfig) -> torch.Tensor:
    """The policy's log-probs (B, C) for the update, with gradient where the loss can have one.

    With μ = 1 and β = 0 a row's loss is -A_i·ρ with ρ ≡ 1, so a group whose advantages are all
    zero (all-equal rewards: frequent for small models) adds exactly 0 to the loss and to every
    gradient. Such groups go through no backward pass: their log-probs are computed without
    gradient only when a statistic needs them (the logged KL), and set to 0 otherwise (then
    ρ = 1 and their loss terms are 0, as before). Denominators still count every row.
    """
    G = cfg.group_size
    args = (ro.n_completion, cfg.temperature)
    exact = SKIP_ZERO_ADVANTAGE_GROUPS and cfg.num_iterations == 1 and cfg.kl_coef == 0
    live = (ro.adv.view(-1, G) != 0).any(dim=1).repeat_interleave(G) if exact else None
    if live is None or bool(live.all()):
        return token_logprobs(model, ro.input_ids, ro.attention_mask, *args, group=G)  # (B, C)
    ids, mask = ro.input_ids, ro.attention_mask
    rows, rest = live.nonzero().squeeze(1), (~live).nonzero().squeeze(1)
    logp = torch.zeros(ids.shape[0], ro.n_completion, device=ids.device)
    if ro.ref_logp is not None:  # the KL statistic needs the policy's log-probs on every row
        with torch.no_grad():
            logp[rest] = token_logprobs(model, ids[rest], mask[rest], *args, group=G)
    if len(rows):
        logp = logp.index_put((rows,), token_logprobs(model, ids[rows], mask[rows], *args, group=G))
    return logp


def _update(model, opt: torch.optim.Optimizer, ro: Rollout, cfg: GRPOConfig) -> dict:
    """One AdamW step on the whole rollout batch."""
    model.train()
    logp = _policy_logprobs(model, ro, cfg)  # (B, C)
    # μ = 1: old = current detached, so the ratio is exactly 1 (the gradient is still A·∇log π).
    old = ro.old_logp if ro.old_logp is not None else logp.detach()
    loss, stats = grpo_loss(
        logp,
        old,
        ro.adv,
        ro.completion_mask,
        ref_logp=ro.ref_logp,
        kl_coef=cfg.kl_coef,
        clip_eps_low=cfg.clip_eps_low,
        clip_eps_high=cfg.clip_eps_high,
        loss_type=cfg.loss_type,
        max_completion_length=cfg.max_completion_length,
        kl_ratio_correction=cfg.kl_ratio_correction,
    )
    opt.zero_grad(set_to_none=True)
    if loss.requires_grad:
        loss.backward()
    for p in model.parameters():  # a zero gradient still moves AdamW (momentum), as it would have
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    opt.step()
    return {"loss": loss.item(), "grad_norm": float(grad_norm), **stats}


def _mean(x: torch.Tensor) -> float:
    return float(x.float().mean()) if x.numel() else math.nan


def step_record(
    step: int,
    ro: Rollout,
    updates: list[dict],
    reward_names: list[str],
    group_size: int,
    *,
    sample_s: float,
    step_s: float,
    wall_s: float,
) -> dict:
    """The per-step log record (see :func:`train_grpo` for the keys)."""
    lens = ro.completion_mask.sum(dim=1).float().cpu()  # (B,)
    spread = ro.rewards.view(-1, group_size).std(dim=1)  # (B/G,)
    rec = {
        "step": step,
        "loss": sum(u["loss"] for u in updates) / len(updates),
        "reward": _mean(ro.rewards),
        "reward_std": float(ro.rewards.std()),
    }
    rec.update({f"reward_{n}": _mean(ro.rewards_per_func[:, j]) for j, n in enumerate(reward_names)})
    rec.update({f"acc_{n}": _mean(c) for n, c in ro.correct.items()})
    first = next(iter(ro.correct.values()), None)
    rec["len"] = _mean(lens)
    rec["len_correct"] = _mean(lens[first > 0]) if first is not None else math.nan
    rec["len_incorrect"] = _mean(lens[first <= 0]) if first is not None else math.nan
    for k in ("kl", "clip_frac", "grad_norm"):
        rec[k] = sum(u[k] for u in updates) / len(updates)
    rec["frac_zero_std"] = _mean(torch.isclose(spread, torch.zeros_like(spread)))
    rec["tokens"] = int(lens.sum())
    rec.update(tok_per_s=rec["tokens"] / max(step_s, 1e-9), sample_s=sample_s, step_s=step_s, wall_s=wall_s)
    return rec


def format_line(rec: dict) -> str:
    """The fixed-format log line of a step record."""
    acc = "/".join(f"{rec[k]:.2f}" for k in rec if k.startswith("acc_")) or "-"
    return (
        f"step {rec['step']:4d} | loss {rec['loss']:+.4f} | reward {rec['reward']:.3f} | acc {acc} | "
        f"len {rec['len']:5.1f} | kl {rec['kl']:.4f} | clip {rec['clip_frac']:.3f} | "
        f"zero-std {rec['frac_zero_std']:.2f} | {rec['tok_per_s'] / 1e3:5.1f}k tok/s | {rec['wall_s']:6.1f} s"
    )


def default_accuracy_funcs() -> dict[str, RewardFunc]:
    """Strict (answer inside ``<answer>``) and lenient accuracy from :mod:`minir1.rewards`."""
    from minir1.rewards import accuracy_reward, accuracy_reward_lenient

    return {"strict": accuracy_reward, "lenient": accuracy_reward_lenient}


def greedy_eval(model, *, tokenizer, problems: Sequence, accuracy_funcs: dict, cfg: GRPOConfig) -> dict:
    """Greedy (temperature 0) accuracy and mean length on held-out ``problems``."""
    from minir1.sampling import generate
    from minir1.tokenizer import format_prompt

    prompts = [format_prompt(tokenizer, p.question, template=cfg.template) for p in problems]
    gen = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=cfg.max_completion_length,
        temperature=0.0,
        batch_size=cfg.gen_batch_size,
    )
    tasks, keys = [p.task for p in problems], [p.key for p in problems]
    out = {f"acc_{n}": _mean(score([f], gen.texts, tasks, keys)[:, 0]) for n, f in accuracy_funcs.items()}
    out["len"] = sum(gen.n_tokens) / len(gen.n_tokens)
    return out


def _check_inputs(problems, reward_funcs, cfg: GRPOConfig) -> list:
    if not isinstance(cfg, GRPOConfig):
        raise ValueError(f"cfg must be a GRPOConfig; got {type(cfg).__name__}")
    if not problems:
        raise ValueError("train_problems must be a non-empty sequence of problems (with .task, .question, .key)")
    missing = [a for a in ("task", "question", "key") if not hasattr(problems[0], a)]
    if missing:
        raise ValueError(f"train_problems items need attributes task, question, key; missing {missing}")
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs or [])
    if not funcs or not all(callable(f) for f in funcs):
        raise ValueError(
            "reward_funcs must be a callable or a non-empty list of callables "
            "(completions, task=..., key=...) -> list[float]"
        )
    if cfg.reward_weights is not None and len(cfg.reward_weights) != len(funcs):
        raise ValueError(
            f"reward_weights has {len(cfg.reward_weights)} entries but there are {len(funcs)} "
            "reward functions; give one weight per function"
        )
    return funcs


def _frozen_copy(model):
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


def _train(model, tokenizer, problems, reward_funcs, cfg, *, ref_model, eval_fn, accuracy_funcs, seed) -> GRPOResult:
    gen = seed_everything(seed)
    if ref_model is None and (cfg.kl_coef > 0 or cfg.log_kl):
        ref_model = _frozen_copy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    batches = prompt_batches(problems, cfg.batch_size // cfg.group_size, seed)
    names = [func_name(f) for f in reward_funcs]
    history, evals, t0 = [], [], time.perf_counter()
    if eval_fn is not None:
        evals.append({"step": 0, **eval_fn(model)})
    for step in tqdm(range(1, cfg.steps + 1), desc="GRPO", unit="step", disable=cfg.log_every == 0):
        t = time.perf_counter()
        sample_seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        ro = make_rollout(
            model,
            tokenizer,
            next(batches),
            reward_funcs,
            cfg,
            seed=sample_seed,
            ref_model=ref_model,
            accuracy_funcs=accuracy_funcs,
        )
        sample_s = time.perf_counter() - t
        updates = [_update(model, opt, ro, cfg) for _ in range(cfg.num_iterations)]
        now = time.perf_counter()
        rec = step_record(step, ro, updates, names, cfg.group_size, sample_s=sample_s, step_s=now - t, wall_s=now - t0)
        history.append(rec)
        if cfg.log_every and step % cfg.log_every == 0:
            tqdm.write(format_line(rec))
        if eval_fn is not None and (step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
            evals.append({"step": step, **eval_fn(model)})
    model.eval()
    return GRPOResult(model=model, history=history, evals=evals)


def prepare(
    tokenizer,
    train_problems: Sequence,
    reward_funcs,
    cfg: GRPOConfig | None,
    *,
    eval_problems: Sequence | None,
    eval_fn,
    accuracy_funcs,
) -> tuple:
    """Check and complete :func:`train_grpo`'s inputs (shared with :mod:`minir1.grpo_trl`).

    Returns ``(cfg, reward_funcs as a list, eval_fn, accuracy_funcs)``.
    """
    cfg = GRPOConfig() if cfg is None else cfg
    funcs = _check_inputs(train_problems, reward_funcs, cfg)
    accuracy_funcs = default_accuracy_funcs() if accuracy_funcs is None else dict(accuracy_funcs)
    if eval_fn is None and eval_problems is not None:

        def eval_fn(m):
            return greedy_eval(m, tokenizer=tokenizer, problems=eval_problems, accuracy_funcs=accuracy_funcs, cfg=cfg)

    return cfg, funcs, eval_fn, accuracy_funcs


def train_grpo(
    model,
    tokenizer,
    train_problems: Sequence,
    reward_funcs,
    cfg: GRPOConfig | None = None,
    *,
    eval_problems: Sequence | None = None,
    ref_model=None,
    eval_fn: Callable[[Any], dict] | None = None,
    accuracy_funcs: dict[str, RewardFunc] | None = None,
    seed: int = 0,
) -> GRPOResult:
    """Train ``model`` in place with GRPO; return the model, per-step history and evaluations.

    ``train_problems``: objects with ``task``, ``question``, ``key`` (e.g. :class:`minir1.tasks.Problem`),
    prompted with ``format_prompt(tokenizer, question, cfg.template)``. ``reward_funcs``: a callable
    or list ``(completions, task=[...], key=[...]) -> list[float]``, weighted by ``cfg.reward_weights``.
    ``ref_model``: the frozen KL reference (default: a copy of ``model`` at the start). ``eval_fn(model)
    -> dict`` runs at step 0, every ``cfg.eval_every`` steps and at the end; by default greedy accuracy
    on ``eval_problems`` when given. ``accuracy_funcs`` (default strict and lenient from
    :mod:`minir1.rewards`) are logged, not optimised. :func:`minir1.grpo_trl.train_grpo_trl` takes the
    same arguments and runs ``trl.GRPOTrainer`` instead.

    History keys: step, loss, reward, reward_std, reward_<func>, acc_<name>, len, len_correct and
    len_incorrect (by the first accuracy function), kl, clip_frac, grad_norm, frac_zero_std (groups
    whose rewards are all equal: no signal), tokens, tok_per_s (sampled tokens / step time),
    sample_s, step_s, wall_s.
    """
    cfg, funcs, eval_fn, accuracy_funcs = prepare(
        tokenizer,
        train_problems,
        reward_funcs,
        cfg,
        eval_problems=eval_problems,
        eval_fn=eval_fn,
        accuracy_funcs=accuracy_funcs,
    )
    return _train(
        model,
        tokenizer,
        train_problems,
        funcs,
        cfg,
        ref_model=ref_model,
        eval_fn=eval_fn,
        accuracy_funcs=accuracy_funcs,
        seed=seed,
    )
