"""The distillation chapter's trace set and students (companion of :mod:`.distillation`, imported by it only).

The upstream recipes the chapter calls (the lab base, the GRPO teacher, the held-out set), the
rejection-sampled trace set, the students' trained artifacts (SFT on traces or on answers only,
logit KD, GRPO) and their cached held-out scores.  The chapter's stages and its settings
(:class:`~minir1.experiments.distillation.DistillConfig`) live in :mod:`.distillation`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .. import artifacts, distill, flops, models
from ..distill import FrozenTeacher
from ..evaluation import (
    EvalSet,
    Sampling,
    eval_record,
    evaluate,
    evaluate_cached,
    per_problem_scores,
)
from ..grpo import train_grpo
from ..grpo_rollout import prompt_batches
from ..rewards import accuracy_reward, accuracy_reward_lenient, format_reward
from ..tasks import get_task, split_of
from ..tokenizer import format_prompt
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


def heldout(cfg: DistillConfig) -> tuple[EvalSet, Sampling]:
    """The held-out problems of the RL chapter's verdict and R1's sampling (T = 0.6, top-p 0.95) with
    ``cfg.n_samples`` samples per problem (pass@k for the lab's k up to that count, and k = n_samples)."""
    r1 = lab_base.samplings(cfg.teacher.base)["r1"]
    ks = tuple(sorted({k for k in r1.ks if k <= cfg.n_samples} | {cfg.n_samples}))  # pass@k up to every sample
    return lab_grpo.eval_set(cfg.teacher), replace(r1, n_samples=cfg.n_samples, ks=ks)


def greedy(cfg: DistillConfig) -> Sampling:
    """Greedy decoding (one answer per problem): the decoding variant of every verdict."""
    return lab_base.samplings(cfg.teacher.base)["greedy"]


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
            "tokens": int(res.tokens),  # prompt + completion (+ eos) tokens trained on: 6·N each
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


class BudgetSpent(Exception):
    """Raised between two GRPO steps once the arm has spent its FLOPs (ends :func:`train_grpo` there)."""


class FlopMeter:
    """A GRPO arm's ledger, step by step, and its stop on spent FLOPs (issue 24: equal FLOPs, within 5%).

    Each step is charged what it runs (:func:`minir1.flops.grpo_step`, μ = 1, β = 0, KL not logged, so
    no reference forward): sampling (2·N per prompt and completion token) and the policy's forward and
    backward over prompt *and* completion (6·N).  Prompt tokens are exact (the rollout's prompts,
    drawn in :func:`train_grpo`'s order, checked against the keys the reward sees); completion tokens
    are the completion re-encoded, plus the ``<eos>`` when it stopped before the maximum length.  The
    meter's accuracy reward also logs the step's reward components (accuracy, format) and answer-level
    accuracy.  Stop rule: after step k, stop when ``spent + last/2 >= budget`` (the next step, costed
    as the last, would overshoot by more than stopping now falls short), so the miss is at most half
    a step.
    """

    def __init__(self, budget: float, n_params: int, tokenizer, problems, gcfg, seed: int):
        self.budget, self.n, self.tok, self.cfg = float(budget), n_params, tokenizer, gcfg
        self.batches = prompt_batches(problems, gcfg.batch_size // gcfg.group_size, seed)
        self.ledger, self.steps = flops.Ledger("grpo"), []

    @property
    def spent(self) -> float:
        return self.ledger.total

    def max_steps(self, problems) -> int:
        """Steps that surely spend the budget (each sample costs at least its prompt and one token)."""
        shortest = min(len(self.tok.encode(format_prompt(self.tok, p.question, self.cfg.template))) for p in problems)
        one = flops.grpo_step(self.n, prompt=shortest, completion=1, group=self.cfg.batch_size, reference=False)
        return int(self.budget // one) + 2

    def _charge(self, completions, keys) -> None:
        probs = next(self.batches)
        G, cap = self.cfg.group_size, self.cfg.max_completion_length
        if [p.key for p in probs for _ in range(G)] != list(keys):
            raise RuntimeError("FlopMeter: the rollout's prompts are not train_grpo's order; cannot count them")
        prompt = [len(self.tok.encode(format_prompt(self.tok, p.question, self.cfg.template))) for p in probs]
        comp = [min(cap, len(self.tok.encode(c)) + 1) for c in completions]  # + <eos> unless cut at the cap
        p_tok = [n for n in prompt for _ in range(G)]
        samp = flops.sampling(self.n, prompt=p_tok, completion=comp)
        train = flops.forward_backward(self.n, p_tok + comp)  # policy forward + backward, prompt and completion
        self.ledger = self.ledger.add("sampling", samp).add("policy forward+backward", train)
        self.steps.append({"step": len(self.steps) + 1, "flops": samp + train, "len": float(np.mean(comp))})

    def rewards(self) -> list:
        """R1-Zero's two rewards (accuracy, format), as functions with their own names, metered."""

        def accuracy_reward_(completions, task=None, key=None, **kw):
            r = accuracy_reward(completions, task=task, key=key, **kw)
            self._charge(completions, key)
            lenient = accuracy_reward_lenient(completions, task=task, key=key, **kw)
            self.steps[-1] |= {"reward_accuracy": float(np.mean(r)), "acc_lenient": float(np.mean(lenient))}
            return r

        def format_reward_(completions, **kw):
            r = format_reward(completions, **kw)
            self.steps[-1]["reward_format"] = float(np.mean(r))
            return r

        accuracy_reward_.__name__, format_reward_.__name__ = accuracy_reward.__name__, format_reward.__name__
        return [accuracy_reward_, format_reward_]

    def check(self, model) -> dict:
        """GRPO's ``eval_fn``, called after every step: raises :class:`BudgetSpent` at the stop rule."""
        if self.steps and self.spent + self.steps[-1]["flops"] / 2 >= self.budget:
            raise BudgetSpent(f"spent {self.spent:.4g} of {self.budget:.4g} FLOPs in {len(self.steps)} steps")
        return {}


def grpo_on_budget(model, tok, problems, gcfg, budget: float, seed: int) -> FlopMeter:
    """GRPO (``gcfg``, its step count ignored) on ``model`` in place until it has spent ``budget`` FLOPs."""
    meter = FlopMeter(budget, models.n_params(model), tok, problems, gcfg, seed)
    run = replace(gcfg, steps=meter.max_steps(problems), eval_every=1, log_every=0, log_kl=False)
    if run.kl_coef != 0 or run.num_iterations != 1:
        raise ValueError(f"grpo_on_budget counts β = 0 and μ = 1; got kl_coef={run.kl_coef}, μ={run.num_iterations}")
    t0 = time.perf_counter()
    try:
        train_grpo(model, tok, problems, meter.rewards(), run, eval_fn=meter.check, seed=seed)
    except BudgetSpent:
        pass
    model.eval()
    meter.wall_seconds = time.perf_counter() - t0
    return meter


def rl_student(cfg: DistillConfig, preset: str, budget: float, seed: int) -> Path:
    """Artifact of GRPO (the RL chapter's recipe) on the lab base at ``preset``, stopped on ``budget`` FLOPs."""
    gcfg = replace(cfg.teacher.grpo, log_kl=False, eval_every=0, log_every=0)

    def build(folder):
        model, tok = models.load(student_base_path(cfg.teacher, preset), device=device())
        meter = grpo_on_budget(model, tok, rl_train_problems(cfg.teacher, seed), gcfg, budget, seed)
        models.save(model.cpu(), tok, folder)
        first = meter.steps[0] if meter.steps else {}
        return {
            "flops": meter.spent,
            "ledger": meter.ledger.to_dict(),
            "budget": float(budget),
            "params": models.n_params(model),
            "steps": len(meter.steps),
            "first_reward": first.get("reward_accuracy", 0.0) + first.get("reward_format", 0.0),
            "first_reward_accuracy": first.get("reward_accuracy", 0.0),
            "first_reward_format": first.get("reward_format", 0.0),
            "history": meter.steps,
            "wall_seconds": meter.wall_seconds,
        }

    conf = {
        "preset": preset,
        "seed": seed,
        "grpo": asdict(gcfg),
        "budget": float(budget),
        "teacher": asdict(cfg.teacher),
    }
    return artifacts.cached("distill-rl", conf, build)


class _Context(SimpleNamespace):
    """Teacher, tokenizer, traces and answers shared by every student build."""

    def frozen(self):
        if getattr(self, "_frozen", None) is None:
            self._frozen = FrozenTeacher(self.teacher, self.tok, self.traces)
        return self._frozen


# ----------------------------------------------------------------------------- measuring
def _greedy_rows(path: Path, cfg: DistillConfig, seeds: Sequence[int], evals: dict) -> dict:
    """Greedy decoding of model ``path`` (deterministic: one evaluation, under the first seed)."""
    eset, g = heldout(cfg)[0], greedy(cfg)
    res = [evaluate_cached(path, eset, g, seeds[0])]
    eid, rec = eval_record(path, eset, g, res, seeds[:1])
    evals[eid] = rec
    return {f"{k}_greedy": per_problem_scores(res, k) for k in ("acc", "acc_lenient", "format")}


def scores(path: Path, cfg: DistillConfig, seeds: Sequence[int], evals: dict, greedy_too: bool = True) -> dict:
    """Cached held-out evaluation of model ``path`` for ``seeds``; per-problem (S, P) arrays and cost
    (greedy decoding too unless ``greedy_too`` is False: the controls no verdict reads)."""
    eset, samp = heldout(cfg)
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
        "format": per_problem_scores(res, "format"),
        "pass_k": per_problem_scores(res, f"pass@{max(samp.ks)}"),
        **(_greedy_rows(path, cfg, seeds, evals) if greedy_too else {}),
        "params": n,
        "tokens": toks,
        "flops_per_answer": [2.0 * n * t for t in toks],
        "k": max(samp.ks),
        "eval_flops": 2.0 * n * sum(r.tokens_generated for r in res),
        "samples": res[0].samples,
        "train_flops": float(meta.get("flops", 0.0)),
        "ledger": meta.get("ledger"),
        "history": meta.get("history"),
        "first_reward": float(meta.get("first_reward", 0.0)),
        "first_reward_accuracy": float(meta.get("first_reward_accuracy", 0.0)),
        "first_reward_format": float(meta.get("first_reward_format", 0.0)),
        "steps": int(meta.get("steps", 0)),
    }


def validation_curve(cfg: DistillConfig, ctx, preset: str) -> dict[int, dict[str, float]]:
    """Validation pass@1, answer-level and strict, after SFT (a) for each candidate step count (seed 0)."""
    _, samp = heldout(cfg)
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
        out[steps] = {"lenient": r.acc_lenient, "strict": r.acc}
    return out


def choose_steps(curve: dict[int, float], tolerance: float) -> int:
    """The rule in :class:`DistillConfig`: fewest steps within ``tolerance`` of the best validation score.

    >>> choose_steps({60: 0.70, 120: 0.79, 240: 0.80}, 0.02)
    120
    """
    best = max(curve.values())
    return min(s for s, v in curve.items() if v >= best - tolerance)


def choose_students(val: dict[str, float], params: dict[str, int], tolerance: float) -> dict[str, str]:
    """The students each claim is about, from validation pass@1 at the chosen steps only (written before
    the run): ``best`` has the highest score (ties: fewer parameters); ``cheap`` is the smallest within
    ``tolerance`` of it; ``best_other``/``cheap_other`` the next student by validation score (itself
    when there is one student), for the "other student size" variants.

    >>> choose_students({"nano": 0.99, "pico": 0.98}, {"nano": 3, "pico": 1}, 0.02)["cheap"]
    'pico'
    """
    order = sorted(val, key=lambda p: (-val[p], params[p]))
    best = order[0]
    cheap = min((p for p in val if val[p] >= val[best] - tolerance), key=lambda p: params[p])

    def other(p):
        return next((q for q in order if q != p), p)

    return {"best": best, "cheap": cheap, "best_other": other(best), "cheap_other": other(cheap)}


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


def _per_seed(cfg, seeds, evals, path_of, greedy_too: bool = True) -> dict:
    """One model per seed (trained with that seed), each evaluated with its own seed; rows stacked."""
    recs = [scores(path_of(s), cfg, [s], evals, greedy_too) for s in seeds]
    rows = ("acc", "acc_lenient", "format", "pass_k")
    rows += ("acc_greedy", "acc_lenient_greedy", "format_greedy") if greedy_too else ()
    per = ("tokens", "flops_per_answer")
    one = ("train_flops", "first_reward", "first_reward_accuracy", "first_reward_format", "steps", "ledger", "history")
    return {
        **{k: np.vstack([r[k] for r in recs]) for k in rows},
        **{k: [r[k][0] for r in recs] for k in per},
        **{k: [r[k] for r in recs] for k in one},
        "params": recs[0]["params"],
        "k": recs[0]["k"],
        "eval_flops": sum(r["eval_flops"] for r in recs),
        "samples": recs[0]["samples"],
    }
