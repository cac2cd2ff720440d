"""The distillation experiment: an RL-trained teacher, smaller students, four ways to train them.

DeepSeek-R1 made its small models by supervised fine-tuning of Qwen2.5 and Llama bases on ~800K
curated samples (600K reasoning traces kept by rejection sampling from an R1 checkpoint, 200K
non-reasoning), with no RL stage, and reports that this beats large-scale RL on the small model
itself (Table 6; the figures are in ``data/published_distillation.csv``).  This module runs that
comparison in miniature, with the pieces of :mod:`minir1.distill`:

* **teacher**: GRPO on the lab base, the recipe the RL chapter's easy case also runs
  (:mod:`minir1.experiments.recipes.lab_grpo`; ``cfg.teacher`` is that recipe's config);
* **distillation set**: several samples per *train* prompt from the teacher, kept only when the
  answer verifies and the output is in R1's format (rejection sampling), with its cost and how
  many traces are distinct;
* **validation split**: ``cfg.n_val`` further train-split problems, never sent to the teacher;
  each student's SFT steps are chosen on them by the rule in :class:`DistillConfig` (the
  held-out test set is never looked at for a choice);
* **students**: lab bases of smaller presets, and per seed (a) SFT on the teacher's traces,
  (b) GRPO with the RL chapter's recipe, stopped when it has spent (a)'s FLOPs including the
  traces' cost (:class:`~.distillation_students.FlopMeter`: sampling plus forward and backward
  over prompt and completion tokens, counted with :mod:`minir1.flops`; within 5% per seed),
  (c) SFT on the same answers without reasoning for (a)'s training tokens, (d) logit KD;
* **choices on validation only**: each student's SFT steps, and which student each claim is
  about (the best and the cheap one), from validation scores;
* **bigger comparators**: the teacher itself, and the teacher's base given GRPO stopped at the
  best student's distillation FLOPs;
* **measures**: held-out answer-level pass@1 (the answer whatever its format), the format rate
  beside it, strict pass@1 and greedy decoding as variants, on the RL chapter's held-out set with
  R1's sampling (8 samples per problem); every comparison paired on the same problems and seeds,
  a hierarchical bootstrap hulled with the seed-level t interval (:mod:`minir1.stats_hier`);
  ``cfg.n_seeds`` (5) seeds for every arm a verdict reads, ``cfg.control_seeds`` for the controls.

Deviations, besides scale: students ~1/3 (``nano``) and ~1/18 (``pico``) of the teacher, not
R1's 1.5B-70B from 671B; traces of 3-digit additions (~36 tokens); SFT on hundreds of traces,
not 800K; one pretrained base per student size.  The GRPO students use the RL chapter's learning
rate (chosen for the teacher's size) and do not log the KL to their base (``log_kl=False``, which
changes nothing in training).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .. import artifacts, gpu_estimate, models, rules, stats
from ..gpu_estimate import stage_flops
from ..profiles import check_profile
from ..results import ChapterResult, claim
from ..tasks import get_task
from ..train import TrainConfig
from ..utils import device
from .distillation_config import DistillConfig
from .distillation_metrics import _size, comparison, extra_of, load_published, metrics_of, total_flops
from .distillation_students import (
    CONDITIONS,
    _Context,
    _per_seed,
    _traces_record,
    answer_map,
    answers_only,
    choose_steps,
    choose_students,
    distillation_set,
    heldout,
    matched_steps,
    rl_student,
    scores,
    sft_student,
    student_base_path,
    teacher_path,
    validation_curve,
)
from .recipes import gpu_stages, lab_grpo

# What the notebook (04_distillation) and the tests read from the chapter, defined in its companions.
__all__ = [
    "AFTER",
    "CONDITIONS",
    "DistillConfig",
    "PROFILES",
    "comparison",
    "config",
    "dry_run",
    "estimate_gpu",
    "heldout",
    "load_published",
    "run",
    "seeds_for",
    "verdicts",
]

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ("lab",)  # its teacher recipe is shared with the RL chapter (built once, under a lock)


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
        n_seeds=2,  # the hull needs two seeds; the cpu profile runs 5
        control_seeds=1,
        n_samples=4,
    ),
    # Cold budget <= 25 min on 2 cores: three candidates per student, five seeds for every arm a verdict
    # reads, two for the controls, a two-point curve, 8 samples per held-out problem.
    "cpu": dict(),
    # One GPU: the 27.3M teacher (the RL chapter's GRPO on the lab's gpu base) and two smaller students.
    "gpu": dict(
        students=("mini", "micro"),
        n_prompts=4000,
        n_val=500,
        samples_per_prompt=4,
        sft=TrainConfig(steps=600, batch_size=64, lr=1e-3, warmup_steps=30, log_every=100, progress=False, bf16=True),
        sft_candidates=(300, 600, 1000, 1500),
        curve_student="micro",
        fractions=(0.01, 0.1, 1.0),
    ),
}
PROFILES: dict[str, DistillConfig] = {
    name: DistillConfig(teacher=lab_grpo.PROFILES[name], **own) for name, own in _PROFILES_OWN.items()
}


def config(profile: str) -> DistillConfig:
    """The chapter's configuration for ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: DistillConfig) -> DistillConfig:
    """``cfg``'s model shapes for two steps everywhere (tests run the gpu profile this way)."""
    two = replace(cfg.sft, steps=2, batch_size=2, warmup_steps=1, log_every=1, progress=False)
    return replace(
        cfg,
        teacher=lab_grpo.dry_run(cfg.teacher),
        n_prompts=2,
        n_val=2,
        samples_per_prompt=2,
        verify=False,
        sft=two,
        sft_candidates=(1, 2),
        fractions=(0.5, 1.0),
        n_seeds=2,
        control_seeds=1,
        n_samples=2,
        dry_run=True,
    )


