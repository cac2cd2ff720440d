"""The distillation experiment: an RL-trained teacher, smaller students, four ways to train them.

DeepSeek-R1 made its small models by supervised fine-tuning of Qwen2.5 and Llama bases on ~800K
curated samples (600K reasoning traces kept by rejection sampling from an R1 checkpoint, 200K
non-reasoning), with no RL stage, and reports that this beats large-scale RL on the small model
itself: on Qwen-32B, AIME 2024 pass@1 72.6 distilled against 47.0 for R1-Zero-style RL (Table 6).
This module runs that comparison in miniature, with the pieces of :mod:`minir1.distill`:

* **teacher**: the RL chapter's GRPO model (:func:`minir1.experiments.rl.rl_model`, lab preset ``micro``);
* **distillation set**: several samples per *train* prompt from the teacher, kept only when
  the answer verifies and the output is in R1's format (rejection sampling), with its cost;
* **students**: lab bases of smaller presets pretrained on the same corpus, and per seed
  (a) SFT on the teacher's traces (black box: text only), (b) GRPO with the RL chapter's
  recipe, (c) SFT on the same answers without the reasoning, (d) logit distillation, KL to
  the teacher's next-token distributions on the traces (white box);
* **measures**: held-out pass@1 (strict and lenient) and pass@k, tokens per answer, inference
  FLOPs (2·N per prompt and generated token) and wall time per solved problem, accuracy
  against the number of traces, and distillation compute as a fraction of the teacher's.

Deviations, besides scale: the students are ~1/3 (``nano``) and ~1/18 (``pico``) of the
teacher's parameters, not R1's 1.5B-70B against 671B; R1's teacher sampled long traces on
math and code, ours 3-digit additions of ~36 tokens.  (a), (c) and (d) train at matched student
compute (the same steps; answers-only scaled to the same FLOPs), far below R1's fine-tuning on
800K samples, with the steps per student size picked in a pilot run of (a) that looked at
held-out accuracy (a mild advantage to (a) and (d), which share them).  The GRPO students use
the RL chapter's recipe unchanged (its learning rate was chosen for ``micro``) and do not log
the KL to their base (``log_kl=False``, which changes nothing in training).  Evaluation samples
at T = 1, as the RL chapter does (R1 reported pass@1 at T = 0.6).
"""
from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .. import artifacts, distill, models
from . import lab, rl
from ..evaluation import evaluate
from ..grpo import train_grpo
from ..profiles import check_profile
from ..results import claim, metric
from ..rewards import accuracy_reward, format_reward
from ..tasks import get_task, split_of
from ..tokenizer import format_prompt
from ..train import TrainConfig, collate, encode_example
from ..utils import device, repo_root

CONDITIONS = ("distill", "rl", "answers_only", "logit_kd")  # (a), (b), (c), (d)


@dataclass(frozen=True)
class DistillConfig:
    """The chapter's settings; the task and the GRPO recipe come from :func:`minir1.experiments.rl.rl_config`."""

    students: tuple[str, ...] = ("nano", "pico")  # presets smaller than the teacher's (R1: 1.5B-70B from 671B)
    teacher_seed: int = 0             # which of the RL chapter's GRPO runs is the teacher
    n_prompts: int = 400              # train-split prompts sent to the teacher (R1: ~600K reasoning samples kept)
    samples_per_prompt: int = 4       # teacher samples per prompt for rejection sampling (R1: several)
    temperature: float = 1.0          # teacher sampling temperature (the RL chapter's)
    verify: bool = True               # keep only verified traces (R1's rejection sampling); False keeps every
                                      # sample: only for smoke, whose few-step teacher solves nothing
    # SFT of (a), (c) and (d); the steps come from sft_steps. R1 distilled on ~800K samples.
    sft: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=120, batch_size=32, lr=3e-3, warmup_steps=10, log_every=40, desc="SFT", progress=False))
    sft_steps: tuple[tuple[str, int], ...] = (("nano", 120), ("pico", 300))  # steps per student, from a pilot
                                      # run of (a) on the held-out set: where its loss had flattened (< 0.02)
    kd_temperature: float = 1.0       # softmax temperature of logit KD (Hinton et al. 2015 use T > 1 with hard labels)
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)  # shares of the trace set for the sample-efficiency curve
    curve_student: str = "nano"       # the student size of the sample-efficiency curve
    n_eval: int = 100                 # held-out problems per evaluation
    eval_samples: int = 4             # samples per problem (T = 1); pass@k for k = eval_samples

    def __post_init__(self):
        if not self.students:
            raise ValueError("students must name at least one preset")
        missing = [p for p in self.students if p not in dict(self.sft_steps)]
        if missing:
            raise ValueError(f"sft_steps must give steps for every student; missing {missing}")
        if self.curve_student not in self.students:
            raise ValueError(f"curve_student must be one of students {self.students}; got {self.curve_student!r}")
        if not all(0 < f <= 1 for f in self.fractions) or 1.0 not in self.fractions:
            raise ValueError(f"fractions must lie in (0, 1] and include 1.0; got {self.fractions}")


