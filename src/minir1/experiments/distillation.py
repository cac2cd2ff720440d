"""The distillation experiment: an RL-trained teacher, smaller students, four ways to train them.

DeepSeek-R1 made its small models by supervised fine-tuning of Qwen2.5 and Llama bases on ~800K
curated samples (600K reasoning traces kept by rejection sampling from an R1 checkpoint, 200K
non-reasoning), with no RL stage, and reports that this beats large-scale RL on the small model
itself (Table 6; the figures are in ``data/published_distillation.csv``).  This module runs that
comparison in miniature, with the pieces of :mod:`minir1.distill`:

* **teacher**: the RL chapter's GRPO model (``cfg.teacher`` is the RL chapter's config);
* **distillation set**: several samples per *train* prompt from the teacher, kept only when the
  answer verifies and the output is in R1's format (rejection sampling), with its cost and how
  many traces are distinct;
* **validation split**: ``cfg.n_val`` further train-split problems, never sent to the teacher;
  each student's SFT steps are chosen on them by the rule in :class:`DistillConfig` (the
  held-out test set is never looked at for a choice);
* **students**: lab bases of smaller presets, and per seed (a) SFT on the teacher's traces,
  (b) GRPO with the RL chapter's recipe at the *same training FLOPs* as (a) including the
  traces' cost, (c) SFT on the same answers without reasoning at (a)'s FLOPs, (d) logit KD;
* **bigger comparators**: the teacher itself, and the teacher's base given GRPO at the best
  student's distillation FLOPs;
* **measures**: held-out pass@1 on the lab's held-out set with the RL chapter's sampling
  (:func:`minir1.evaluation.evaluate_cached`, so the teacher's numbers are the RL chapter's),
  every comparison a paired bootstrap over problems and seeds (:mod:`minir1.stats`).

Deviations, besides scale: students ~1/3 (``nano``) and ~1/18 (``pico``) of the teacher, not
R1's 1.5B-70B from 671B; traces of 3-digit additions (~36 tokens); SFT on hundreds of traces,
not 800K.  The GRPO students use the RL chapter's learning rate (chosen for the teacher's size)
and do not log the KL to their base (``log_kl=False``, which changes nothing in training).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .. import artifacts, distill, models, stats
from ..evaluation import (
    EvalSet,
    Sampling,
    eval_record,
    evaluate,
    evaluate_cached,
    per_problem_scores,
)
from ..grpo import GRPOConfig, train_grpo
from ..profiles import check_profile
from ..results import claim
from ..rewards import accuracy_reward, format_reward
from ..tasks import get_task, split_of
from ..tokenizer import format_prompt
from ..train import TrainConfig, collate, encode_example
from ..utils import device, repo_root
from . import lab, rl, rules
from .chapter import ChapterResult

CONDITIONS = ("distill", "rl", "answers_only", "logit_kd")  # (a), (b), (c), (d)
# All this chapter takes from the RL chapter is its teacher (one GRPO run on the lab's base, about a
# minute), so it may run beside that chapter: whichever asks first builds it, once (artifacts are locked).
RUNS_ALONGSIDE = ("rl",)


@dataclass(frozen=True)
class DistillConfig:
    """The chapter's settings, composed with the RL chapter's (``teacher``), which holds the lab's."""

    teacher: object = None  # the RL chapter's config (RLConfig); its base is the lab's LabConfig
    students: tuple[str, ...] = ("nano", "pico")  # presets smaller than the teacher's (R1: 1.5B-70B from 671B)
    teacher_seed: int = 0  # which of the RL chapter's GRPO runs is the teacher
    n_prompts: int = 400  # train-split prompts sent to the teacher (R1: ~600K reasoning samples kept)
    n_val: int = 100  # further train-split problems held out for choosing SFT steps
    samples_per_prompt: int = 4  # teacher samples per prompt for rejection sampling (R1: several)
    temperature: float = 1.0  # teacher sampling temperature (the RL chapter's training temperature)
    verify: bool = True  # keep only verified traces (R1); False keeps every sample (smoke only)
    sft: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=120, batch_size=32, lr=3e-3, warmup_steps=10, log_every=40, desc="SFT", progress=False
        )
    )
    # The rule for SFT steps, written before the run: train (a) with seed 0 for each candidate, score
    # strict pass@1 on the validation split (the eval sampling, one seed), and take the FEWEST steps
    # whose validation pass@1 is within `val_tolerance` of the best candidate's.
    sft_candidates: tuple[int, ...] = (60, 120, 240)
    val_tolerance: float = 0.02
    kd_temperature: float = 1.0  # softmax temperature of logit KD (Hinton et al. 2015 use T > 1 with hard labels)
    fractions: tuple[float, ...] = (0.1, 1.0)  # shares of the trace set for the sample-efficiency curve
    curve_student: str = "nano"  # the student size of the sample-efficiency curve
    big_rl: bool = True  # also give the teacher's base GRPO at the best student's distillation FLOPs
    dry_run: bool = False  # two steps everywhere, gpu shapes (tests)

    def __post_init__(self):
        if not self.students:
            raise ValueError("students must name at least one preset")
        for p in self.students:
            models._check_preset(p)
        if self.curve_student not in self.students:
            raise ValueError(f"curve_student must be one of students {self.students}; got {self.curve_student!r}")
        if not all(0 < f <= 1 for f in self.fractions) or 1.0 not in self.fractions:
            raise ValueError(f"fractions must lie in (0, 1] and include 1.0; got {self.fractions}")
        if not self.sft_candidates or min(self.sft_candidates) < 1:
            raise ValueError(f"sft_candidates must be step counts >= 1; got {self.sft_candidates}")
        for name in ("n_prompts", "n_val", "samples_per_prompt"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DistillConfig.{name} must be >= 1; got {getattr(self, name)!r}")


_PROFILES_OWN: dict[str, dict] = {
    "smoke": dict(
        students=("pico",),
        n_prompts=24,
        n_val=8,
        samples_per_prompt=2,
        verify=False,
        sft=TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=1, log_every=2, progress=False),
        sft_candidates=(2, 4),
        curve_student="pico",
        big_rl=True,
    ),
    # Cold budget <= 12 min on 2 cores: three candidates per student, a two-point curve.
    "cpu": dict(),
    "gpu": dict(
        students=("micro", "nano"),
        n_prompts=4000,
        n_val=500,
        samples_per_prompt=8,
        sft=TrainConfig(steps=600, batch_size=64, lr=1e-3, warmup_steps=30, log_every=100, progress=False),
        sft_candidates=(300, 600, 1000, 1500),
        curve_student="nano",
        fractions=(0.01, 0.1, 1.0),
    ),
}
PROFILES: dict[str, DistillConfig] = {}  # filled lazily by config(): the teacher is the RL chapter's config