# ----------------------------------------------------------------------------- the chapter's stages
@dataclass
class _Upstream:
    """What the chapter starts from: the teacher, its base, and the train and validation prompts."""

    tpath: Path
    bpath: Path
    teacher: object
    tok: object
    tmeta: dict
    bmeta: dict
    train_set: list
    val: list


def _teacher_and_split(cfg: DistillConfig) -> _Upstream:
    """The teacher and its base (loaded, or trained if missing), the train prompts and the validation split."""
    tpath, bpath = teacher_path(cfg.teacher, cfg.teacher_seed), student_base_path(cfg.teacher)
    teacher, tok = models.load(tpath, device=device())
    tmeta, bmeta = artifacts.load_meta(tpath), artifacts.load_meta(bpath)
    task, diff = cfg.teacher.task, cfg.teacher.difficulty
    drawn = get_task(task, diff).sample("train", cfg.n_prompts + cfg.n_val, seed=2024)
    train_set, val = drawn[: cfg.n_prompts], drawn[cfg.n_prompts :]  # validation: never sent to the teacher
    return _Upstream(tpath, bpath, teacher, tok, tmeta, bmeta, train_set, val)


def _traces(cfg: DistillConfig, up: _Upstream) -> _Context:
    """The distillation set from the teacher, and what every student build shares."""
    traces = distillation_set(
        up.teacher,
        up.tok,
        up.train_set,
        cfg,
        task=cfg.teacher.task,
        difficulty=cfg.teacher.difficulty,
        max_new_tokens=cfg.teacher.grpo.max_completion_length,
        seed=cfg.teacher_seed,
    )
    return _Context(
        teacher=up.teacher,
        tok=up.tok,
        traces=traces,
        val=up.val,
        answers=answers_only(traces, answer_map(up.tok, up.train_set)),
        _frozen=None,
    )


def seeds_for(cfg: DistillConfig, seeds: Sequence[int]) -> list[int]:
    """The seeds the chapter runs: those given, then the next integers until ``cfg.n_seeds`` (issue 24:
    at least 5 training seeds for every arm a verdict reads).

    >>> seeds_for(DistillConfig(), [0, 1, 2])
    [0, 1, 2, 3, 4]
    """
    out = list(dict.fromkeys(int(s) for s in seeds))
    while len(out) < cfg.n_seeds:
        out.append(max(out, default=-1) + 1)
    return out


def _validate(cfg: DistillConfig, ctx: _Context) -> tuple[dict, dict, dict]:
    """Every student's validation curve and chosen steps, and the students each claim is about."""
    val = {p: validation_curve(cfg, ctx, p) for p in cfg.students}
    steps = {p: choose_steps({k: v["lenient"] for k, v in val[p].items()}, cfg.val_tolerance) for p in cfg.students}
    at_steps = {p: val[p][steps[p]]["lenient"] for p in cfg.students}
    params = {p: artifacts.load_meta(student_base_path(cfg.teacher, p))["params"] for p in cfg.students}
    return val, steps, choose_students(at_steps, params, cfg.val_tolerance)


