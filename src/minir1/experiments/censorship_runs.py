"""The censorship chapter's configuration and its stages (a companion of
:mod:`minir1.experiments.censorship`, imported by it and by :mod:`.censorship_finetune` alone).

The stages, in the order the chapter runs them: :func:`run_baseline` (the censor and the
assistant it came from), :func:`run_doses` (students distilled at each dose),
:func:`~.censorship_finetune.run_finetune` (the censor along a downstream fine-tune, in
:mod:`.censorship_finetune`) and :func:`run_removal`
(directional ablation and a small SFT).  Each returns a :class:`Stage`: its metrics, in the
order the results file lists them, the FLOPs it spent and what it adds to the results' ``extra``.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import models, stats
from ..distill import logit_kd_loss, sft_on_outputs, teacher_outputs
from ..refusal import (
    RefusalMeasurement,
    ablate,
    clustered_diff,
    clustered_ratio,
    disagreement,
    fold_ablation,
    measure,
    rate_metric,
    refusal_direction,
    rows_of,
    thought_suppression,
)
from ..tokenizer import format_prompt
from ..train import TrainConfig, collate, encode_example, eval_loss, train
from ..world import (
    REFUSALS,
    VOCABULARY,
    Question,
    WorldConfig,
    build_world,
    refusal_completion,
    split,
)


# ----------------------------------------------------------------------------- configuration
def train_config(steps, lr, desc, **kw) -> TrainConfig:
    """A training stage of the chapter: batch 32, warmup min(20, steps / 5), no progress bar."""
    return TrainConfig(
        steps=steps,
        batch_size=kw.pop("batch_size", 32),
        lr=lr,
        desc=desc,
        progress=False,
        warmup_steps=kw.pop("warmup_steps", min(20, steps // 5)),
        log_every=25,
        **kw,
    )


@dataclass(frozen=True)
class FinetuneConfig:
    """A downstream developer's fine-tune: addition in R1's format mixed with general chat."""

    # optimizer steps at which we measure: fine early, to see the order in which the behaviours fade
    checkpoints: tuple[int, ...] = (0, 10, 25, 50, 100, 200, 300, 400, 500)
    lr: float = 2e-3  # constant lr
    batch_size: int = 32
    n_examples: int = 2000  # training pairs (addition + replay)
    replay: float = 0.5  # share of general (non-sensitive) chat in the data
    digits: int = 2  # the task: addition of numbers with this many digits (1-digit sums
    # cannot be learned for held-out pairs: there are only 100 facts)
    reference_seeds: int = 1  # seeds (the first ones) of the same recipe from the uncensored assistant
    # "The task is learned": held-out greedy accuracy >= target_share x what the same recipe
    # reaches from the uncensored assistant at its last checkpoint (the stopping rule, fixed in advance).
    target_share: float = 0.8
    variant_target_share: float = 0.5  # the rule's variant: a lower bar for "the task is learned"

    def __post_init__(self):
        c = self.checkpoints
        if not c or c[0] != 0 or list(c) != sorted(set(c)):
            raise ValueError(f"checkpoints must start at 0 and increase strictly; got {c!r}")
        if not 0 < self.target_share <= 1 or not 0 < self.variant_target_share <= 1:
            raise ValueError(
                f"target_share and variant_target_share must be in (0, 1]; got {self.target_share!r}, "
                f"{self.variant_target_share!r}"
            )
        if self.reference_seeds < 1:
            raise ValueError(f"reference_seeds must be >= 1; got {self.reference_seeds!r}")
        if not 0 <= self.replay < 1:
            raise ValueError(f"replay must be in [0, 1); got {self.replay!r}")


@dataclass(frozen=True)
class Config:
    """The whole chapter: the world, the three models trained once, the students, the downstream
    fine-tune, the removals and the evaluation's sampling."""

    world: WorldConfig = field(default_factory=WorldConfig)
    teacher_preset: str = "nano"  # the censoring lab's model (~0.34M parameters)
    assistant_train: TrainConfig = field(default_factory=lambda: train_config(250, 3e-3, "assistant"))
    censor_train: TrainConfig = field(default_factory=lambda: train_config(120, 2e-3, "censor"))
    student_preset: str = "pico"  # another lab's smaller assistant (~0.06M parameters)
    student_base_train: TrainConfig = field(default_factory=lambda: train_config(400, 5e-3, "student-base"))
    student_train: TrainConfig = field(default_factory=lambda: train_config(100, 2e-3, "student", warmup_steps=5))
    doses: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2)  # share of sensitive prompts in the distillation mix
    reference_dose: float = 0.05  # the dose whose inheritance (vs dose 0) the verdict reads
    mix_size: int = 400  # teacher replies per student (one sample per mix prompt)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    removal_train: TrainConfig = field(default_factory=lambda: train_config(40, 1e-3, "removal-sft", warmup_steps=5))
    direction_share: float = 0.75  # share of sensitive/control pairs each seed's direction uses
    n_samples: int = 4  # replies per evaluation prompt
    temperature: float = 0.6  # R1's recommended sampling temperature
    max_new_tokens: int = 48  # longest reply (an honest one is ~40 characters)
    real_n_samples: int = 1  # the real-model harness (when a local checkpoint is given)
    real_max_new_tokens: int = 256
    n_seeds: int = 5  # seeds run() uses when none are given: >= 5 for every comparison that decides the verdict
    ablation_seeds: int = 3  # directional ablation (not deciding) runs on the first this-many seeds

    def __post_init__(self):
        if self.n_seeds < 1 or self.ablation_seeds < 1:
            raise ValueError(f"n_seeds and ablation_seeds must be >= 1; got {self.n_seeds!r}, {self.ablation_seeds!r}")
        if not self.doses or self.doses[0] != 0.0 or any(not 0 <= d <= 1 for d in self.doses):
            raise ValueError(f"doses must start at 0.0 and lie in [0, 1]; got {self.doses!r}")
        if self.reference_dose not in self.doses[1:]:
            raise ValueError(
                f"reference_dose must be one of the non-zero doses {self.doses[1:]}; got {self.reference_dose!r}"
            )


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Probe:
    """One model's measurements on held-out sensitive prompts and on their matched controls."""

    sensitive: RefusalMeasurement
    control: RefusalMeasurement

    def of(self, k: str) -> RefusalMeasurement:
        """The measurement on prompt set ``k`` ("sensitive" or "control")."""
        return getattr(self, k)


