"""Rejection-sampling fine-tuning: a model trained on its own verified samples.

The baseline RL has to beat at equal compute.  Under three names it is one procedure:
STaR (Zelikman et al. 2022, "STaR: Bootstrapping Reasoning With Reasoning"), expert iteration,
and RFT (Yuan et al. 2023, "Scaling Relationship on Learning Mathematical Reasoning with Large
Language Models", arXiv 2308.01825).  Each round:

1. sample ``samples_per_problem`` completions per problem from the current model
   (:func:`minir1.sampling.generate`, prompts in the chat template);
2. keep the completions whose reward is at least ``min_reward`` (with
   :func:`minir1.rewards.accuracy_reward`, the ones whose last ``<answer>`` verifies) and that
   ended on their own (a completion cut off at ``max_new_tokens`` never learned to stop);
   with ``dedupe``, each distinct completion of a problem once (Yuan et al. found that
   *distinct* reasoning paths are what help);
3. supervised fine-tuning on the kept ``(prompt, completion)`` pairs, prompt masked
   (:func:`minir1.train.train`).

Rounds continue from the model the previous round trained (expert iteration; STaR restarted
from the base each round).  A round that keeps nothing trains nothing and says so in its record.

Cost, as elsewhere in the book: sampling is a forward pass, 2·N FLOPs per prompt or
generated token (every sample drawn, kept or not; as :func:`minir1.distill.teacher_outputs`
counts); SFT is 6·N·D (:func:`minir1.train.train`'s ``flops``), N counting every parameter.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from .sampling import generate
from .tasks import Problem
from .tokenizer import TEMPLATES, format_prompt
from .train import TrainConfig, train


@dataclass(frozen=True)
class RFTConfig:
    samples_per_problem: int = 8  # completions drawn per problem and round
    temperature: float = 1.0  # sampling temperature (> 0: greedy would draw one path)
    max_new_tokens: int = 64  # longest completion
    rounds: int = 1  # sample-filter-train rounds (expert iteration)
    sft: TrainConfig = field(default_factory=lambda: TrainConfig(steps=100, batch_size=32, lr=1e-3, desc="rft"))
    top_p: float = 1.0  # nucleus sampling mass
    min_reward: float = 1.0  # keep a completion when reward_fn gives at least this
    dedupe: bool = True  # keep each distinct completion of a problem once
    template: str = "compact"  # prompt template (minir1.tokenizer.TEMPLATES)
    batch_size: int = 256  # sampling batch (rows)

    def __post_init__(self):
        for name in ("samples_per_problem", "max_new_tokens", "rounds", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1; got {v!r}")
        for name in ("temperature", "top_p", "min_reward"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number; got {v!r}")
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 (rejection sampling needs diverse samples); got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {self.top_p}")
        if not isinstance(self.sft, TrainConfig):
            raise ValueError(f"sft must be a minir1.train.TrainConfig; got {type(self.sft).__name__}")
        if self.sft.pack:
            raise ValueError("sft.pack must be False: packing ignores prompts, and RFT masks them out of the loss")
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}; got {self.template!r}")
        if not isinstance(self.dedupe, bool):
            raise ValueError(f"dedupe must be a bool; got {self.dedupe!r}")


@dataclass
class RFTResult:
    model: Any  # the fine-tuned model (a copy; the model passed in is not changed)
    n_kept: int  # verified traces trained on, summed over rounds
    flops: float  # sampling_flops + training_flops
    sampling_flops: float  # 2·N·(prompt + generated tokens), every sample drawn
    training_flops: float  # 6·N·D of the SFT steps
    n_sampled: int = 0  # completions drawn, summed over rounds
    traces: list[tuple[str, str]] = field(default_factory=list)  # the kept (prompt, completion) pairs, in order
    rounds: list[dict] = field(default_factory=list)  # per round: counts, solved problems, FLOPs, last loss
    config: dict = field(default_factory=dict)


def _check_inputs(model, tokenizer, problems, reward_fn, cfg, seed) -> list[Problem]:
    if not isinstance(cfg, RFTConfig):
        raise ValueError(f"cfg must be an RFTConfig; got {type(cfg).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    if not callable(reward_fn):
        raise ValueError(
            f"reward_fn must be a reward function (completions, **columns) -> list[float]; got {reward_fn!r}"
        )
    if not hasattr(model, "parameters"):
        raise ValueError(f"model must be a torch causal LM; got {type(model).__name__}")
    if not hasattr(tokenizer, "apply_chat_template"):
        raise ValueError(f"tokenizer must be a Hugging Face tokenizer; got {type(tokenizer).__name__}")
    if isinstance(problems, (str, bytes)) or not isinstance(problems, Sequence) or not problems:
        raise ValueError("problems must be a non-empty sequence of minir1.tasks.Problem")
    bad = [i for i, p in enumerate(problems) if not isinstance(p, Problem)]
    if bad:
        raise ValueError(f"problems must hold minir1.tasks.Problem items; problems[{bad[0]}] is not one")
    return list(problems)


def _rewards(reward_fn: Callable, texts: list[str], rows: list[Problem]) -> list[float]:
    out = reward_fn(texts, task=[p.task for p in rows], key=[p.key for p in rows])
    if not isinstance(out, (list, tuple)) or len(out) != len(texts):
        got = f"length {len(out)}" if isinstance(out, (list, tuple)) else type(out).__name__
        raise ValueError(f"reward_fn must return one reward per completion ({len(texts)}); got {got}")
    if any(isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) for r in out):
        raise ValueError("reward_fn must return finite numbers")
    return [float(r) for r in out]


def rft(model, tokenizer, problems: Sequence[Problem], reward_fn: Callable, cfg: RFTConfig, seed: int) -> RFTResult:
    """Rejection-sampling fine-tuning of a copy of ``model`` on its own samples that ``reward_fn`` verifies.

    ``problems`` are the training problems (use the train split); ``reward_fn`` has the
    signature of :mod:`minir1.rewards` (``accuracy_reward`` for RFT proper).  Round ``r``
    samples with seed ``seed * 1000 + r`` and trains with ``cfg.sft`` at that seed (its own
    ``seed`` is replaced), so the result is a function of ``seed``.
    """
    problems = _check_inputs(model, tokenizer, problems, reward_fn, cfg, seed)
    model = copy.deepcopy(model)
    n_params = sum(p.numel() for p in model.parameters())
    prompts = [format_prompt(tokenizer, p.question, cfg.template) for p in problems]
    G = cfg.samples_per_problem
    res = RFTResult(model=model, n_kept=0, flops=0.0, sampling_flops=0.0, training_flops=0.0, config=asdict(cfg))
    for r in range(cfg.rounds):
        round_seed = seed * 1000 + r
        gen = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            num_return_sequences=G,
            seed=round_seed,
            batch_size=cfg.batch_size,
        )
        rows = [p for p in problems for _ in range(G)]
        rewards = _rewards(reward_fn, gen.texts, rows)
        verified = [i for i, rew in enumerate(rewards) if rew >= cfg.min_reward and gen.finished[i]]
        pairs = [(prompts[i // G], gen.texts[i]) for i in verified]
        kept = list(dict.fromkeys(pairs)) if cfg.dedupe else pairs
        s_flops = 2.0 * n_params * (int(gen.prompt_mask.sum()) + int(sum(gen.n_tokens)))
        record = {
            "round": r,
            "sampled": len(gen.texts),
            "verified": len(verified),
            "kept": len(kept),
            "problems_solved": len({i // G for i in verified}),
            "sampling_flops": s_flops,
            "training_flops": 0.0,
            "train_loss": None,
        }
        if kept:
            tr = train(model, tokenizer, kept, replace(cfg.sft, seed=round_seed))
            record["training_flops"] = tr.flops
            record["train_loss"] = tr.history[-1]["loss"] if tr.history else None
        res.rounds.append(record)
        res.n_sampled += record["sampled"]
        res.n_kept += record["kept"]
        res.traces.extend(kept)
        res.sampling_flops += s_flops
        res.training_flops += record["training_flops"]
    res.flops = res.sampling_flops + res.training_flops
    model.eval()
    return res