def _spent(rec: dict, traces) -> list[float]:
    """A distillation arm's spent FLOPs per seed: SFT over prompt and completion tokens + the teacher's traces."""
    return [float(f) + traces.flops for f in rec["train_flops"]]


def _train_student(cfg: DistillConfig, ctx: _Context, p: str, steps: int, seeds: list[int], evals: dict) -> dict:
    """Student ``p``: its base and conditions (a)-(d), scored per seed ((c), (d): the control seeds)."""
    sb, ctl = student_base_path(cfg.teacher, p), seeds[: cfg.control_seeds]
    meta = artifacts.load_meta(sb)
    rec = {"base": scores(sb, cfg, seeds, evals), "steps": steps, "base_flops": meta["flops"]}
    rec["base_seconds"] = float(meta.get("wall_seconds", 0.0))  # what another pretrained base would cost
    rec["distill"] = _per_seed(cfg, seeds, evals, lambda s: sft_student(cfg, ctx, p, "distill", steps, s))
    a_steps = matched_steps(ctx.tok, ctx.traces, ctx.answers, steps)

    def control(cond: str, n: int) -> dict:  # (c), (d): the control seeds, sampled decoding only
        return _per_seed(cfg, ctl, evals, lambda s: sft_student(cfg, ctx, p, cond, n, s), greedy_too=False)

    rec["answers_only"], rec["logit_kd"] = control("answers_only", a_steps), control("logit_kd", steps)
    # (b) GRPO stopped when it has spent what (a) spent with the same seed, the traces included.
    budget = dict(zip(seeds, _spent(rec["distill"], ctx.traces)))
    rec["rl"] = _per_seed(cfg, seeds, evals, lambda s: rl_student(cfg, p, budget[s], s))
    rec["rl_budget"] = [budget[s] for s in seeds]
    return rec


def _big_rl(cfg: DistillConfig, out: dict, traces, seeds: list[int], evals: dict) -> dict:
    """The teacher's base given GRPO, stopped at the best student's distillation FLOPs (traces included), per seed."""
    budget = dict(zip(seeds, _spent(out["students"][out["chosen"]["best"]]["distill"], traces)))
    return {
        **_per_seed(cfg, seeds, evals, lambda s: rl_student(cfg, cfg.teacher.base.preset, budget[s], s)),
        "budget": [budget[s] for s in seeds],
    }


def _curve(cfg: DistillConfig, ctx: _Context, rec: dict, seeds: list[int], evals: dict) -> tuple[dict, dict]:
    """The sample-efficiency curve: SFT (a) of the curve student (record ``rec``) on shares of the traces."""
    c, ctl = cfg.curve_student, seeds[: cfg.control_seeds]
    curve = {
        str(f): (
            rec["distill"]
            if f == 1.0
            else _per_seed(
                cfg,
                ctl,
                evals,
                lambda s, f=f: sft_student(cfg, ctx, c, "distill", rec["steps"], s, fraction=f),
                greedy_too=False,
            )
        )
        for f in cfg.fractions
    }
    return curve, {str(f): max(1, round(f * len(ctx.traces))) for f in cfg.fractions}


def _rl_steps(budget: float, preset: str, g) -> int:
    """GRPO steps a FLOP budget buys: 8·N per prompt and completion token (completions at half the maximum)."""
    n, _ = gpu_stages.preset_size(preset)
    return max(1, int(budget / (8.0 * n * g.batch_size * (gpu_stages.PROMPT_TOKENS + g.max_completion_length / 2))))


