"""The RL chapter's GRPO from a real local checkpoint, on Countdown as TinyZero ran it (not the book's results).

TinyZero (Pan et al. 2025, github.com/Jiayi-Pan/TinyZero) ran R1-Zero's recipe on Qwen2.5 base
models and the Countdown game: 0.5B did not learn to reason, 3B did. This module lets a reader
with a GPU and a checkpoint on disk (a Qwen2.5-0.5B or 1.5B, say) run the book's own GRPO
(:func:`minir1.grpo.train_grpo`) from it, with its own tokenizer and chat template
(:mod:`minir1.checkpoint`), and score it before and after on held-out Countdown problems with the
book's evaluation (answer-level accuracy beside the format rate). Nothing is downloaded, and
nothing is written into the book: :func:`run_from_checkpoint` returns a plain dict.

Departures from TinyZero (its ``scripts/train_tiny_zero*.sh`` and ``countdown.py``), on purpose:

* The book's Countdown (:mod:`minir1.tasks.countdown`): numbers 1..25 (TinyZero 1..99), targets
  1..100, each number used **at most** once (TinyZero: exactly once); the instruction says so.
* One GPU and minutes, not hours: 8 prompts × 5 samples per step (TinyZero 128-256 prompts),
  completions up to 256 tokens (TinyZero 1024), 100 steps; the update is one batch (no micro-batches).
* The prompt is the checkpoint's chat template around TinyZero's instruction, without its
  prefilled ``Let me solve this step by step.\\n<think>`` (the format reward asks for ``<think>``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field

from ..checkpoint import Checkpoint, load_checkpoint
from ..evaluation import Sampling, evaluate
from ..grpo import GRPOConfig, train_grpo
from ..rewards import extract_answer
from ..tasks import Problem, get_task, verify
from ..tasks.countdown import parse_key
from ..utils import device

# TinyZero's instruction (examples/data_preprocess/countdown.py), with our rule: "at most once".
COUNTDOWN_INSTRUCTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can be used at most once. Show your work in <think> </think> "
    "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
GENERIC_INSTRUCTION = (
    "Solve: {question}. Show your work in <think> </think> tags. "
    "And return the final answer in <answer> </answer> tags."
)
EVAL_SEED = 1234  # which held-out problems (the book's EvalSet seed)


def tinyzero_grpo() -> GRPOConfig:
    """GRPO settings for a 0.5B-1.5B checkpoint on one GPU; TinyZero's value beside each where it has one."""
    return GRPOConfig(
        group_size=5,  # TinyZero GRPO: actor_rollout_ref.rollout.n=5
        batch_size=40,  # 8 prompts × 5. TinyZero: data.train_batch_size=128 (GRPO script) or 256 (PPO)
        steps=100,  # TinyZero: 15 epochs of its Countdown train set
        lr=1e-6,  # TinyZero: actor_rollout_ref.actor.optim.lr=1e-6
        kl_coef=0.001,  # TinyZero: kl_loss_coef=0.001, kl_loss_type=low_var_kl (the k3 estimator)
        temperature=1.0,  # verl's rollout default, as TinyZero ran it
        max_completion_length=256,  # TinyZero: data.max_response_length=1024
        template="chat",  # the checkpoint's own chat template (minir1.checkpoint)
        eval_every=0,  # scored before and after by run_from_checkpoint, not during
        log_every=1,
        gen_batch_size=64,
    )