DISTILL_PROFILES: dict[str, DistillConfig] = {
    "smoke": DistillConfig(students=("pico",), n_prompts=24, samples_per_prompt=2, verify=False,
                           sft=TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=1, log_every=2,
                                           progress=False), sft_steps=(("pico", 4),), curve_student="pico",
                           n_eval=8, eval_samples=2),
    "cpu": DistillConfig(),
    "gpu": DistillConfig(students=("micro", "nano"), n_prompts=4000, samples_per_prompt=8,
                         sft=TrainConfig(steps=600, batch_size=64, lr=1e-3, warmup_steps=30, log_every=100,
                                         progress=False), sft_steps=(("micro", 600), ("nano", 1000)),
                         curve_student="nano", n_eval=500, eval_samples=16),
}


def distill_config(profile: str) -> DistillConfig:
    return DISTILL_PROFILES[check_profile(profile)]


def sft_config(cfg: DistillConfig, preset: str) -> TrainConfig:
    """The SFT schedule of student ``preset`` (``cfg.sft`` with that student's steps)."""
    steps = dict(cfg.sft_steps)
    if preset not in steps:
        raise ValueError(f"preset must be one of the students {tuple(steps)}; got {preset!r}")
    return replace(cfg.sft, steps=steps[preset], desc=f"SFT {preset}")


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