def config(profile: str) -> DistillConfig:
    """The chapter's configuration for ``profile`` (the only place a profile name is resolved)."""
    check_profile(profile)
    if profile not in PROFILES:
        PROFILES[profile] = DistillConfig(teacher=rl.config(profile), **_PROFILES_OWN[profile])
    return PROFILES[profile]


def dry_run(cfg: DistillConfig) -> DistillConfig:
    """``cfg``'s model shapes for two steps everywhere (tests run the gpu profile this way)."""
    two = replace(cfg.sft, steps=2, batch_size=2, warmup_steps=1, log_every=1, progress=False)
    return replace(
        cfg,
        teacher=rl.dry_run(cfg.teacher),
        n_prompts=2,
        n_val=2,
        samples_per_prompt=2,
        verify=False,
        sft=two,
        sft_candidates=(1, 2),
        fractions=(0.5, 1.0),
        dry_run=True,
    )


# ----------------------------------------------------------------------------- upstream (lab, rl)
# The only place this chapter calls the lab and RL experiments.
def base_path(rcfg, preset: str | None = None) -> Path:
    """Artifact folder of the lab base at ``preset`` (default: the teacher's); trained if missing."""
    lcfg = rcfg.base
    return lab.base_path(lab.variant(lcfg, preset=preset) if preset else lcfg)


