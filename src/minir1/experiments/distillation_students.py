"""The distillation chapter's trace set and students (companion of :mod:`.distillation`, imported by it only).

The upstream recipes the chapter calls (the lab base, the GRPO teacher, the held-out set), the
rejection-sampled trace set, the students' trained artifacts (SFT on traces or on answers only,
logit KD, GRPO) and their cached held-out scores.  The chapter's stages and its settings
(:class:`~minir1.experiments.distillation.DistillConfig`) live in :mod:`.distillation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .. import artifacts, distill, models
from ..evaluation import (
    EvalSet,
    Sampling,
    eval_record,
    evaluate,
    evaluate_cached,
    per_problem_scores,
)
from ..grpo import GRPOConfig, train_grpo
from ..rewards import accuracy_reward, format_reward
from ..tasks import get_task, split_of
from ..tokenizer import format_prompt
from ..train import collate, encode_example
from ..utils import device
from .distillation_config import DistillConfig
from .recipes import base as lab_base
from .recipes import lab_grpo
from .recipes.lab_grpo import LabGRPOConfig

CONDITIONS = ("distill", "rl", "answers_only", "logit_kd")  # (a), (b), (c), (d)


# ----------------------------------------------------------------------------- upstream (the recipes)
# The only place this chapter calls the shared recipes (the lab base and the GRPO teacher).
def student_base_path(tcfg: LabGRPOConfig, preset: str | None = None) -> Path:
    """Artifact folder of the lab base at ``preset`` (default: the teacher's); trained if missing."""
    lcfg = tcfg.base
    return lab_base.pretrained_path(lab_base.variant(lcfg, preset=preset) if preset else lcfg)


def teacher_path(tcfg: LabGRPOConfig, seed: int) -> Path:
    """Artifact folder of the teacher: GRPO run ``seed`` on the lab base; trained if missing."""
    return lab_grpo.grpo_path(tcfg, seed)


def heldout(tcfg: LabGRPOConfig) -> tuple[EvalSet, Sampling]:
    """The held-out problems and sampling the RL chapter's verdict uses (R1's T = 0.6, top-p 0.95),
    shared so that the teacher's numbers here are the RL chapter's."""
    return lab_grpo.eval_set(tcfg), lab_base.samplings(tcfg.base)["r1"]


def rl_train_problems(tcfg: LabGRPOConfig, seed: int):
    """The train-split problems the teacher's GRPO draws its prompts from (seed ``seed``)."""
    return lab_grpo.problems(tcfg, "train", tcfg.n_train, seed=seed)


# ----------------------------------------------------------------------------- the trace set
def trace_verifier(tokenizer, problems, template: str = "compact"):
    """``verify(prompt, completion)`` for :func:`minir1.distill.rejection_sample`: the answer in
    ``<answer>`` verifies *and* the output is in R1's format (R1 also dropped unreadable traces)."""
    keys = {format_prompt(tokenizer, p.question, template): (p.task, p.key) for p in problems}

    def verify(prompt: str, completion: str) -> bool:
        if prompt not in keys:
            raise ValueError(f"verify: prompt {prompt!r} is not one of the {len(keys)} distillation prompts")
        task, key = keys[prompt]
        return accuracy_reward([completion], task=[task], key=[key])[0] == 1.0 and format_reward([completion])[0] == 1.0

    return verify


def check_train_only(problems, task: str, difficulty: int) -> None:
    """Raise ``ValueError`` if any problem belongs to the held-out (test) split."""
    t = get_task(task, difficulty)
    bad = [p.question for p in problems if split_of(t.name, t.canonical(p)) != "train"]
    if bad:
        raise ValueError(f"problems must all be from the train split; {len(bad)} held-out, e.g. {bad[:3]}")


def distillation_set(
    teacher, tokenizer, problems, cfg: DistillConfig, *, task: str, difficulty: int, max_new_tokens: int, seed: int = 0
) -> distill.TeacherPairs:
    """Rejection-sampled teacher traces on train ``problems`` (raises if none verify)."""
    if not problems:
        raise ValueError("problems must be a non-empty list of train-split problems")
    check_train_only(problems, task, difficulty)
    prompts = [format_prompt(tokenizer, p.question) for p in problems]
    kw = dict(n_samples=cfg.samples_per_prompt, temperature=cfg.temperature, max_new_tokens=max_new_tokens, seed=seed)
    if not cfg.verify:
        return distill.teacher_outputs(teacher, tokenizer, prompts, **kw)
    return distill.rejection_sample(teacher, tokenizer, prompts, verify=trace_verifier(tokenizer, problems), **kw)


def answers_only(pairs, answers: dict[str, str]) -> list[tuple[str, str]]:
    """The same prompts with the correct answer and no reasoning: ``<think></think> <answer>N</answer>``.

    ``answers`` maps each prompt to its problem's answer (for verified traces, the teacher's own).

    >>> answers_only([("Q:", " <think>1+2=3 =3</think> <answer>3</answer>")], {"Q:": "3"})
    [('Q:', ' <think></think> <answer>3</answer>')]
    """
    missing = [p for p, _ in pairs if p not in answers]
    if missing:
        raise ValueError(f"answers has no entry for {len(missing)} prompts, e.g. {missing[0]!r}")
    return [(p, f" <think></think> <answer>{answers[p]}</answer>") for p, _ in pairs]


def answer_map(tokenizer, problems, template: str = "compact") -> dict[str, str]:
    """Prompt -> correct answer of ``problems``."""
    return {format_prompt(tokenizer, p.question, template): p.answer for p in problems}


def subset(pairs, fraction: float, seed: int) -> list[tuple[str, str]]:
    """A seeded random ``fraction`` of ``pairs`` (at least one pair)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    if not pairs:
        raise ValueError("pairs is empty: there is no trace set to take a subset of")
    n = max(1, round(fraction * len(pairs)))
    idx = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [pairs[i] for i in sorted(idx)]


def check_student(teacher, teacher_tokenizer, student, student_tokenizer) -> None:
    """Raise ``ValueError`` unless the student is strictly smaller and shares the teacher's vocabulary."""
    distill.check_same_tokenizer(teacher_tokenizer, student_tokenizer)
    nt, ns = models.n_params(teacher), models.n_params(student)
    if ns >= nt:
        raise ValueError(f"student must be smaller than the teacher; got {ns:,} >= {nt:,} parameters")


# ----------------------------------------------------------------------------- students
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
        self.flops = 2.0 * models.n_params(teacher) * sum(len(r) for r in rows)

    def forward(self, input_ids, attention_mask, **kw):
        out = torch.zeros((*input_ids.shape, self.config.vocab_size), device=input_ids.device)  # (B, T, V)
        for i, (ids, m) in enumerate(zip(input_ids, attention_mask)):
            n = int(m.sum())
            key = tuple(ids[:n].tolist())
            if key not in self.cache:  # not a training trace: compute it (and keep it)
                self.cache[key] = self.teacher(input_ids=ids[None, :n]).logits[0]
            out[i, :n] = self.cache[key]
        return SimpleNamespace(logits=out)


def matched_steps(tokenizer, traces, answers, steps: int) -> int:
    """Steps on ``answers`` that process as many tokens as ``steps`` on ``traces`` (same batch size,
    so the same training FLOPs, 6·N per token): the answers-only control gets no less compute."""

    def mean_tokens(pairs):
        return np.mean([len(tokenizer.encode(p + c)) + 1 for p, c in pairs[:1000]])  # + eos

    return max(1, round(steps * mean_tokens(traces) / mean_tokens(answers)))


# ----------------------------------------------------------------------------- trained models (artifacts)
def _conf(cfg: DistillConfig, **kw) -> dict:
    """What shapes a model trained here: the teacher, the trace settings and ``kw``."""
    return {
        "teacher": asdict(cfg.teacher),
        "teacher_seed": cfg.teacher_seed,
        "n_prompts": cfg.n_prompts,
        "n_val": cfg.n_val,
        "samples_per_prompt": cfg.samples_per_prompt,
        "temperature": cfg.temperature,
        "verify": cfg.verify,
        **kw,
    }


def sft_student(
    cfg: DistillConfig, ctx, preset: str, condition: str, steps: int, seed: int, fraction: float = 1.0
) -> Path:
    """Artifact of a student trained by SFT on traces (``distill``), on answers only, or by logit KD."""
    tcfg = replace(cfg.sft, steps=steps, seed=seed, desc=f"{condition} {preset}")

    def build(folder):
        base, tok = models.load(student_base_path(cfg.teacher, preset), device=device())
        check_student(ctx.teacher, ctx.tok, base, tok)
        pairs = ctx.traces if fraction == 1.0 else subset(ctx.traces, fraction, seed=seed)
        if condition == "logit_kd":
            frozen = ctx.frozen()
            res = distill.train_logit_kd(
                base, frozen, tok, pairs, tcfg, temperature=cfg.kd_temperature, teacher_tokenizer=ctx.tok
            )
            flops = 6.0 * models.n_params(base) * res.tokens + frozen.flops  # + teacher forwards, once per trace
        else:
            res = distill.sft_on_outputs(base, tok, ctx.answers if condition == "answers_only" else pairs, tcfg)
            flops = res.flops
        models.save(base.cpu(), tok, folder)
        return {
            "params": models.n_params(base),
            "flops": float(flops),
            "steps": steps,
            "n_traces": len(pairs),
            "history": res.history,
            "wall_seconds": res.wall_seconds,
        }

    conf = _conf(
        cfg,
        preset=preset,
        condition=condition,
        sft=asdict(tcfg),
        fraction=fraction,
        kd_temperature=cfg.kd_temperature,
        base=asdict(cfg.teacher.base),
    )
    return artifacts.cached("distill-student", conf, build)


def rl_student(cfg: DistillConfig, preset: str, steps: int, seed: int) -> Path:
    """Artifact of GRPO (the RL chapter's recipe, ``steps`` steps) on the lab base at ``preset``."""
    gcfg = replace(cfg.teacher.grpo, steps=steps, log_kl=False, eval_every=0, log_every=0)

    def build(folder):
        model, tok = models.load(student_base_path(cfg.teacher, preset), device=device())
        res = train_grpo(
            model, tok, rl_train_problems(cfg.teacher, seed), [accuracy_reward, format_reward], gcfg, seed=seed
        )
        models.save(model.cpu(), tok, folder)
        n, tokens = models.n_params(model), sum(h["tokens"] for h in res.history)
        # Sampling (2N per token) + policy forward/backward (6N); no reference model (β = 0, log_kl off).
        return {
            "flops": float(8.0 * n * tokens),
            "params": n,
            "tokens": tokens,
            "steps": steps,
            "first_reward": float(res.history[0]["reward"]) if res.history else 0.0,
            "wall_seconds": res.history[-1]["wall_s"] if res.history else 0.0,
            "history": [{k: h.get(k) for k in ("step", "reward", "acc_strict", "len")} for h in res.history],
        }

    conf = {"preset": preset, "seed": seed, "grpo": asdict(gcfg), "teacher": asdict(cfg.teacher)}
    return artifacts.cached("distill-rl", conf, build)


def grpo_steps(budget: float, n_params: int, mean_len: float, gcfg: GRPOConfig) -> int:
    """GRPO steps whose FLOPs (8·N per completion token) fit ``budget``, at ``mean_len`` tokens a completion.

    >>> grpo_steps(8e6 * 64 * 10, 1_000_000, 10.0, GRPOConfig(batch_size=64, group_size=8))
    8
    """
    return max(1, int(budget / (8.0 * n_params * gcfg.batch_size * max(mean_len, 1.0))))


class _Context(SimpleNamespace):
    """Teacher, tokenizer, traces and answers shared by every student build."""

    def frozen(self):
        if getattr(self, "_frozen", None) is None:
            self._frozen = FrozenTeacher(self.teacher, self.tok, self.traces)
        return self._frozen


# ----------------------------------------------------------------------------- measuring
def scores(path: Path, cfg: DistillConfig, seeds: Sequence[int], evals: dict) -> dict:
    """Cached held-out evaluation of model ``path`` for ``seeds``; per-problem (S, P) arrays and cost."""
    eset, samp = heldout(cfg.teacher)
    res = [evaluate_cached(path, eset, samp, s) for s in seeds]
    eid, rec = eval_record(path, eset, samp, res, seeds)
    evals[eid] = rec
    meta = artifacts.load_meta(path)
    n = meta["params"]
    answers = len(res[0].questions) * res[0].n_samples
    toks = [r.tokens_generated / answers for r in res]
    return {
        "acc": per_problem_scores(res, "acc"),
        "acc_lenient": per_problem_scores(res, "acc_lenient"),
        "pass_k": per_problem_scores(res, f"pass@{max(samp.ks)}"),
        "params": n,
        "tokens": toks,
        "flops_per_answer": [2.0 * n * t for t in toks],
        "k": max(samp.ks),
        "eval_flops": 2.0 * n * sum(r.tokens_generated for r in res),
        "samples": res[0].samples,
        "train_flops": float(meta.get("flops", 0.0)),
        "first_reward": float(meta.get("first_reward", 0.0)),
    }


def validation_curve(cfg: DistillConfig, ctx, preset: str) -> dict[int, float]:
    """Strict pass@1 on the validation split after SFT (a) for each candidate step count (seed 0)."""
    _, samp = heldout(cfg.teacher)
    out = {}
    for steps in cfg.sft_candidates:
        model, tok = models.load(sft_student(cfg, ctx, preset, "distill", steps, seed=0), device=device())
        r = evaluate(
            model,
            tok,
            ctx.val,
            n_samples=samp.n_samples,
            temperature=samp.temperature,
            top_p=samp.top_p,
            max_new_tokens=samp.max_new_tokens,
            seed=0,
            ks=(1,),
        )
        out[steps] = r.acc
    return out


def choose_steps(curve: dict[int, float], tolerance: float) -> int:
    """The rule in :class:`DistillConfig`: fewest steps within ``tolerance`` of the best validation score.

    >>> choose_steps({60: 0.70, 120: 0.79, 240: 0.80}, 0.02)
    120
    """
    best = max(curve.values())
    return min(s for s, v in curve.items() if v >= best - tolerance)


def _traces_record(traces, tok, cfg: DistillConfig, seconds: float) -> dict:
    return {
        **traces.accounting(),
        "wall_seconds": seconds,
        "verified": float(cfg.verify),
        "distinct": len(set(traces)),
        "problems": len({p for p, _ in traces}),
        "mean_tokens": float(np.mean([len(tok.encode(c)) + 1 for _, c in traces])),
        "examples": [{"prompt": p, "completion": c} for p, c in traces[:5]],
    }


def _per_seed(cfg, seeds, evals, path_of) -> dict:
    """One model per seed (trained with that seed), each evaluated with its own seed; rows stacked."""
    recs = [scores(path_of(s), cfg, [s], evals) for s in seeds]
    return {
        "acc": np.vstack([r["acc"] for r in recs]),
        "acc_lenient": np.vstack([r["acc_lenient"] for r in recs]),
        "pass_k": np.vstack([r["pass_k"] for r in recs]),
        "params": recs[0]["params"],
        "k": recs[0]["k"],
        "tokens": [r["tokens"][0] for r in recs],
        "flops_per_answer": [r["flops_per_answer"][0] for r in recs],
        "train_flops": [r["train_flops"] for r in recs],
        "eval_flops": sum(r["eval_flops"] for r in recs),
        "samples": recs[0]["samples"],
        "first_reward": [r["first_reward"] for r in recs],
    }
