"""The RL chapter's hard task: the baselines at equal spent FLOPs (RFT and SFT on worked solutions).

Each baseline is stopped on the FLOPs the same seed's true-reward GRPO run on the same base
actually spent (:mod:`minir1.flops`: its sampling with the prompts' prefill, and the policy's
forward and backward over prompt and completion).  A baseline's ledger charges its training over
prompt **and** completion tokens (:func:`minir1.flops.train_tokens`) and, for RFT, its own
sampling (prompt prefill included).  The number of optimizer steps (and, when one step is too coarse,
a smaller batch) is read off the exact batches the training loop will draw (same seed, same
order): the step count whose running ledger comes closest to the budget, within 2% where a batch
size allows it (the chapter checks 5%).  The second edition budgeted steps on completion tokens
only, and its baselines spent 1.54x (SFT) and 1.20x (RFT) of GRPO's FLOPs.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .. import artifacts, distill, flops, models
from ..rewards import accuracy_reward
from ..tasks import completion, final_answer, get_task
from ..tokenizer import format_prompt
from ..train import TrainConfig, _batches, encode_example, train
from . import rl_hard_task as ht

BASELINES = ("sft_worked", "rft")


def _worked_pairs(cfg: ht.HardTaskConfig, tok, seed: int) -> list[tuple[str, str]]:
    task, rng = get_task(cfg.task, cfg.difficulty), random.Random(seed)
    out = []
    for p in ht.train_problems(cfg, seed):
        steps = task.worked_solution(p, rng, 0.0)
        out.append((format_prompt(tok, p.question), " " + completion(steps, final_answer(steps))))
    return out


def _rft_pairs(cfg: ht.HardTaskConfig, model, tok, seed: int) -> tuple[list[tuple[str, str]], float, int]:
    """The base's own samples (T = 1) on train problems that the strict verifier accepts (STaR's
    rationales, without hints); returns the pairs, the FLOPs of drawing every sample (prompt
    prefill included) and the tokens sampled."""
    probs = ht.train_problems(cfg, seed)[: cfg.rft_problems]
    g = cfg.rft_samples
    drawn = distill.teacher_outputs(
        model,
        tok,
        [format_prompt(tok, p.question) for p in probs],
        n_samples=g,
        temperature=1.0,
        max_new_tokens=cfg.grpo.max_completion_length,
        seed=seed,
    )
    ok = accuracy_reward(
        [c for _, c in drawn],
        task=[p.task for p in probs for _ in range(g)],
        key=[p.key for p in probs for _ in range(g)],
    )
    kept = [(prompt, " " + c.strip()) for (prompt, c), r in zip(drawn, ok) if r > 0]
    cost = flops.sampling(models.n_params(model), prompt=drawn.prompt_tokens, completion=drawn.generated_tokens)
    return kept, cost, drawn.generated_tokens


def _closest(lens: np.ndarray, params: int, budget: float, batch: int, seed: int, max_steps: int) -> tuple[int, float]:
    """(steps, |spent − budget|) for the step count whose running ledger over the batches the loop
    will draw (``batch``, ``seed``) comes closest to ``budget``."""
    probe = TrainConfig(steps=max_steps, batch_size=batch, seed=seed, progress=False)
    spent, best, gap = 0.0, 0, budget
    for step, idx in enumerate(_batches(len(lens), probe, torch.Generator().manual_seed(seed))):
        spent += flops.forward_backward(params, float(lens[idx.numpy()].sum()))
        if abs(spent - budget) < gap:
            best, gap = step + 1, abs(spent - budget)
        if spent > budget:
            break
    return best, gap


def steps_for_budget(
    tok, pairs, params: int, budget: float, batch: int, seed: int, *, tol: float = 0.02, max_steps: int = 10_000
) -> tuple[int, int]:
    """``(batch, steps)`` whose training FLOPs (6·N·(prompt + completion) tokens of the exact batches
    the loop draws with ``seed``) come closest to ``budget``: the largest batch up to ``batch`` that
    lands within ``tol`` of it, else the closest of all.  ``(batch, 0)`` when nothing fits."""
    if budget <= 0 or not pairs:
        return batch, 0
    lens = np.asarray([len(encode_example(tok, p, c)[0]) for p, c in pairs], dtype=float)
    best = (batch, 0, budget)
    for b in range(batch, 0, -1):
        steps, gap = _closest(lens, params, budget, b, seed, max_steps)
        if gap <= tol * budget:
            return b, steps
        if gap < best[2]:
            best = (b, steps, gap)
    return best[0], best[1]


def _train_cfg(cfg: ht.HardTaskConfig, batch: int, steps: int, seed: int, desc: str) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=cfg.grpo.lr * cfg.sft_lr_mult,
        warmup_steps=min(10, steps),
        seed=seed,
        desc=desc,
        progress=False,
        log_every=max(1, steps // 5),
    )


def _build_baseline(cfg: ht.HardTaskConfig, kind: str, seed: int, index: int, flops_budget: float):
    def build(folder):
        model, tok, meta = ht.hard_base_model(cfg, "plain", index)
        params, sampled = meta["params"], 0
        ledger = flops.Ledger(kind)
        if kind == "sft_worked":
            pairs = _worked_pairs(cfg, tok, seed)
        else:
            pairs, cost, sampled = _rft_pairs(cfg, model, tok, seed)
            ledger = ledger.add("sampling", cost)  # RFT pays for its own samples
        batch, steps = steps_for_budget(tok, pairs, params, flops_budget - ledger.total, cfg.baseline_batch, seed)
        if steps:
            res = train(model, tok, pairs, _train_cfg(cfg, batch, steps, seed, kind))
            ledger = ledger.add("train", flops.forward_backward(params, res.tokens))  # prompt + completion
        models.save(model.cpu(), tok, folder)
        return {
            "steps": steps,
            "batch": batch,
            "kept": len(pairs),
            "sampled_tokens": sampled,
            "params": params,
            "flops": ledger.total,
            "ledger": ledger.to_dict(),
            "flops_budget": flops_budget,
        }

    return build


def baseline_path(cfg: ht.HardTaskConfig, kind: str, seed: int, flops_budget: float, index: int = 0) -> Path:
    """A baseline (``kind`` in :data:`BASELINES`) on hard base ``index``, stopped at ``flops_budget``
    spent FLOPs (the same seed's GRPO run on that base), cached."""
    if kind not in BASELINES:
        raise ValueError(f"kind must be one of {BASELINES}; got {kind!r}")
    conf = {
        "kind": kind,
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "n_train": cfg.n_train,
        "batch": cfg.baseline_batch,
        "lr": cfg.grpo.lr * cfg.sft_lr_mult,
        "rft_samples": cfg.rft_samples,
        "rft_problems": cfg.rft_problems,
        "max_len": cfg.grpo.max_completion_length,
        "seed": seed,
        "flops_budget": float(f"{flops_budget:.6g}"),
        "ledger": "prompt+completion",
        "base": artifacts.load_meta(ht.hard_base_path(cfg, "plain", index))["key"],
    }
    return artifacts.cached("rl-baseline", conf, _build_baseline(cfg, kind, seed, index, float(conf["flops_budget"])))


__all__ = ["BASELINES", "baseline_path", "steps_for_budget"]