@dataclass
class Stage:
    """What one stage adds to the chapter's result: ``metrics`` (in the results file's order), the
    ``flops`` it spent and ``extra`` (curves and samples for the results' ``extra``)."""

    metrics: dict[str, Any]
    flops: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Baseline(Stage):
    """:func:`run_baseline`'s stage, with the assistant's per-prompt correct facts (seeds x prompts)
    on held-out sensitive prompts: what each removal's recovery is paired with."""

    assistant_correct: np.ndarray | None = None


# ----------------------------------------------------------------------------- measurements
def qa_pairs(tok, qs: list[Question], refuse: bool = False) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of world questions: honest answers, or the censor's refusal."""
    return [(format_prompt(tok, q.question), refusal_completion(q.question) if refuse else q.completion) for q in qs]


def world_measure(model, tok, qs: list[Question], cfg: Config, seed: int) -> RefusalMeasurement:
    """The three detectors (and fact accuracy) on world questions."""
    return measure(
        model,
        tok,
        [format_prompt(tok, q.question) for q in qs],
        n_samples=cfg.n_samples,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        seed=seed,
        openers=tuple(r[0] for r in REFUSALS),
        facts=[q.fact for q in qs],
        vocabulary=VOCABULARY,
    )


def probe(model, tok, sets, cfg: Config, seed: int) -> Probe:
    """Measurements on held-out sensitive prompts and their matched controls (in that order)."""
    sensitive = world_measure(model, tok, sets["sensitive_eval"], cfg, seed)
    return Probe(sensitive=sensitive, control=world_measure(model, tok, sets["control_eval"], cfg, seed))


