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

The module is split in three: :mod:`minir1.grpo_loss` (advantages, token log-probs, KL and the
loss: tensors in, tensors out), :mod:`minir1.grpo_rollout` (sampling and scoring a batch) and this
one (the config, the update and the training loop). Every public name of the first two is re-exported
here, so ``from minir1.grpo import grpo_loss`` keeps working.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from minir1.grpo_loss import (
    ADV_EPS,
    LOSS_TYPES,
    SCALES,
    SHARED_ARCHITECTURES,
    _choice,
    aggregate,
    group_advantages,
    grpo_loss,
    k3_kl,
    token_logprobs,
)
from minir1.grpo_rollout import RewardFunc, Rollout, func_name, make_rollout, prompt_batches, score
from minir1.utils import progress_bars, seed_everything

__all__ = [
    "ADV_EPS",
    "LOSS_TYPES",
    "SCALES",
    "SHARED_ARCHITECTURES",
    "SKIP_ZERO_ADVANTAGE_GROUPS",
    "GRPOConfig",
    "GRPOResult",
    "RewardFunc",
    "Rollout",
    "aggregate",
    "default_accuracy_funcs",
    "format_line",
    "func_name",
    "greedy_eval",
    "group_advantages",
    "grpo_loss",
    "k3_kl",
    "make_rollout",
    "prepare",
    "prompt_batches",
    "score",
    "step_record",
    "token_logprobs",
    "train_grpo",
]


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
    template: str = "compact"  # minir1.tokenizer.format_prompt: "compact", "r1", or "chat" (a checkpoint's own)
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


@dataclass
class GRPOResult:
    """What :func:`train_grpo` returns."""

    model: Any  # the trained policy (the same object that was passed in)
    history: list[dict]  # one record per step (see :func:`train_grpo`)
    evals: list[dict] = field(default_factory=list)  # {"step": s, **eval_fn(model)}, from step 0


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
    # Loss: the clipped surrogate of the policy's log-probs against the rollout's (and the reference's).
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
    # Update: backward, clip the gradient norm, one AdamW step.
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
    rec["prompt_tokens"] = int(ro.prompt_mask.sum())  # real (unpadded) prompt tokens of the batch: FLOPs
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
    """The reward components logged (not optimised) at every step, whichever reward is optimised
    (issue 24): strict accuracy (the accuracy reward: answer inside ``<answer>``), lenient
    (answer-level, tags not required) and the format reward (R1's tags), from :mod:`minir1.rewards`."""
    from minir1.rewards import accuracy_reward, accuracy_reward_lenient, format_reward

    return {"strict": accuracy_reward, "lenient": accuracy_reward_lenient, "format": format_reward}


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
    """The GRPO loop: per step a rollout (:func:`make_rollout`), μ updates (:func:`_update`), a log record."""
    gen = seed_everything(seed)
    if ref_model is None and (cfg.kl_coef > 0 or cfg.log_kl):
        ref_model = _frozen_copy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    batches = prompt_batches(problems, cfg.batch_size // cfg.group_size, seed)
    names = [func_name(f) for f in reward_funcs]
    history, evals, t0 = [], [], time.perf_counter()
    if eval_fn is not None:
        evals.append({"step": 0, **eval_fn(model)})
    for step in tqdm(
        range(1, cfg.steps + 1), desc="GRPO", unit="step", disable=cfg.log_every == 0 or not progress_bars()
    ):
        t = time.perf_counter()
        # 1-3. Rollout, rewards, advantages: G samples per prompt, scored, each against its group.
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
        # 4-5. Loss and update: μ optimizer steps on the same batch.
        updates = [_update(model, opt, ro, cfg) for _ in range(cfg.num_iterations)]
        # Log the step, and evaluate every cfg.eval_every steps.
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
    on ``eval_problems`` when given. ``accuracy_funcs`` (default: the reward components
    strict and lenient accuracy and the format reward, :func:`default_accuracy_funcs`) are logged as
    ``acc_<name>`` at every step, not optimised. :func:`minir1.grpo_trl.train_grpo_trl` takes the
    same arguments and runs ``trl.GRPOTrainer`` instead.

    History keys: step, loss, reward, reward_std, reward_<func>, acc_<name>, len, len_correct and
    len_incorrect (by the first accuracy function), kl, clip_frac, grad_norm, frac_zero_std (groups
    whose rewards are all equal: no signal), tokens (sampled), prompt_tokens (the batch's real prompt
    tokens), tok_per_s (sampled tokens / step time), sample_s, step_s, wall_s.
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
