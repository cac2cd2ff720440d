"""GRPO rollouts: sample G completions per prompt, score them, and turn rewards into advantages.

:func:`make_rollout` is the first half of a GRPO step (:mod:`minir1.grpo` holds the second,
the update); :func:`score` and :func:`prompt_batches` are also used on their own. Every name is
re-exported by :mod:`minir1.grpo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from minir1.grpo_loss import group_advantages, token_logprobs

RewardFunc = Callable[..., list]  # (completions, task=[...], key=[...], **kw) -> list[float]


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
    cfg,
    *,
    seed: int,
    ref_model=None,
    accuracy_funcs: dict | None = None,
) -> Rollout:
    """Sample G completions per problem, score them and compute advantages (and old/ref log-probs).

    ``cfg`` is a :class:`minir1.grpo.GRPOConfig` (not imported here: :mod:`minir1.grpo` imports this module).
    """
    from minir1.sampling import generate
    from minir1.tokenizer import format_prompt

    # Rollout: G completions per prompt, sampled with the step's seed.
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
    # Rewards: one column per reward function, then their weighted sum per completion.
    tasks = [p.task for p in problems for _ in range(G)]
    keys = [p.key for p in problems for _ in range(G)]
    per_func = score(reward_funcs, gen.texts, tasks, keys)  # (B, F)
    weights = torch.tensor(cfg.reward_weights or [1.0] * len(reward_funcs), dtype=torch.float32)
    rewards = (per_func * weights).sum(dim=1)  # (B,)
    # Advantages: each reward against its own group's mean (and std, by cfg.scale_rewards).
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
    for name, f in (accuracy_funcs or {}).items():  # logged, not optimised
        ro.correct[name] = score([f], gen.texts, tasks, keys)[:, 0]
    _frozen_logprobs(model, ref_model, ro, cfg)
    return ro


def _frozen_logprobs(model, ref_model, ro: Rollout, cfg) -> None:
    """The log-probs the loss compares against, without gradient: ``ro.old_logp`` and ``ro.ref_logp``."""
    with torch.no_grad():
        if cfg.num_iterations > 1:  # the rollout policy, frozen for the μ inner steps
            ro.old_logp = token_logprobs(
                model, ro.input_ids, ro.attention_mask, ro.n_completion, cfg.temperature, group=cfg.group_size
            )
        if ref_model is not None:
            ro.ref_logp = token_logprobs(
                ref_model, ro.input_ids, ro.attention_mask, ro.n_completion, cfg.temperature, group=cfg.group_size
            )