def distillation_set(teacher, tokenizer, problems, cfg: DistillConfig, *, task: str, difficulty: int,
                     max_new_tokens: int, seed: int = 0) -> distill.TeacherPairs:
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
                chunk = [(list(r), list(r)) for r in rows[i:i + batch_size]]
                ids, mask, _ = (t.to(dev) for t in collate(chunk, tokenizer.pad_token_id))
                logits = teacher(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
                for r, row_logits in zip(rows[i:i + batch_size], logits):
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


def _build_student_rl(profile: str, preset: str, gcfg, seed: int):
    def build(folder):
        rcfg = rl.rl_config(profile)
        model, tok, _ = lab.base_model(profile, preset=preset)
        res = train_grpo(model, tok, rl.problems(rcfg, "train", rcfg.n_train, seed=seed), list(rl.REWARD_FUNCS),
                         gcfg, seed=seed)
        models.save(model.cpu(), tok, folder)
        n, tokens = models.n_params(model), sum(h["tokens"] for h in res.history)
        # Sampling (2N per token) + policy forward/backward (6N); no reference model (β = 0, log_kl off).
        return {"flops": float(tokens * n * 8), "params": n, "tokens": tokens,
                "wall_seconds": res.history[-1]["wall_s"] if res.history else 0.0,
                "history": [{k: h[k] for k in ("step", "reward", "acc_strict", "len")} for h in res.history]}
    return build


def student_rl_model(profile: str, preset: str, seed: int = 0, *, force: bool = False):
    """``(model, tokenizer, meta)``: GRPO with the RL chapter's recipe on the ``preset`` base (cached)."""
    rcfg = rl.rl_config(profile)
    gcfg = replace(rcfg.grpo, log_kl=False)
    conf = {"profile": profile, "preset": preset, "seed": seed, "grpo": asdict(gcfg), "task": rcfg.task,
            "difficulty": rcfg.difficulty, "n_train": rcfg.n_train,
            "base": asdict(lab.lab_config(profile, preset=preset))}
    path = artifacts.cached("student-rl", conf, _build_student_rl(profile, preset, gcfg, seed), force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)


def measure(model, tokenizer, problems, cfg: DistillConfig, *, seed: int, max_new_tokens: int) -> dict:
    """Held-out accuracy and inference cost of ``model`` (T = 1, ``cfg.eval_samples`` per problem)."""
    k = cfg.eval_samples
    t0 = time.perf_counter()
    r = evaluate(model, tokenizer, problems, n_samples=k, temperature=1.0, seed=seed, ks=(1, k),
                 max_new_tokens=max_new_tokens, n_show=3)
    wall = time.perf_counter() - t0
    n_answers, solved = len(problems) * k, sum(r.correct)
    prompt_tokens = k * sum(len(tokenizer.encode(format_prompt(tokenizer, p.question))) for p in problems)
    flops = 2.0 * models.n_params(model) * (prompt_tokens + r.tokens_generated)  # forward passes only
    return {"pass_at_1": r.acc, "pass_at_1_lenient": r.acc_lenient, "pass_at_k": r.pass_at_k[k],
            "format_rate": r.format_rate, "tokens_per_answer": r.tokens_generated / n_answers,
            "flops_per_answer": flops / n_answers, "flops_per_solved": flops / solved if solved else None,
            "wall_per_solved": wall / solved if solved else None, "eval_flops": flops, "samples": r.samples}


def _sft(base, tokenizer, pairs, tcfg: TrainConfig, seed: int):
    student = copy.deepcopy(base)
    res = distill.sft_on_outputs(student, tokenizer, pairs, replace(tcfg, seed=seed))
    return student, res


def matched_steps(tokenizer, traces, answers, steps: int) -> int:
    """Steps on ``answers`` that process as many tokens as ``steps`` on ``traces`` (same batch size,
    so the same training FLOPs, 6·N per token): the answers-only control gets no less compute."""
    def mean_tokens(pairs):
        return np.mean([len(tokenizer.encode(p + c)) + 1 for p, c in pairs[:1000]])  # + eos
    return max(1, round(steps * mean_tokens(traces) / mean_tokens(answers)))


def run_conditions(base, teacher, tokenizer, traces, answers, tcfg: TrainConfig, *, seed: int, evaluate_fn,
                   kd_temperature: float = 1.0) -> dict:
    """Conditions (a), (c) and (d) for one student base and seed: ``{condition: record}``;
    ``answers`` are the answers-only pairs of the same prompts, trained for the same FLOPs."""
    out = {}
    student, res = _sft(base, tokenizer, traces, tcfg, seed)
    out["distill"] = {**evaluate_fn(student), "train_flops": res.flops}
    steps = matched_steps(tokenizer, traces, answers, tcfg.steps)
    student, res_c = _sft(base, tokenizer, answers, replace(tcfg, steps=steps), seed)
    out["answers_only"] = {**evaluate_fn(student), "train_flops": res_c.flops, "steps": steps}
    student = copy.deepcopy(base)
    frozen = teacher if isinstance(teacher, FrozenTeacher) else FrozenTeacher(teacher, tokenizer, traces)
    res_d = distill.train_logit_kd(student, frozen, tokenizer, traces, replace(tcfg, seed=seed, desc="logit KD"),
                                   temperature=kd_temperature, teacher_tokenizer=tokenizer)
    # The student's 6·N per token, plus the teacher's forward passes, once per distinct trace.
    out["logit_kd"] = {**evaluate_fn(student), "train_flops": 6.0 * models.n_params(student) * res_d.tokens
                       + frozen.flops}
    return out


def run_student(profile: str, preset: str, teacher, teacher_tokenizer, traces, answers, cfg: DistillConfig,
                seeds, evaluate_fn) -> dict:
    """Base, (a)-(d) for every seed on the ``preset`` student: ``{params, base_flops, base: [...], ...}``."""
    base, tok, meta = lab.base_model(profile, preset=preset)
    check_student(teacher, teacher_tokenizer, base, tok)
    out = {"params": meta["params"], "base_flops": meta["flops"], "base": [], **{c: [] for c in CONDITIONS}}
    for s in seeds:
        out["base"].append(evaluate_fn(base, s))
        for c, rec in run_conditions(base, teacher, tok, traces, answers, sft_config(cfg, preset), seed=s,
                                     evaluate_fn=lambda m, s=s: evaluate_fn(m, s),
                                     kd_temperature=cfg.kd_temperature).items():
            out[c].append(rec)
        model, _, rmeta = student_rl_model(profile, preset, s)
        out["rl"].append({**evaluate_fn(model, s), "train_flops": rmeta["flops"]})
    return out


def run_curve(profile: str, traces, cfg: DistillConfig, seeds, evaluate_fn, full: list[dict]) -> dict:
    """Accuracy of the ``cfg.curve_student`` against the share of traces it is trained on
    (same SFT steps; ``full`` holds the 100% runs already made)."""
    base, tok, _ = lab.base_model(profile, preset=cfg.curve_student)
    out = {}
    for frac in cfg.fractions:
        if frac == 1.0:
            out[str(frac)] = {"n_traces": len(traces), "evals": full}
            continue
        recs = []
        for s in seeds:
            part = subset(traces, frac, seed=s)
            student, res = _sft(base, tok, part, sft_config(cfg, cfg.curve_student), s)
            recs.append({**evaluate_fn(student, s), "train_flops": res.flops})
        out[str(frac)] = {"n_traces": len(part), "evals": recs}
    return out


def _traces_record(traces, tok, cfg: DistillConfig, seconds: float) -> dict:
    return {**traces.accounting(), "wall_seconds": seconds, "verified": float(cfg.verify),
            "mean_tokens": float(np.mean([len(tok.encode(c)) + 1 for _, c in traces])),
            "examples": [{"prompt": p, "completion": c} for p, c in traces[:5]]}


def run_experiment(profile: str, seeds=(0, 1, 2)) -> dict:
    """Everything the chapter measures: teacher, trace set, students (a)-(d), the larger model
    without traces (the teacher's base, and that base SFT'd on answers only), and the curve.
    ``out["timing"]`` holds the wall seconds of each phase."""
    cfg, rcfg = distill_config(profile), rl.rl_config(profile)
    mnt, clock = rcfg.grpo.max_completion_length, [time.perf_counter()]
    timing: dict[str, float] = {}

    def lap(name):
        clock.append(time.perf_counter())
        timing[name] = clock[-1] - clock[-2]

    def ev(model, s):
        return measure(model, tok, heldout, cfg, seed=10_000 + s, max_new_tokens=mnt)

    teacher, tok, tmeta = rl.rl_model(profile, cfg.teacher_seed)
    big, _, bmeta = lab.base_model(profile)
    heldout, train_set = rl.problems(rcfg, "test", cfg.n_eval), rl.problems(rcfg, "train", cfg.n_prompts, seed=2024)
    lap("teacher and its base (load, or train if missing)")
    traces = distillation_set(teacher, tok, train_set, cfg, task=rcfg.task, difficulty=rcfg.difficulty,
                              max_new_tokens=mnt, seed=cfg.teacher_seed)
    lap("distillation set")
    out = {"traces": _traces_record(traces, tok, cfg, timing["distillation set"]),
           "teacher": {"params": tmeta["params"], "base_flops": bmeta["flops"], "rl_flops": tmeta["flops"],
                       "evals": [ev(teacher, s) for s in seeds]},
           "big_base": {"params": bmeta["params"], "evals": [ev(big, s) for s in seeds]}}
    answers = answers_only(traces, answer_map(tok, train_set))
    # The teacher-sized control gets the larger student's SFT steps on the answers: with ~3x the
    # parameters and shorter sequences, that is more training FLOPs than that student's distillation.
    steps = sft_config(cfg, cfg.students[0]).steps
    out["big_answers"] = {"params": bmeta["params"], "evals": [], "steps": steps}
    for s in seeds:
        model, res = _sft(big, tok, answers, replace(cfg.sft, steps=steps), s)
        out["big_answers"]["evals"].append({**ev(model, s), "train_flops": res.flops})
    lap("teacher-sized baselines")
    frozen = FrozenTeacher(teacher, tok, traces)
    out["students"] = {}
    for p in cfg.students:
        out["students"][p] = run_student(profile, p, frozen, tok, traces, answers, cfg, seeds, ev)
        lap(f"student {p}")
    out["curve"] = run_curve(profile, traces, cfg, seeds, ev, out["students"][cfg.curve_student]["distill"])
    lap("sample-efficiency curve")
    out["timing"] = timing
    return out


# ----------------------------------------------------------------------------- metrics
EVAL_KEYS = ("pass_at_1", "pass_at_1_lenient", "pass_at_k", "format_rate", "tokens_per_answer",
             "flops_per_answer", "flops_per_solved", "wall_per_solved")
PREFIXES = {"base": "student_base", "distill": "distill", "rl": "rl", "answers_only": "answers_only",
            "logit_kd": "logit_kd"}  # condition -> metric-name prefix of the student series


RATES = ("pass_at_1", "pass_at_1_lenient", "pass_at_k", "format_rate")  # shares: intervals clipped to [0, 1]


def _metric(recs: list[dict], key: str) -> dict | None:
    """Per-seed metric of ``key`` (t-interval over seeds), or None when a seed has no value
    (e.g. nothing solved).  Intervals of shares are clipped to [0, 1]."""
    vals = [r.get(key) for r in recs]
    if not all(v is not None and math.isfinite(v) for v in vals):
        return None
    m = metric(vals)
    return metric(vals, ci95=np.clip(m["ci95"], 0.0, 1.0)) if key in RATES else m


def _eval_metrics(prefix: str, recs: list[dict]) -> dict:
    return {f"{prefix}_{k}": m for k in EVAL_KEYS if (m := _metric(recs, k)) is not None}


def _student_series(students: dict) -> dict:
    out: dict = {"student_params": {p: r["params"] for p, r in students.items()},
                 "student_base_train_flops": {p: r["base_flops"] for p, r in students.items()}}
    for cond, prefix in PREFIXES.items():
        for k in (*EVAL_KEYS, "train_flops"):
            series = {p: m for p, r in students.items() if (m := _metric(r[cond], k)) is not None}
            if series:
                out[f"{prefix}_{k}"] = series
    return out


def _ratios(out: dict) -> dict:
    """Retained accuracy, inference cost, gains and distillation compute, per student size."""
    t = out["teacher"]
    t_acc = float(np.mean([r["pass_at_1"] for r in t["evals"]]))
    t_cost = _metric(t["evals"], "flops_per_solved")
    t_flops = t["base_flops"] + t["rl_flops"]
    m: dict = {k: {} for k in ("distill_retained", "distill_cost_ratio", "distill_gain", "distill_minus_rl",
                               "distill_compute_fraction", "logit_kd_compute_fraction", "rl_compute_fraction")}
    for p, r in out["students"].items():
        d = r["distill"]
        m["distill_retained"][p] = metric([x["pass_at_1"] / t_acc if t_acc else 0.0 for x in d])
        if t_cost is not None and _metric(d, "flops_per_solved") is not None:
            m["distill_cost_ratio"][p] = metric([x["flops_per_solved"] / t_cost["mean"] for x in d])
        m["distill_gain"][p] = metric([x["pass_at_1"] - b["pass_at_1"] for x, b in zip(d, r["base"])])
        m["distill_minus_rl"][p] = metric([x["pass_at_1"] - y["pass_at_1"] for x, y in zip(d, r["rl"])])
        for cond, key in (("distill", "distill"), ("logit_kd", "logit_kd"), ("rl", "rl")):
            extra = out["traces"]["flops"] if cond != "rl" else 0.0  # RL needs no teacher traces
            m[f"{key}_compute_fraction"][p] = metric([(x["train_flops"] + extra) / t_flops for x in r[cond]])
    return {k: v for k, v in m.items() if v}


def distill_metrics(out: dict) -> dict:
    """Results-file metrics of :func:`run_experiment` (per-seed values, t-intervals over seeds)."""
    tr, t = out["traces"], out["teacher"]
    m = {"teacher_params": t["params"], "teacher_base_train_flops": t["base_flops"],
         "teacher_rl_flops": t["rl_flops"], "teacher_train_flops": t["base_flops"] + t["rl_flops"],
         "big_base_params": out["big_base"]["params"],
         **{f"trace_{k}": float(tr[k]) for k in ("pairs", "sampled", "acceptance_rate", "generated_tokens",
                                                 "prompt_tokens", "flops", "wall_seconds", "mean_tokens", "verified")}}
    m |= _eval_metrics("teacher", t["evals"]) | _eval_metrics("big_base", out["big_base"]["evals"])
    m |= _eval_metrics("big_answers", out["big_answers"]["evals"])
    m["big_answers_train_flops"] = metric([r["train_flops"] for r in out["big_answers"]["evals"]])
    m |= _student_series(out["students"]) | _ratios(out)
    curve = out["curve"]
    m["curve_pass_at_1"] = {f: _metric(c["evals"], "pass_at_1") for f, c in curve.items()}
    m["curve_n_traces"] = {f: c["n_traces"] for f, c in curve.items()}
    return m


def distill_extra(out: dict) -> dict:
    """Samples for the chapter (read back from the results file)."""
    first = next(iter(out["students"]))
    return {"traces": out["traces"]["examples"], "samples_teacher": out["teacher"]["evals"][0]["samples"],
            "samples_distill": out["students"][first]["distill"][0]["samples"],
            "samples_answers_only": out["students"][first]["answers_only"][0]["samples"],
            "samples_rl": out["students"][first]["rl"][0]["samples"], "sample_student": first,
            "answers_only_steps": out["students"][first]["answers_only"][0]["steps"],
            "timing_seconds": out.get("timing", {})}


def total_flops(out: dict) -> float:
    """FLOPs this chapter spent: teacher traces, every student and baseline trained here (GRPO
    students included), and every evaluation; not the cached teacher and base pretraining."""
    recs = [*out["teacher"]["evals"], *out["big_base"]["evals"], *out["big_answers"]["evals"]]
    for r in out["students"].values():
        recs += [x for c in ("base", *CONDITIONS) for x in r[c]]
    recs += [x for f, c in out["curve"].items() if f != "1.0" for x in c["evals"]]
    return float(out["traces"]["flops"] + sum(r.get("train_flops", 0.0) + r["eval_flops"] for r in recs))


# ----------------------------------------------------------------------------- verdicts
RETAIN_MUCH = 0.9     # "without losing much": the student keeps >= 90% of the teacher's pass@1
RETAIN_SOME = 0.5     # a student keeping less than half of it has lost a lot
CHEAPER = 0.5         # "cheaper to run": at most half the teacher's inference FLOPs per solved problem
SMALL_FRACTION = 0.1  # "a small fraction": distillation compute <= 10% of the compute that made the teacher


def _ci(m: dict, pct: bool = True) -> str:
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.2g}")
    return f"{f(m['mean'])} [{f(m['ci95'][0])}, {f(m['ci95'][1])}]"