def estimate_gpu(cfg: DistillConfig, n_seeds: int | None = None) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate` (the lab's base already trained: AFTER)."""
    t, g, n_seeds = cfg.teacher, cfg.teacher.grpo, n_seeds or cfg.n_seeds
    big, length, seq = t.base.preset, g.max_completion_length, gpu_stages.PROMPT_TOKENS + g.max_completion_length
    held = t.n_eval * cfg.n_samples * n_seeds  # one model's held-out scoring (R1's sampling, every seed)
    # 1. The teacher (GRPO seed 0 on the lab base) and its traces.
    traces = gpu_stages.sample("teacher traces", big, cfg.n_prompts * cfg.samples_per_prompt, length)
    stages = [*gpu_stages.grpo_run("teacher GRPO", big, g, t.n_eval * t.eval_samples), traces]
    stages.append(gpu_stages.sample("teacher and its base scoring", big, 2 * held, length))
    # 2. Each student: its base, SFT candidates and conditions, the RL student at the matched budget.
    sft_len, best, ctl = max(cfg.sft_candidates), 0.0, min(cfg.control_seeds, n_seeds)
    for p in cfg.students:
        curve = (len(cfg.fractions) - 1) * ctl * (p == cfg.curve_student)
        runs = len(cfg.sft_candidates) + n_seeds + 2 * ctl + curve
        sft = gpu_stages.pretrain(f"{p} SFT", p, replace(cfg.sft, steps=runs * sft_len, pack=True, seq_len=seq))
        sft_flops = stage_flops(sft) / runs  # one SFT run: (b)'s budget with the traces
        best = max(best, sft_flops)  # the best student is not known before the run: the largest budget
        rl = replace(g, steps=_rl_steps(sft_flops + stage_flops(traces), p, g), log_kl=False, eval_every=0)
        stages += [
            gpu_stages.pretrain(f"{p} base", p, t.base.train),
            sft,
            gpu_stages.sample(f"{p} validation", p, len(cfg.sft_candidates) * cfg.n_val * cfg.n_samples, length),
            *gpu_stages.grpo_run(f"{p} RL", p, rl, 0, runs=n_seeds),
            gpu_stages.sample(f"{p} scoring", p, t.n_eval * cfg.n_samples * (3 * n_seeds + 2 * ctl + curve), length),
        ]
    # 3. The teacher's base given GRPO at the best student's budget.
    if cfg.big_rl:
        rl = replace(g, steps=_rl_steps(best + stage_flops(traces), big, g), log_kl=False, eval_every=0)
        stages += [*gpu_stages.grpo_run("big RL", big, rl, 0, runs=n_seeds)]
        stages.append(gpu_stages.sample("big RL scoring", big, held, length))
    return gpu_estimate.estimate("distillation", stages)


# ----------------------------------------------------------------------------- the chapter
def run(cfg: DistillConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """Everything the chapter measures, as a :class:`ChapterResult` of Metrics (on :func:`seeds_for`'s seeds)."""
    seeds = seeds_for(cfg, seeds)
    clock, timing, evals = [time.perf_counter()], {}, {}

    def lap(name):
        clock.append(time.perf_counter())
        timing[name] = clock[-1] - clock[-2]

    # Stage 1: the teacher and its base, the train prompts and the validation split.
    up = _teacher_and_split(cfg)
    lap("teacher and its base (load, or train if missing)")
    # Stage 2: the distillation set (rejection-sampled teacher traces) and its accounting.
    ctx = _traces(cfg, up)
    out = {"traces": _traces_record(ctx.traces, ctx.tok, cfg, 0.0), "timing": timing, "seeds": seeds}
    lap("distillation set")
    out["traces"]["wall_seconds"] = timing["distillation set"]
    # Stage 3: the bigger comparators as they are: the teacher and its base.
    out["teacher"] = {
        **scores(up.tpath, cfg, seeds, evals),
        "base_flops": up.bmeta["flops"],
        "rl_flops": up.tmeta["flops"],
    }
    out["big_base"] = scores(up.bpath, cfg, seeds, evals)
    lap("teacher and its base scored")
    # Stage 4: each student's SFT steps, and the students each claim is about, on validation only.
    out["val"], steps, out["chosen"] = _validate(cfg, ctx)
    lap("validation")
    # Stage 5: each student's conditions (a)-(d) per seed, GRPO stopped on (a)'s spent FLOPs.
    out["students"] = {}
    for p in cfg.students:
        out["students"][p] = _train_student(cfg, ctx, p, steps[p], seeds, evals)
        lap(f"student {p}")
    # Stage 6: the teacher's base given GRPO at the best student's distillation FLOPs.
    if cfg.big_rl:
        out["big_rl"] = _big_rl(cfg, out, ctx.traces, seeds, evals)
        lap("teacher's base + GRPO at equal FLOPs")
    # Stage 7: the sample-efficiency curve of the curve student.
    out["curve"], out["curve_n"] = _curve(cfg, ctx, out["students"][cfg.curve_student], seeds, evals)
    lap("sample-efficiency curve")
    # Stage 8: metrics, verdicts and the result.
    m = metrics_of(out)
    return ChapterResult(
        metrics=m,
        config=cfg,
        evals=evals,
        extra=extra_of(out),
        flops=total_flops(out),
        claims=verdicts(m, cfg),
        wall_seconds=time.perf_counter() - clock[0],
    )


# ----------------------------------------------------------------------------- verdicts
def _judge(claim_id: str, m: dict, evidence: str) -> dict:
    try:
        return rules.judge(claim_id, m, evidence)
    except rules.RuleError as e:  # a metric the rule needs is undefined (e.g. a teacher that solves nothing)
        rule = rules.rule_of(claim_id)
        return claim(
            claim_id, rule["otherwise"], f"{evidence} The rule cannot be applied ({e}); its 'otherwise' verdict stands."
        )


_RULE = "95% intervals: hierarchical bootstrap (seeds, then problems) hulled with the seed-level t interval"


def _cheaper_evidence(m: dict) -> str:
    f = stats.fmt
    per = "; ".join(
        f"{_size(m, p)}: distilled {f(m['distill_pass_at_1_lenient'][p])} (format {f(m['distill_format_rate'][p])}), "
        f"minus teacher {f(m['distill_vs_teacher_lenient'][p])}, cost per answer {f(m['distill_cost_ratio'][p])}"
        for p in m["distill_pass_at_1_lenient"]
    )
    return (
        f"Answer-level held-out pass@1: teacher {f(m['teacher_pass_at_1_lenient'])} (format "
        f"{f(m['teacher_format_rate'])}); {per}. The cheap student (chosen on validation) minus the teacher: "
        f"{f(m['cheap_vs_teacher'])} against the −5 pp margin (strict {f(m['cheap_vs_teacher_strict'])}; greedy "
        f"{f(m['cheap_vs_teacher_greedy'])}). {_RULE}."
    )


def _small_evidence(m: dict) -> str:
    f = stats.fmt
    big = (
        f"; against the teacher's base given GRPO stopped at the student's distillation FLOPs ({m['big_rl_steps']:.0f} "
        f"steps on average; big + RL {f(m['big_rl_pass_at_1_lenient'])}): {f(m['small_vs_big_rl'])} (strict "
        f"{f(m['small_vs_big_rl_strict'])})"
        if "small_vs_big_rl" in m
        else ""
    )
    return (
        f"Best student (chosen on validation) minus the {m['teacher_params'] / 1e6:.2f}M teacher, answer-level "
        f"pass@1: {f(m['small_vs_teacher'])} against the −2 pp margin (strict {f(m['small_vs_teacher_strict'])})"
        f"{big}; student/teacher parameters {m['best_student_size']:.2f}. {_RULE}."
    )


def _rl_evidence(m: dict) -> str:
    f = stats.fmt
    per = "; ".join(
        f"{_size(m, p)}: distilled minus GRPO {f(m['distill_minus_rl_lenient'][p])} (strict "
        f"{f(m['distill_minus_rl'][p])}), GRPO {m['rl_steps'][p]:.0f} steps at {m['rl_flops_vs_distill'][p]:.3f}× the "
        f"distillation FLOPs, first-step reward accuracy {m['rl_first_reward_accuracy'][p]:.3f} + format "
        f"{m['rl_first_reward_format'][p]:.3f}"
        for p in m["distill_minus_rl_lenient"]
    )
    return (
        f"{per}. An accuracy component of 0 at GRPO's first step means no group had a correct answer to learn "
        f"from: RL cannot start from that base on the task. {_RULE}."
    )


def _anyone_evidence(m: dict) -> str:
    f = stats.fmt
    return (
        f"{int(m['trace_pairs'])} {'verified' if m['trace_verified'] else 'UNVERIFIED'} traces "
        f"({int(m['trace_distinct'])} distinct, covering {int(m['trace_problems'])} problems) from "
        f"{int(m['trace_sampled'])} teacher samples; the best student gains {f(m['anyone_gain'])} answer-level "
        f"(strict {f(m['anyone_gain_strict'])}) over its base at {m['anyone_compute_reused']:.1%} of the teacher's "
        f"compute with its base reused, {m['anyone_compute_trained']:.1%} with its base trained here. {_RULE}."
    )


def verdicts(m: dict, cfg: DistillConfig | None = None) -> list[dict]:
    """The chapter's four claims, by the rules in ``data/claims.yml`` (written before the run)."""
    return [
        _judge("distill-cheaper-without-losing-much", m, _cheaper_evidence(m)),
        _judge("distill-small-beats-big", m, _small_evidence(m)),
        _judge("distill-beats-rl-small", m, _rl_evidence(m)),
        _judge("distill-anyone-can", m, _anyone_evidence(m)),
    ]