def teacher_path(rcfg, seed: int) -> Path:
    """Artifact folder of the RL chapter's GRPO run ``seed`` (the teacher); trained if missing."""
    return rl.rl_path(rcfg, seed)


def heldout(rcfg) -> tuple[EvalSet, Sampling]:
    """The held-out problems and sampling the RL chapter's verdict uses (R1's T = 0.6, top-p 0.95),
    shared so that the teacher's numbers here are the RL chapter's."""
    return rl.eval_set(rcfg), lab.samplings(rcfg.base)["r1"]


def rl_train_problems(rcfg, seed: int):
    """The train-split problems the RL chapter's GRPO draws its prompts from (seed ``seed``)."""
    return rl.problems(rcfg, "train", rcfg.n_train, seed=seed)


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
        base, tok = models.load(base_path(cfg.teacher, preset), device=device())
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
        model, tok = models.load(base_path(cfg.teacher, preset), device=device())
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


# ----------------------------------------------------------------------------- the chapter
def run(cfg: DistillConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """Everything the chapter measures, as a :class:`ChapterResult` of Metrics."""
    seeds = [int(s) for s in seeds]
    clock, timing, evals = [time.perf_counter()], {}, {}

    def lap(name):
        clock.append(time.perf_counter())
        timing[name] = clock[-1] - clock[-2]

    tpath, bpath = teacher_path(cfg.teacher, cfg.teacher_seed), base_path(cfg.teacher)
    teacher, tok = models.load(tpath, device=device())
    tmeta, bmeta = artifacts.load_meta(tpath), artifacts.load_meta(bpath)
    task, diff = cfg.teacher.task, cfg.teacher.difficulty
    drawn = get_task(task, diff).sample("train", cfg.n_prompts + cfg.n_val, seed=2024)
    train_set, val = drawn[: cfg.n_prompts], drawn[cfg.n_prompts :]  # validation: never sent to the teacher
    lap("teacher and its base (load, or train if missing)")
    traces = distillation_set(
        teacher,
        tok,
        train_set,
        cfg,
        task=task,
        difficulty=diff,
        max_new_tokens=cfg.teacher.grpo.max_completion_length,
        seed=cfg.teacher_seed,
    )
    ctx = _Context(
        teacher=teacher,
        tok=tok,
        traces=traces,
        val=val,
        answers=answers_only(traces, answer_map(tok, train_set)),
        _frozen=None,
    )
    out = {"traces": _traces_record(traces, tok, cfg, 0.0), "timing": timing}
    lap("distillation set")
    out["traces"]["wall_seconds"] = timing["distillation set"]
    out["teacher"] = {**scores(tpath, cfg, seeds, evals), "base_flops": bmeta["flops"], "rl_flops": tmeta["flops"]}
    out["big_base"] = scores(bpath, cfg, seeds, evals)
    out["students"], out["val"] = {}, {}
    for p in cfg.students:
        out["val"][p] = validation_curve(cfg, ctx, p)
        steps = choose_steps(out["val"][p], cfg.val_tolerance)
        sb = base_path(cfg.teacher, p)
        rec = {"base": scores(sb, cfg, seeds, evals), "steps": steps, "base_flops": artifacts.load_meta(sb)["flops"]}
        rec["distill"] = _per_seed(cfg, seeds, evals, lambda s: sft_student(cfg, ctx, p, "distill", steps, s))
        a_steps = matched_steps(tok, traces, ctx.answers, steps)
        rec["answers_only"] = _per_seed(
            cfg, seeds, evals, lambda s: sft_student(cfg, ctx, p, "answers_only", a_steps, s)
        )
        rec["logit_kd"] = _per_seed(cfg, seeds, evals, lambda s: sft_student(cfg, ctx, p, "logit_kd", steps, s))
        # (b) GRPO at (a)'s training FLOPs plus the traces' cost, at the base's own completion length.
        budget = float(np.mean(rec["distill"]["train_flops"])) + traces.flops
        mean_len = float(np.mean(rec["base"]["tokens"]))
        rec["rl_steps"] = grpo_steps(budget, rec["base"]["params"], mean_len, cfg.teacher.grpo)
        rec["rl"] = _per_seed(cfg, seeds, evals, lambda s: rl_student(cfg, p, rec["rl_steps"], s))
        rec["rl_budget"] = budget
        out["students"][p] = rec
        lap(f"student {p}")
    best = max(cfg.students, key=lambda p: out["students"][p]["distill"]["acc"].mean())
    if cfg.big_rl:
        budget = float(np.mean(out["students"][best]["distill"]["train_flops"])) + traces.flops
        steps = grpo_steps(
            budget, out["big_base"]["params"], float(np.mean(out["big_base"]["tokens"])), cfg.teacher.grpo
        )
        out["big_rl"] = {
            **_per_seed(cfg, seeds, evals, lambda s: rl_student(cfg, cfg.teacher.base.preset, steps, s)),
            "steps": steps,
            "budget": budget,
        }
        lap("teacher's base + GRPO at equal FLOPs")
    c = cfg.curve_student
    out["curve"] = {
        str(f): (
            out["students"][c]["distill"]
            if f == 1.0
            else _per_seed(
                cfg,
                seeds,
                evals,
                lambda s, f=f: sft_student(cfg, ctx, c, "distill", out["students"][c]["steps"], s, fraction=f),
            )
        )
        for f in cfg.fractions
    }
    out["curve_n"] = {str(f): max(1, round(f * len(traces))) for f in cfg.fractions}
    lap("sample-efficiency curve")
    m = metrics_of(out)
    return ChapterResult(metrics=m, config=cfg, evals=evals, extra=extra_of(out), flops=total_flops(out))


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


# ----------------------------------------------------------------------------- metrics
def _ratio(a, b) -> stats.Metric | None:
    return stats.paired_ratio(a, b) if float(np.mean(b)) > 0 else None


def metrics_of(out: dict) -> dict:
    """Results-file metrics: rates by the two-level bootstrap, comparisons paired (minir1.stats)."""
    t, tr, bb = out["teacher"], out["traces"], out["big_base"]
    t_flops = t["base_flops"] + t["rl_flops"]
    m: dict = {
        "teacher_params": t["params"],
        "teacher_base_train_flops": t["base_flops"],
        "teacher_rl_flops": t["rl_flops"],
        "teacher_train_flops": t_flops,
        "big_base_params": bb["params"],
        **{
            f"trace_{k}": float(tr[k])
            for k in (
                "pairs",
                "sampled",
                "acceptance_rate",
                "generated_tokens",
                "prompt_tokens",
                "flops",
                "wall_seconds",
                "mean_tokens",
                "verified",
                "distinct",
                "problems",
            )
        },
    }
    for name, rec, kind in (("teacher", t, "sampling"), ("big_base", bb, "sampling")):
        m[f"{name}_pass_at_1"] = stats.rate(rec["acc"], seeds=kind)
        m[f"{name}_pass_at_1_lenient"] = stats.rate(rec["acc_lenient"], seeds=kind)
        m[f"{name}_pass_at_k"] = stats.rate(rec["pass_k"], seeds=kind)
        m[f"{name}_tokens_per_answer"] = stats.over_seeds(rec["tokens"])
        m[f"{name}_flops_per_answer"] = stats.over_seeds(rec["flops_per_answer"])
    S = out["students"]
    m["student_params"] = {p: r["base"]["params"] for p, r in S.items()}
    m["student_base_train_flops"] = {p: r["base_flops"] for p, r in S.items()}
    m["sft_steps"] = {p: r["steps"] for p, r in S.items()}
    for p in S:
        m[f"val_pass_at_1_{p}"] = {str(k): v for k, v in out["val"][p].items()}
    for cond, prefix in (("base", "student_base"), *((c, c) for c in CONDITIONS)):
        kind = "sampling" if cond == "base" else "training"
        m[f"{prefix}_pass_at_1"] = {p: stats.rate(r[cond]["acc"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_pass_at_1_lenient"] = {p: stats.rate(r[cond]["acc_lenient"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_pass_at_k"] = {p: stats.rate(r[cond]["pass_k"], seeds=kind) for p, r in S.items()}
        m[f"{prefix}_tokens_per_answer"] = {p: stats.over_seeds(r[cond]["tokens"]) for p, r in S.items()}
        m[f"{prefix}_flops_per_answer"] = {p: stats.over_seeds(r[cond]["flops_per_answer"]) for p, r in S.items()}
        if cond != "base":
            m[f"{prefix}_train_flops"] = {p: stats.over_seeds(r[cond]["train_flops"]) for p, r in S.items()}
    m["rl_steps"] = {p: r["rl_steps"] for p, r in S.items()}
    m["rl_first_reward"] = {p: _first_reward(r) for p, r in S.items()}
    m["rl_flops_vs_distill"] = {p: float(np.mean(r["rl"]["train_flops"]) / r["rl_budget"]) for p, r in S.items()}
    # Paired comparisons on the same problems (row s: student seed s, teacher sampling seed s).
    m["distill_vs_teacher"] = {p: stats.paired_diff(r["distill"]["acc"], t["acc"]) for p, r in S.items()}
    kept = {p: _ratio(r["distill"]["acc"], t["acc"]) for p, r in S.items()}
    m["distill_kept"] = {p: v for p, v in kept.items() if v is not None}
    m["distill_minus_rl"] = {p: stats.paired_diff(r["distill"]["acc"], r["rl"]["acc"]) for p, r in S.items()}
    m["distill_gain"] = {p: stats.paired_diff(r["distill"]["acc"], r["base"]["acc"]) for p, r in S.items()}
    m["distill_cost_ratio"] = {
        p: stats.over_seeds(
            [a / b for a, b in zip(r["distill"]["flops_per_answer"], t["flops_per_answer"])], unit="ratio"
        )
        for p, r in S.items()
    }
    # Distillation compute against the teacher's: with the student's base reused (R1's case) and trained here.
    m["distill_compute_reused"] = {
        p: (np.mean(r["distill"]["train_flops"]) + tr["flops"]) / t_flops for p, r in S.items()
    }
    m["distill_compute_trained"] = {
        p: (np.mean(r["distill"]["train_flops"]) + tr["flops"] + r["base_flops"]) / t_flops for p, r in S.items()
    }
    if "big_rl" in out:
        b = out["big_rl"]
        m["big_rl_pass_at_1"] = stats.rate(b["acc"])
        m["big_rl_steps"], m["big_rl_train_flops"] = b["steps"], float(np.mean(b["train_flops"]))
    m["curve_pass_at_1"] = {f: stats.rate(c["acc"]) for f, c in out["curve"].items()}
    m["curve_n_traces"] = dict(out["curve_n"])
    m |= headline(m, out)
    # An empty series (e.g. no ratio to a teacher that solves nothing) is left out, not written empty.
    return {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in m.items() if not (isinstance(v, dict) and not v)
    }


def _first_reward(r) -> float:
    """Mean reward of GRPO's first step from this base: 0 means no group had a signal to learn from."""
    return float(np.mean(r["rl"]["first_reward"]))


def headline(m: dict, out: dict) -> dict:
    """The numbers the rules in data/claims.yml read: for each claim, the student it is about.

    Which student is chosen is stated here, before the run: the best student by distilled pass@1
    for "small beats big" and "anyone can"; the student keeping most of the teacher (highest lower
    bound of the kept ratio) for "cheaper"; the worst and best paired gap for "beats RL".
    """
    S, _t = out["students"], out["teacher"]
    best = max(S, key=lambda p: m["distill_pass_at_1"][p].mean)
    h = {
        "best_student_size": m["student_params"][best] / m["teacher_params"],
        "small_vs_teacher": m["distill_vs_teacher"][best],
        "anyone_gain": m["distill_gain"][best],
        "anyone_compute_reused": m["distill_compute_reused"][best],
        "anyone_compute_trained": m["distill_compute_trained"][best],
    }
    if "big_rl" in out:
        h["small_vs_big_rl"] = stats.paired_diff(S[best]["distill"]["acc"], out["big_rl"]["acc"])
    if m.get("distill_kept"):
        cheap = max(m["distill_kept"], key=lambda p: m["distill_kept"][p].lo)
        h["cheap_kept"], h["cheap_cost"] = m["distill_kept"][cheap], m["distill_cost_ratio"][cheap]
        h["anyone_kept"] = m["distill_kept"].get(best, m["distill_kept"][cheap])
    gaps = m["distill_minus_rl"]
    h["rl_gap_worst"] = gaps[min(gaps, key=lambda p: gaps[p].lo)]
    h["rl_gap_best"] = gaps[max(gaps, key=lambda p: gaps[p].lo)]
    h["rl_start_min"] = min(m["rl_first_reward"].values())
    return h


def extra_of(out: dict) -> dict:
    """Samples, the validation curve and timings for the chapter (read back from the results file)."""
    first = next(iter(out["students"]))
    s = out["students"][first]
    return {
        "traces": out["traces"]["examples"],
        "samples_teacher": out["teacher"]["samples"],
        "samples_distill": s["distill"]["samples"],
        "samples_answers_only": s["answers_only"]["samples"],
        "samples_rl": s["rl"]["samples"],
        "sample_student": first,
        "validation": {p: {str(k): v for k, v in c.items()} for p, c in out["val"].items()},
        "timing_seconds": out.get("timing", {}),
    }


def total_flops(out: dict) -> float:
    """FLOPs this chapter spent: teacher traces, every model trained here, every evaluation
    (cached teacher and base pretraining not counted)."""
    recs = [out["teacher"], out["big_base"], *([out["big_rl"]] if "big_rl" in out else [])]
    for r in out["students"].values():
        recs += [r["base"], *(r[c] for c in CONDITIONS)]
    recs += [c for f, c in out["curve"].items() if f != "1.0"]
    train = sum(sum(r["train_flops"]) if isinstance(r["train_flops"], list) else 0.0 for r in recs[2:])
    return float(out["traces"]["flops"] + train + sum(r["eval_flops"] for r in recs))


# ----------------------------------------------------------------------------- verdicts
def _size(m: dict, p: str) -> str:
    return f"{p} ({m['student_params'][p] / 1e6:.2f}M, 1/{m['teacher_params'] / m['student_params'][p]:.0f})"


def _judge(claim_id: str, m: dict, evidence: str) -> dict:
    try:
        return rules.judge(claim_id, m, evidence)
    except rules.RuleError as e:  # a metric the rule needs is undefined (e.g. a teacher that solves nothing)
        rule = rules.rule_of(claim_id)
        return claim(
            claim_id, rule["otherwise"], f"{evidence} The rule cannot be applied ({e}); its 'otherwise' verdict stands."
        )


def verdicts(m: dict) -> list[dict]:
    """The chapter's four claims, by the rules in ``data/claims.yml`` (written before the run)."""
    f = stats.fmt
    per = "; ".join(
        f"{_size(m, p)}: distilled {f(m['distill_pass_at_1'][p])}, minus teacher "
        f"{f(m['distill_vs_teacher'][p])}"
        + (f", kept {f(m['distill_kept'][p])}" if p in m.get("distill_kept", {}) else "")
        + f", cost per answer {f(m['distill_cost_ratio'][p])}"
        for p in m["distill_pass_at_1"]
    )
    cheaper = _judge(
        "distill-cheaper-without-losing-much",
        m,
        f"Teacher {f(m['teacher_pass_at_1'])} held-out strict pass@1; {per} (paired bootstrap over "
        f"problems and seeds).",
    )
    big = (
        f"best student against the {m['teacher_params'] / 1e6:.2f}M teacher {f(m['small_vs_teacher'])}"
        + (
            f"; against the teacher's base given GRPO at the student's distillation FLOPs "
            f"({m['big_rl_steps']} steps) {f(m['small_vs_big_rl'])} (big + RL at equal FLOPs: "
            f"{f(m['big_rl_pass_at_1'])})"
            if "small_vs_big_rl" in m
            else ""
        )
        + f"; student/teacher parameters {m['best_student_size']:.2f}."
    )
    small = _judge("distill-small-beats-big", m, big[0].upper() + big[1:])
    rl_ev = "; ".join(
        f"{_size(m, p)}: distilled minus GRPO {f(m['distill_minus_rl'][p])}, GRPO {m['rl_steps'][p]} "
        f"steps at {m['rl_flops_vs_distill'][p]:.2f}x the distillation FLOPs, first-step reward "
        f"{m['rl_first_reward'][p]:.2f}"
        for p in m["distill_minus_rl"]
    )
    beats = _judge(
        "distill-beats-rl-small",
        m,
        rl_ev + ". A first-step reward of 0 means GRPO had no signal: RL cannot start from that base.",
    )
    anyone = _judge(
        "distill-anyone-can",
        m,
        f"{int(m['trace_pairs'])} {'verified' if m['trace_verified'] else 'UNVERIFIED'} traces "
        f"({int(m['trace_distinct'])} distinct, covering {int(m['trace_problems'])} problems) from "
        f"{int(m['trace_sampled'])} teacher samples; the best student gains {f(m['anyone_gain'])} over "
        f"its base at {m['anyone_compute_reused']:.1%} of the teacher's compute with its base reused, "
        f"{m['anyone_compute_trained']:.1%} with its base trained here.",
    )
    return [cheaper, small, beats, anyone]


# ----------------------------------------------------------------------------- published figures
def load_published(path: str | Path | None = None) -> list[dict]:
    """Rows of ``data/published_distillation.csv`` (values as floats)."""
    p = Path(path) if path is not None else repo_root() / "data" / "published_distillation.csv"
    if not p.exists():
        raise FileNotFoundError(f"published distillation figures not found at {p}")
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"])
    return rows


def comparison(metrics: dict, published: list[dict]) -> list[dict]:
    """Distilled against RL on the same small model: R1's Table 6, the 0.6B peer, and ours."""
    pub = {r["item"]: r for r in published}
    rows = []
    for bench in ("aime", "math500"):
        d, r = pub[f"r1_distill_qwen32b_{bench}"], pub[f"r1_zero_qwen32b_{bench}"]
        rows.append(
            {
                "setting": "DeepSeek-R1, Qwen2.5-32B (Table 6)",
                "benchmark": f"{r['benchmark']} pass@1",
                "distilled": d["value"],
                "rl": r["value"],
                "source": r["source"],
            }
        )
    for item in ("rasbt_qwen3_06b_distill_qwen235b_math500", "rasbt_qwen3_06b_distill_r1_math500"):
        rows.append(
            {
                "setting": f"Qwen3-0.6B base ({pub[item]['notes']})",
                "benchmark": pub[item]["benchmark"],
                "distilled": pub[item]["value"],
                "rl": pub["rasbt_qwen3_06b_grpo_math500"]["value"],
                "source": pub[item]["source"],
            }
        )
    for p in metrics["distill_pass_at_1"]:
        rows.append(
            {
                "setting": f"ours, {_size(metrics, p)}",
                "benchmark": "3-digit addition pass@1",
                "distilled": 100 * stats.as_metric(metrics["distill_pass_at_1"][p]).mean,
                "rl": 100 * stats.as_metric(metrics["rl_pass_at_1"][p]).mean,
                "source": "this chapter",
            }
        )
    return rows