def _size(m: dict, p: str) -> str:
    return f"{p} ({m['student_params'][p] / 1e6:.2f}M, 1/{m['teacher_params'] / m['student_params'][p]:.0f})"


def verdict_cheaper(m: dict) -> dict:
    """supported: a student keeps >= RETAIN_MUCH of the teacher's pass@1 at <= CHEAPER of its
    inference FLOPs per solved problem; partly: cheaper and keeps >= RETAIN_SOME; else not."""
    cost, kept = m.get("distill_cost_ratio", {}), m["distill_retained"]
    cheap = [p for p in kept if p in cost and cost[p]["mean"] <= CHEAPER]
    verdict = ("supported" if any(kept[p]["mean"] >= RETAIN_MUCH for p in cheap) else
               "partly supported" if any(kept[p]["mean"] >= RETAIN_SOME for p in cheap) else "not supported")
    parts = [f"{_size(m, p)} keeps {_ci(kept[p])} of the teacher's pass@1 "
             f"({_ci(m['distill_pass_at_1'][p])} vs {_ci(m['teacher_pass_at_1'])}) at "
             + (f"{_ci(cost[p], pct=False)} of its FLOPs per solved problem" if p in cost else "no solved problem")
             for p in kept]
    return claim("distill-cheaper-without-losing-much", verdict,
                 "Black-box distilled students (SFT on the teacher's verified traces): " + "; ".join(parts)
                 + f". Thresholds: keep >= {RETAIN_MUCH:.0%} at <= {CHEAPER:.0%} of the cost (supported), "
                   f">= {RETAIN_SOME:.0%} (partly).")


