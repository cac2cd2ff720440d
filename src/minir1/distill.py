"""Distillation: train a student on what a teacher writes (or on the teacher's logits).

R1's distilled models were made by plain supervised fine-tuning of Qwen2.5 and Llama bases on
~800K samples written by R1 ("we do not include an RL stage, even though incorporating RL
could substantially boost model performance"); the reasoning samples were kept by
*rejection sampling* (only correct answers survive).  This module gives the pieces:

* :func:`teacher_outputs` -- sample completions from a teacher, with token and FLOP counts;
* :func:`rejection_sample` -- the same, keeping only completions a verifier accepts;
* :func:`sft_on_outputs` -- sequence-level distillation: SFT of the student on those pairs;
* :func:`logit_kd_loss` / :func:`train_logit_kd` -- logit (token-level) distillation,
  KL(teacher || student) on completion tokens (Hinton et al. 2015), which R1 did not use; it
  needs the teacher's logits and therefore the *same tokenizer* (checked, with a clear error);
* :class:`FrozenTeacher` -- a frozen teacher for logit KD that computes each trace's logits once.

>>> import torch
>>> x = torch.randn(2, 3, 5)
>>> float(logit_kd_loss(x, x, torch.ones(2, 3)))
0.0
"""

from __future__ import annotations

import time
from dataclasses import asdict
from types import SimpleNamespace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .train import TrainConfig, TrainResult, collate, encode_example, lr_at, train
from .utils import progress_bars


class TeacherPairs(list):
    """A list of ``(prompt, completion)`` pairs that also carries what producing them cost.

    ``generated_tokens`` counts every sampled token (rejected ones too), ``flops`` is the
    teacher's forward cost, 2 * params * (prompt + generated tokens), and ``accepted`` /
    ``sampled`` give the acceptance rate of rejection sampling (equal without it).
    """

    def __init__(
        self, pairs=(), *, generated_tokens: int = 0, prompt_tokens: int = 0, flops: float = 0.0, sampled: int = 0
    ):
        super().__init__(pairs)
        self.generated_tokens, self.prompt_tokens, self.flops = generated_tokens, prompt_tokens, flops
        self.sampled = sampled

    @property
    def accepted(self) -> int:
        return len(self)

    def accounting(self) -> dict:
        return {
            "pairs": len(self),
            "sampled": self.sampled,
            "generated_tokens": self.generated_tokens,
            "prompt_tokens": self.prompt_tokens,
            "flops": self.flops,
            "acceptance_rate": len(self) / max(self.sampled, 1),
        }


def teacher_outputs(
    teacher,
    tokenizer,
    prompts: Sequence[str],
    *,
    n_samples: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 256,
) -> TeacherPairs:
    """Sample ``n_samples`` completions of ``teacher`` per (already templated) prompt.

    Returns :class:`TeacherPairs` in row order (sample j of prompt i at ``i * n_samples + j``).
    """
    from .sampling import generate

    if not prompts:
        raise ValueError("prompts must be a non-empty list of templated prompt strings")
    gen = generate(
        teacher,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        num_return_sequences=n_samples,
        seed=seed,
        batch_size=batch_size,
    )
    rows = [p for p in prompts for _ in range(n_samples)]
    n_prompt = int(gen.prompt_mask.sum())
    n_gen = int(sum(gen.n_tokens))
    n_params = sum(p.numel() for p in teacher.parameters())
    return TeacherPairs(
        zip(rows, gen.texts),
        generated_tokens=n_gen,
        prompt_tokens=n_prompt,
        flops=2.0 * n_params * (n_prompt + n_gen),
        sampled=len(rows),
    )


def rejection_sample(
    teacher,
    tokenizer,
    prompts: Sequence[str],
    *,
    verify: Callable[[str, str], bool],
    n_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 256,
) -> TeacherPairs:
    """:func:`teacher_outputs`, keeping the pairs for which ``verify(prompt, completion)`` is True.

    The cost counts every sample drawn, accepted or not.  Raises ``ValueError`` when the
    verifier accepts nothing (an empty training set is never returned silently).
    """
    drawn = teacher_outputs(
        teacher,
        tokenizer,
        prompts,
        n_samples=n_samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
    )
    kept = [(p, c) for p, c in drawn if verify(p, c)]
    if not kept:
        raise ValueError(
            f"rejection_sample: verify accepted none of {len(drawn)} samples; raise n_samples or "
            f"temperature, or check the verifier"
        )
    return TeacherPairs(
        kept,
        generated_tokens=drawn.generated_tokens,
        prompt_tokens=drawn.prompt_tokens,
        flops=drawn.flops,
        sampled=drawn.sampled,
    )


def sft_on_outputs(student, tokenizer, pairs: Sequence[tuple[str, str]], cfg: TrainConfig) -> TrainResult:
    """Sequence-level distillation: supervised fine-tuning of ``student`` on teacher pairs."""
    if not pairs:
        raise ValueError("pairs must be a non-empty list of (prompt, completion) teacher outputs")
    return train(student, tokenizer, list(pairs), cfg)