@dataclass(frozen=True)
class CheckpointRLConfig:
    """GRPO from a local checkpoint folder on a generated task, scored before and after."""

    checkpoint: str = ""  # a local Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer)
    task: str = "countdown"  # any minir1 task; Countdown is TinyZero's
    difficulty: int = 3  # Countdown: how many numbers. TinyZero: 3 to 4 (Countdown-Tasks-3to4)
    n_train: int = 2048  # training problems (train split)
    n_eval: int = 128  # held-out problems (test split), the same before and after GRPO
    eval_sampling: Sampling = Sampling(n_samples=1, temperature=0.0, max_new_tokens=256, ks=(1,))  # greedy
    format_score: float = 0.1  # TinyZero's reward: 1 correct, format_score for an answer that is wrong, 0 none
    dtype: str = "float32"  # keep fp32 for GRPO: a 1e-6 AdamW step is below bfloat16's resolution
    device: str = ""  # "" = minir1.utils.device() (cuda when visible)
    seed: int = 0  # training problems and GRPO's sampling
    grpo: GRPOConfig = field(default_factory=tinyzero_grpo)

    def __post_init__(self):
        get_task(self.task, self.difficulty)  # checks both
        for name in ("n_train", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def instruct(problem: Problem) -> Problem:
    """The problem with its question written as an instruction (TinyZero's for Countdown); key unchanged."""
    if problem.task == "countdown":
        numbers, target = parse_key(problem.key)
        text = COUNTDOWN_INSTRUCTION.format(numbers=numbers, target=target)
    else:
        text = GENERIC_INSTRUCTION.format(question=problem.question)
    return dataclasses.replace(problem, question=text)


def problems(cfg: CheckpointRLConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, held-out) problems, as instructions; the held-out ones do not depend on ``cfg.seed``."""
    task = get_task(cfg.task, cfg.difficulty)
    train = task.sample("train", cfg.n_train, seed=cfg.seed)
    test = task.sample("test", cfg.n_eval, seed=EVAL_SEED)
    return [instruct(p) for p in train], [instruct(p) for p in test]


def make_tinyzero_reward(format_score: float = 0.1):
    """TinyZero's Countdown reward for any task: 1 when the last ``<answer>`` verifies, else ``format_score``
    when there is an answer block, else 0 (``verl/utils/reward_score/countdown.py``, ``compute_score``)."""

    def tinyzero_reward(completions: list, task: list, key: list, **kwargs) -> list[float]:
        out = []
        for text, t, k in zip(completions, task, key):
            ans = extract_answer(text, strict=True)
            out.append(0.0 if ans is None else 1.0 if verify(t, k, ans) else format_score)
        return out

    return tinyzero_reward


def score(ck: Checkpoint, held_out: list[Problem], cfg: CheckpointRLConfig, seed: int = 0) -> dict:
    """The book's evaluation of the checkpoint's model on ``held_out``: answer accuracy beside format rate."""
    s = cfg.eval_sampling
    res = evaluate(
        ck.model,
        ck.tokenizer,
        held_out,
        n_samples=s.n_samples,
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.max_new_tokens,
        seed=seed,
        ks=s.ks,
        template=cfg.grpo.template,
        batch_size=cfg.grpo.gen_batch_size,
    )
    keys = ("acc", "acc_lenient", "format_rate", "format_rate_lenient", "finished_rate", "pass_at_k", "samples")
    out = {k: getattr(res, k) for k in keys}
    out["mean_len"] = res.tokens_generated / (len(held_out) * res.n_samples)
    return out


def run_from_checkpoint(cfg: CheckpointRLConfig, *, checkpoint: Checkpoint | None = None) -> dict:
    """Load ``cfg.checkpoint`` (or use ``checkpoint``), score it, run GRPO from it, score it again.

    Returns a plain dict (never written into the book's results): ``checkpoint``, ``info`` (what
    :func:`minir1.checkpoint.check_checkpoint` found), ``config``, ``base`` and ``rl`` (each
    ``acc``, ``acc_lenient``, ``format_rate``, ``format_rate_lenient``, ``finished_rate``,
    ``pass_at_k``, ``mean_len``, ``samples``), ``history`` (GRPO's per-step records) and ``wall_s``.
    The model is trained in place.
    """
    t0 = time.perf_counter()
    # Load and check the checkpoint; the problems as instructions.
    ck = checkpoint or load_checkpoint(cfg.checkpoint, dtype=cfg.dtype, device=cfg.device or device())
    train, held_out = problems(cfg)
    # Score the base, run GRPO from it (TinyZero's reward), score the result on the same problems.
    base = score(ck, held_out, cfg)
    result = train_grpo(
        ck.model, ck.tokenizer, train, [make_tinyzero_reward(cfg.format_score)], cfg.grpo, seed=cfg.seed
    )
    rl = score(ck, held_out, cfg)
    return {
        "checkpoint": ck.path,
        "info": ck.info,
        "config": cfg.to_dict(),
        "base": base,
        "rl": rl,
        "history": result.history,
        "wall_s": time.perf_counter() - t0,
    }


def dry_run(cfg: CheckpointRLConfig) -> CheckpointRLConfig:
    """``cfg`` at test size: two GRPO steps of 2 prompts × 2 samples, 8-token completions, 4 held-out problems."""
    grpo = dataclasses.replace(cfg.grpo, group_size=2, batch_size=4, steps=2, max_completion_length=8, log_every=0)
    sampling = dataclasses.replace(cfg.eval_sampling, max_new_tokens=8)
    return dataclasses.replace(cfg, n_train=8, n_eval=4, eval_sampling=sampling, grpo=grpo)


def main(argv: list[str] | None = None) -> dict:
    """``python -m minir1.experiments.rl_checkpoint FOLDER [--steps N] [--out run.json] ...``: one run, printed."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="GRPO on Countdown from a local Hugging Face checkpoint folder")
    ap.add_argument("checkpoint", help="a local checkpoint folder (nothing is downloaded)")
    ap.add_argument("--steps", type=int, default=tinyzero_grpo().steps, help="GRPO steps")
    ap.add_argument("--difficulty", type=int, default=CheckpointRLConfig.difficulty, help="Countdown: how many numbers")
    ap.add_argument("--n-eval", type=int, default=CheckpointRLConfig.n_eval, help="held-out problems")
    ap.add_argument("--max-new-tokens", type=int, default=tinyzero_grpo().max_completion_length, help="per completion")
    ap.add_argument("--dtype", default=CheckpointRLConfig.dtype, help="float32, bfloat16 or float16")
    ap.add_argument("--out", default="", help="write the whole record here as JSON")
    a = ap.parse_args(argv)
    cfg = CheckpointRLConfig(checkpoint=a.checkpoint, difficulty=a.difficulty, n_eval=a.n_eval, dtype=a.dtype)
    sampling = dataclasses.replace(cfg.eval_sampling, max_new_tokens=a.max_new_tokens)
    grpo = dataclasses.replace(cfg.grpo, steps=a.steps, max_completion_length=a.max_new_tokens)
    cfg = dataclasses.replace(cfg, eval_sampling=sampling, grpo=grpo)
    out = run_from_checkpoint(cfg)
    for name in ("base", "rl"):
        r = out[name]
        print(f"{name:>4}: accuracy {r['acc']:.3f} (lenient {r['acc_lenient']:.3f}) | format {r['format_rate']:.3f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return out


if __name__ == "__main__":
    main()