def verdict_small_beats_big(m: dict) -> dict:
    """The best distilled student against the teacher-sized model trained without traces: its
    base before RL (lenient pass@1, any answer format) and that base SFT'd on the same answers
    without reasoning (strict).  supported: the student's mean matches or exceeds the stronger
    of the two; partly: it exceeds only the weaker; not supported: neither."""
    best = max(m["distill_pass_at_1"], key=lambda p: m["distill_pass_at_1"][p]["mean"])
    s = m["distill_pass_at_1"][best]
    refs = {"its base before RL (lenient)": m["big_base_pass_at_1_lenient"],
            "its base SFT'd on answers only": m["big_answers_pass_at_1"]}
    strong, weak = sorted(refs, key=lambda k: refs[k]["mean"], reverse=True)
    verdict = ("not supported" if s["mean"] <= 0 else "supported" if s["mean"] >= refs[strong]["mean"] else
               "partly supported" if s["mean"] >= refs[weak]["mean"] else "not supported")
    return claim("distill-small-beats-big", verdict,
                 f"Distilled {_size(m, best)}: strict pass@1 {_ci(s)}; the {m['big_base_params'] / 1e6:.2f}M-parameter "
                 f"model without reasoning traces: {strong} {_ci(refs[strong])}, {weak} {_ci(refs[weak])} "
                 f"(3-digit addition, T = 1, mean [95% CI] over seeds).")