def logit_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean over masked positions of KL(teacher || student) between softmax(logits / T).

    ``student_logits`` and ``teacher_logits`` are (B, T, V); ``mask`` (B, T) is 1 on the
    positions that predict completion tokens.  No T^2 factor (Hinton et al. scale the
    gradient by T^2 when mixing with a hard-label loss; we use KD alone).

    >>> s = torch.tensor([[[0.0, 0.0]]]); t = torch.tensor([[[0.0, 2.0]]])
    >>> round(float(logit_kd_loss(s, t, torch.ones(1, 1))), 4)  # KL([.12, .88] || [.5, .5])
    0.3278
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same (B, T, V) shape"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (B, T, V) student
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)  # (B, T, V) teacher
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, T)
    m = mask.to(kl.dtype)
    if float(m.sum()) == 0:
        raise ValueError("mask selects no positions; nothing to distil")
    return (kl * m).sum() / m.sum()


def check_same_tokenizer(teacher_tokenizer, student_tokenizer) -> None:
    """Raise ``ValueError`` when the two vocabularies differ (logit KD compares token by token)."""
    a, b = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if a != b:
        only_t = sorted(set(a) - set(b))[:5]
        only_s = sorted(set(b) - set(a))[:5]
        raise ValueError(
            f"teacher and student tokenizers differ (vocab sizes {len(a)} and {len(b)}; "
            f"teacher-only tokens e.g. {only_t}, student-only e.g. {only_s}); logit "
            f"distillation needs one shared vocabulary -- use sft_on_outputs instead"
        )


def train_logit_kd(
    student,
    teacher,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    cfg: TrainConfig,
    *,
    temperature: float = 1.0,
    teacher_tokenizer=None,
) -> TrainResult:
    """Train ``student`` in place to match ``teacher``'s next-token distributions on the
    completion tokens of ``pairs`` (teacher frozen).  Same optimiser and schedule as
    :func:`minir1.train.train`; ``flops`` counts the student's 6·N·D and the teacher's 2·N·D."""
    if teacher_tokenizer is not None:
        check_same_tokenizer(teacher_tokenizer, tokenizer)
    vs, vt = student.config.vocab_size, teacher.config.vocab_size
    if vs != vt:
        raise ValueError(f"teacher vocab_size {vt} != student vocab_size {vs}; logit KD needs one vocabulary")
    if not pairs:
        raise ValueError("pairs must be a non-empty list of (prompt, completion) pairs")
    dev = next(student.parameters()).device
    data = [encode_example(tokenizer, p, c) for p, c in pairs]
    gen = torch.Generator().manual_seed(cfg.seed)
    groups = [
        {"params": [p for p in student.parameters() if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in student.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    res, t0 = TrainResult(config={**asdict(cfg), "kd_temperature": temperature}), time.time()
    n_s, n_t = (sum(p.numel() for p in m.parameters()) for m in (student, teacher))
    teacher.eval()
    student.train()
    for step in tqdm(range(cfg.steps), desc=cfg.desc, disable=not (cfg.progress and progress_bars()), mininterval=2.0):
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen).tolist()
        ids, mask, labels = (t.to(dev) for t in collate([data[i] for i in idx], tokenizer.pad_token_id))
        with torch.no_grad():
            t_logits = teacher(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
        s_logits = student(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
        loss = logit_kd_loss(s_logits, t_logits, labels[:, 1:] != -100, temperature)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        opt.step()
        res.tokens += int(mask.sum())
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            res.history.append({"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, cfg)})
    student.eval()
    res.wall_seconds = time.time() - t0
    res.flops = (6.0 * n_s + 2.0 * n_t) * res.tokens
    return res


class FrozenTeacher(torch.nn.Module):
    """The teacher for logit KD, computing its logits on each distinct training sequence once.

    :func:`minir1.distill.train_logit_kd` asks the frozen teacher for the same traces at every
    epoch.  With right padding (``minir1.train.collate``) a row's logits do not depend on the
    padding after it, so the logits of each unpadded row are computed once, in batches, and
    looked up afterwards (the same numbers up to float rounding).  ``flops`` counts the
    teacher's real work: 2·N per token of each distinct sequence.
    """

    def __init__(self, teacher, tokenizer, pairs, batch_size: int = 64):
        super().__init__()
        self.teacher, self.config, self.cache = teacher.eval(), teacher.config, {}
        rows = list({tuple(encode_example(tokenizer, p, c)[0]): None for p, c in pairs})
        dev = next(teacher.parameters()).device
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                chunk = [(list(r), list(r)) for r in rows[i : i + batch_size]]
                ids, mask, _ = (t.to(dev) for t in collate(chunk, tokenizer.pad_token_id))
                logits = teacher(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
                for r, row_logits in zip(rows[i : i + batch_size], logits):
                    self.cache[r] = row_logits[: len(r)]
        self.flops = 2.0 * sum(p.numel() for p in teacher.parameters()) * sum(len(r) for r in rows)

    def forward(self, input_ids, attention_mask, **kw):
        out = torch.zeros((*input_ids.shape, self.config.vocab_size), device=input_ids.device)  # (B, T, V)
        for i, (ids, m) in enumerate(zip(input_ids, attention_mask)):
            n = int(m.sum())
            key = tuple(ids[:n].tolist())
            if key not in self.cache:  # not a training trace: compute it (and keep it)
                self.cache[key] = self.teacher(input_ids=ids[None, :n]).logits[0]
            out[i, :n] = self.cache[key]
        return SimpleNamespace(logits=out)