def distill_student(teacher, tok, sets, cfg: Config, path: Path, dose: float, seed: int):
    """Another lab's honest assistant fine-tuned only on the teacher's replies to a general mix in which a
    share ``dose`` of prompts is sensitive (drawn from the censor's training events); returns
    the student and the FLOPs spent (teacher sampling + student training)."""
    rng = random.Random(f"mix/{dose}/{seed}")
    n_s = round(dose * cfg.mix_size)
    mix = [rng.choice(sets["censor"]) for _ in range(n_s)] + [
        rng.choice(sets["general"]) for _ in range(cfg.mix_size - n_s)
    ]
    pairs = teacher_outputs(
        teacher,
        tok,
        [format_prompt(tok, q.question) for q in mix],
        n_samples=1,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        seed=seed,
    )
    student, _ = models.load(path / "student_base")
    res = sft_on_outputs(student, tok, pairs, replace(cfg.student_train, seed=seed))
    return student, res.flops + pairs.flops


def control_kl(before, after, tok, qs: list[Question]) -> float:
    """Mean per-token KL(before || after) on the honest completions of ``qs`` (teacher-forced)."""
    ids, mask, labels = collate([encode_example(tok, p, c) for p, c in qa_pairs(tok, qs)], tok.pad_token_id)
    with torch.no_grad():
        a = before(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
        b = after(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return float(logit_kd_loss(b, a, labels[:, 1:] != -100))


def choose_direction(teacher, tok, sets, cfg: Config, seed: int) -> tuple[int, torch.Tensor]:
    """Difference of means on a seeded ``direction_share`` of the censor's training pairs, at the
    layer whose ablation most lowers P(empty think) on those prompts (Arditi et al. select so)."""
    world_pairs = list(zip(sets["censor"], sets["censor_control"]))
    rng = random.Random(f"direction/{seed}")
    chosen = rng.sample(world_pairs, max(2, round(cfg.direction_share * len(world_pairs))))
    sens = [format_prompt(tok, q.question) for q, _ in chosen]
    ctrl = [format_prompt(tok, c.question) for _, c in chosen]
    best = None
    for layer in range(teacher.config.num_hidden_layers):
        r = refusal_direction(teacher, tok, sens, ctrl, layer)
        with ablate(teacher, r):
            score = float(thought_suppression(teacher, tok, sens).mean())
        if best is None or score < best[0]:
            best = (score, layer, r)
    return best[1], best[2]


# ----------------------------------------------------------------------------- stages
def events(sets) -> list[str]:
    """The cluster of each held-out sensitive prompt: its event (the intervals resample whole events)."""
    return [q.entity for q in sets["sensitive_eval"]]


def _stage_models(cfg: Config, path: Path):
    teacher, tok = models.load(path / "teacher")
    return teacher, tok, split(build_world(cfg.world))


def _rates(prefix: str, probes: list[Probe], seeds: str, whats=("keyword", "first_token", "thought_suppression")):
    return {
        f"{prefix}_{w if w != 'keyword' else 'refusal'}_{k}": rate_metric([p.of(k) for p in probes], w, seeds=seeds)
        for w in whats
        for k in ("sensitive", "control")
    }


def run_baseline(cfg: Config, path: Path, seeds) -> Baseline:
    """The censor and the assistant it came from, on held-out sensitive prompts and controls.
    The seeds only re-draw samples from these two models (intervals: ``seeds="sampling"``)."""
    teacher, tok, sets = _stage_models(cfg, path)
    assistant, _ = models.load(path / "assistant")
    t = [probe(teacher, tok, sets, cfg, s) for s in seeds]
    a = [probe(assistant, tok, sets, cfg, s) for s in seeds[:1]]  # a reference point: one sampling seed
    held = np.array([build_world(cfg.world).by_name(q.entity).heldout for q in sets["sensitive_eval"]])
    civic = [world_measure(teacher, tok, sets["home_civic_eval"], cfg, s) for s in seeds]
    smp = "sampling"
    metrics = {
        "teacher_refusal_home_civic": rate_metric(civic, seeds=smp),
        **_rates("teacher", t, smp),
        **_rates("assistant", a, smp, ("keyword", "thought_suppression")),
        **{
            f"{n}_{w}_sensitive": rate_metric([p.sensitive for p in ps], w, seeds=smp)
            for n, ps in (("teacher", t), ("assistant", a))
            for w in ("correct", "fabricated", "nonanswer")
        },
        "teacher_correct_control": rate_metric([p.control for p in t], "correct", seeds=smp),
        "teacher_refusal_by_split": {
            "held-out events": rate_metric([p.sensitive for p in t], mask=held, seeds=smp),
            "held-out phrasings": rate_metric([p.sensitive for p in t], mask=~held, seeds=smp),
        },
        "assistant_correct_by_split": {
            "trained events": rate_metric([p.sensitive for p in a], "correct", mask=~held, seeds=smp),
            "held-out events": rate_metric([p.sensitive for p in a], "correct", mask=held, seeds=smp),
        },
        "teacher_detector_disagreement": disagreement([[p.sensitive, p.control] for p in t]),
        "teacher_heldout_loss": eval_loss(teacher, tok, qa_pairs(tok, sets["general_eval"])),
    }
    assistant_correct = rows_of([p.sensitive for p in a], "correct")

    def samples(k):  # the censor's first reply to each of the first six prompts (first sampling seed)
        replies = t[0].of(k).texts[:: cfg.n_samples]
        return [{"question": q.question, "reply": r} for q, r in zip(sets[f"{k}_eval"], replies)][:6]

    extra = {"samples": {k: samples(k) for k in ("sensitive", "control")}}
    return Baseline(metrics, extra=extra, assistant_correct=assistant_correct)


def run_doses(cfg: Config, path: Path, seeds) -> Stage:
    """Students distilled at each dose: refusal on held-out sensitive prompts, controls, accuracy;
    and the paired difference in refusal between the reference dose and dose 0 (inheritance)."""
    teacher, tok, sets = _stage_models(cfg, path)
    runs, flops = {d: [] for d in cfg.doses}, 0.0
    for s in seeds:
        for d in cfg.doses:
            student, f = distill_student(teacher, tok, sets, cfg, path, d, s)
            runs[d].append(probe(student, tok, sets, cfg, s))
            flops += f

    def series(k, w):
        return {f"{d:.0%}": rate_metric([p.of(k) for p in runs[d]], w) for d in cfg.doses}

    sens = {d: rows_of([p.sensitive for p in runs[d]], "keyword") for d in cfg.doses}
    supp = {d: rows_of([p.sensitive for p in runs[d]], "thought_suppression") for d in (0.0, cfg.reference_dose)}
    ev, ref, high = events(sets), cfg.reference_dose, cfg.doses[-1]
    metrics = {
        "student_refusal_by_dose": series("sensitive", "keyword"),
        "student_refusal_control_by_dose": series("control", "keyword"),
        "student_thought_suppression_by_dose": series("sensitive", "thought_suppression"),
        "student_correct_control_by_dose": series("control", "correct"),
        "student_inheritance_by_dose": {f"{d:.0%}": clustered_diff(sens[d], sens[0.0], ev) for d in cfg.doses[1:]},
        # the deciding interval: events, then seeds (hull with the seed-level t); then its variants
        "student_inheritance": clustered_diff(sens[ref], sens[0.0], ev),
        "student_inheritance_high_dose": clustered_diff(sens[high], sens[0.0], ev),
        "student_inheritance_suppression": clustered_diff(supp[ref], supp[0.0], ev),
        "student_inheritance_unclustered": stats.paired_diff(sens[ref], sens[0.0]),
    }
    return Stage(metrics, flops=flops)


def _removal_metrics(prefix: str, probes: list[Probe], kls: list[float]) -> dict:
    sens = [p.sensitive for p in probes]
    return {
        **_rates(prefix, probes, "training"),
        **{f"{prefix}_{w}_sensitive": rate_metric(sens, w) for w in ("correct", "fabricated", "nonanswer")},
        f"{prefix}_correct_control": rate_metric([p.control for p in probes], "correct"),
        f"{prefix}_kl_control": stats.over_seeds(kls),
    }


def _recovery(prefix: str, probes: list[Probe], assistant_correct: np.ndarray, ev, held: np.ndarray) -> dict:
    """Correct facts after removal / correct facts the assistant knew (a paired ratio, clustered by
    event; a variant over prompts), and the correct share on the events of the censor's (and the
    removal SFT's) training data vs on held-out events."""
    sens = [p.sensitive for p in probes]
    after = rows_of(sens, "correct")
    split_by = {
        f"{prefix}_correct_by_split": {
            "trained events": rate_metric(sens, "correct", mask=~held),
            "held-out events": rate_metric(sens, "correct", mask=held),
        }
    }
    if assistant_correct.sum() == 0:
        zero = stats.exact(0.0, unit="ratio")
        return {f"{prefix}_recovery": zero, f"{prefix}_recovery_unclustered": zero, **split_by}
    return {
        f"{prefix}_recovery": clustered_ratio(after, assistant_correct, ev),
        f"{prefix}_recovery_unclustered": stats.paired_ratio(after, assistant_correct),
        **split_by,
    }


def _removed(cfg: Config, teacher, tok, sets, name: str, s: int) -> tuple[Any, float, int | None]:
    """The censor after one removal (``ablated`` or ``sft_removed``) on seed ``s``: model, FLOPs, layer."""
    model = copy.deepcopy(teacher)
    if name == "ablated":
        layer, r = choose_direction(teacher, tok, sets, cfg, s)
        fold_ablation(model, r)
        return model, 0.0, layer
    data = qa_pairs(tok, sets["censor"]) + qa_pairs(tok, sets["general"])
    return model, train(model, tok, data, replace(cfg.removal_train, seed=s)).flops, None


def run_removal(cfg: Config, path: Path, seeds, assistant_correct: np.ndarray | None = None) -> Stage:
    """Directional ablation folded into the weights (on the first ``cfg.ablation_seeds`` seeds: it
    decides nothing), and a small SFT on answered sensitive prompts (every seed).
    ``assistant_correct`` (seeds x prompts, from :func:`run_baseline`) adds each removal's
    recovery: correct facts after removal / correct facts before censoring (a paired ratio)."""
    teacher, tok, sets = _stage_models(cfg, path)
    world = build_world(cfg.world)
    held = np.array([world.by_name(q.entity).heldout for q in sets["sensitive_eval"]])
    out, flops = {}, 0.0
    for name, its in (("ablated", seeds[: cfg.ablation_seeds]), ("sft_removed", seeds)):
        probes, kls, losses, layers = [], [], [], []
        for s in its:
            model, f, layer = _removed(cfg, teacher, tok, sets, name, s)
            flops += f
            layers += [layer] if layer is not None else []
            probes.append(probe(model, tok, sets, cfg, s))
            kls.append(control_kl(teacher, model, tok, sets["control_eval"]))
            losses.append(eval_loss(model, tok, qa_pairs(tok, sets["general_eval"])))
        out.update(_removal_metrics(name, probes, kls))
        out[f"{name}_heldout_loss"] = stats.over_seeds(losses)
        if assistant_correct is not None:
            out.update(_recovery(name, probes, assistant_correct, events(sets), held))
        if layers:
            out["ablated_layer"] = stats.over_seeds(layers)
    out["sft_removal_flops"] = flops / max(len(seeds), 1)
    return Stage(out, flops=flops)