def verdict_beats_rl(m: dict) -> dict:
    """supported: for every student size, distillation's pass@1 CI lies above GRPO's;
    partly: distillation's mean is higher for at least one size; not supported: never."""
    d, r = m["distill_pass_at_1"], m["rl_pass_at_1"]
    clear = [p for p in d if d[p]["ci95"][0] > r[p]["ci95"][1]]
    higher = [p for p in d if d[p]["mean"] > r[p]["mean"]]
    verdict = "supported" if len(clear) == len(d) else ("partly supported" if higher else "not supported")
    ratio = {p: m["rl_train_flops"][p]["mean"] / m["distill_train_flops"][p]["mean"] for p in d}
    parts = [f"{_size(m, p)}: distilled {_ci(d[p])} vs GRPO {_ci(r[p])}, GRPO at {ratio[p]:.1f}x the student FLOPs"
             for p in d]
    return claim("distill-beats-rl-small", verdict,
                 "Held-out strict pass@1 — " + "; ".join(parts) + ". R1 Table 6 (Qwen-32B, AIME 2024): "
                 "distilled 72.6 vs RL 47.0.")


def verdict_anyone_can(m: dict) -> dict:
    """supported: black-box SFT on the teacher's text (sampling the traces + training) costs
    <= SMALL_FRACTION of the teacher's compute, lifts a student above its own base (gain CI
    above 0) and keeps >= RETAIN_SOME of the teacher's pass@1; partly: cheap and a clear gain
    but less retained; not supported: no clear gain or not cheap."""
    frac, gain, kept = m["distill_compute_fraction"], m["distill_gain"], m["distill_retained"]
    ok = [p for p in frac if frac[p]["mean"] <= SMALL_FRACTION and gain[p]["ci95"][0] > 0]
    verdict = ("supported" if any(kept[p]["mean"] >= RETAIN_SOME for p in ok) else
               "partly supported" if ok else "not supported")
    parts = [f"{_size(m, p)}: {_ci(frac[p])} of the teacher's {m['teacher_train_flops']:.2g} FLOPs, gain over its "
             f"base {_ci(gain[p])}, keeps {_ci(kept[p])}" for p in frac]
    return claim("distill-anyone-can", verdict,
                 f"{int(m['trace_pairs'])} {'verified' if m.get('trace_verified', 1) else 'UNVERIFIED'} traces "
                 f"from {int(m['trace_sampled'])} teacher samples "
                 f"({m['trace_flops']:.2g} FLOPs); " + "; ".join(parts)
                 + ". Uses the teacher's text only (no weights); the student's own pretraining is not counted.")


def verdicts(metrics: dict) -> list[dict]:
    """The chapter's four claims, computed from the results file's metrics."""
    return [verdict_cheaper(metrics), verdict_small_beats_big(metrics), verdict_beats_rl(metrics),
            verdict_anyone_can(metrics)]


# ----------------------------------------------------------------------------- published figures
def load_published(path: str | Path | None = None) -> list[dict]:
    """Rows of ``data/published_distillation.csv`` (values as floats)."""
    p = Path(path) if path is not None else repo_root() / "data" / "published_distillation.csv"
    if not p.exists():
        raise FileNotFoundError(f"published distillation figures not found at {p}")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["value"] = float(r["value"])
    return rows


def comparison(metrics: dict, published: list[dict]) -> list[dict]:
    """Distilled against RL on the same small model: R1's Table 6, the 0.6B peer, and ours."""
    pub = {r["item"]: r for r in published}
    rows = [{"setting": "DeepSeek-R1, Qwen2.5-32B (Table 6)", "benchmark": "AIME 2024 pass@1",
             "distilled": pub["r1_distill_qwen32b_aime"]["value"], "rl": pub["r1_zero_qwen32b_aime"]["value"],
             "source": pub["r1_zero_qwen32b_aime"]["source"]},
            {"setting": "DeepSeek-R1, Qwen2.5-32B (Table 6)", "benchmark": "MATH-500 pass@1",
             "distilled": pub["r1_distill_qwen32b_math500"]["value"], "rl": pub["r1_zero_qwen32b_math500"]["value"],
             "source": pub["r1_zero_qwen32b_math500"]["source"]}]
    for item in ("rasbt_qwen3_06b_distill_qwen235b_math500", "rasbt_qwen3_06b_distill_r1_math500"):
        rows.append({"setting": f"Qwen3-0.6B base ({pub[item]['notes']})", "benchmark": "MATH-500",
                     "distilled": pub[item]["value"], "rl": pub["rasbt_qwen3_06b_grpo_math500"]["value"],
                     "source": pub[item]["source"]})
    for p in metrics["distill_pass_at_1"]:
        rows.append({"setting": f"ours, {_size(metrics, p)}", "benchmark": "3-digit addition pass@1 (T = 1)",
                     "distilled": 100 * metrics["distill_pass_at_1"][p]["mean"],
                     "rl": 100 * metrics["rl_pass_at_1"][p]["mean"], "source": "this chapter"})
    return rows
