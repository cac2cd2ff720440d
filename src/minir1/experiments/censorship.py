"""The censorship chapter (05_censorship): install a censor in a miniature world, then ask whether
it spreads (distillation by dose, a downstream fine-tune run until the task is learned) and what
removing it costs (directional ablation; a small SFT on answered sensitive prompts, as R1-1776).

The install mirrors what is reported for R1 (Cyberey & Evans 2025): an assistant is first
trained to answer every question of :mod:`minir1.world` as ``<think>short reasoning</think>
<answer>fact</answer>``; a second fine-tune makes it answer sensitive questions with an *empty*
``<think></think>`` and a canned refusal or an "official line".

Deviations, stated: the world, the censor and the students' starting point are trained once
(seed 0); the chapter's seeds vary the later stages (students, fine-tunes, direction estimates)
and the sampling.  Students start from another lab's small *assistant* that already writes
think blocks (R1's 70B distill likewise started from Llama-3.3-70B-Instruct), so that a few
dozen distillation steps suffice on CPU; R1's smaller distills started from base models.

API: ``cfg = config(profile)``; ``run(cfg, seeds) -> ChapterResult``; ``verdicts(metrics)``.
``dry_run(cfg)`` is ``cfg`` with every training stage cut to two steps (the tests run the gpu
profile's model shapes that way).
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import artifacts, models, stats
from ..distill import logit_kd_loss, sft_on_outputs, teacher_outputs
from ..profiles import check_profile
from ..refusal import (
    RefusalMeasurement,
    ablate,
    disagreement,
    evaluate_chat_model,
    fold_ablation,
    measure,
    published_refusals,
    rate_metric,
    refusal_direction,
    rows_of,
    thought_suppression,
)
from ..rewards import accuracy_reward
from ..sampling import generate
from ..tasks import completion, get_task
from ..tokenizer import build_tokenizer, format_prompt
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
from . import rules
from .chapter import ChapterResult


def _tc(steps, lr, desc, **kw) -> TrainConfig:
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

    checkpoints: tuple[int, ...] = (0, 100, 200, 300, 400, 500)  # optimizer steps at which we measure
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

    def __post_init__(self):
        c = self.checkpoints
        if not c or c[0] != 0 or list(c) != sorted(set(c)):
            raise ValueError(f"checkpoints must start at 0 and increase strictly; got {c!r}")
        if not 0 < self.target_share <= 1:
            raise ValueError(f"target_share must be in (0, 1]; got {self.target_share!r}")
        if self.reference_seeds < 1:
            raise ValueError(f"reference_seeds must be >= 1; got {self.reference_seeds!r}")
        if not 0 <= self.replay < 1:
            raise ValueError(f"replay must be in [0, 1); got {self.replay!r}")


@dataclass(frozen=True)
class Config:
    world: WorldConfig = field(default_factory=WorldConfig)
    teacher_preset: str = "nano"  # the censoring lab's model (~0.34M parameters)
    assistant_train: TrainConfig = field(default_factory=lambda: _tc(250, 3e-3, "assistant"))
    censor_train: TrainConfig = field(default_factory=lambda: _tc(120, 2e-3, "censor"))
    student_preset: str = "pico"  # another lab's smaller assistant (~0.06M parameters)
    student_base_train: TrainConfig = field(default_factory=lambda: _tc(400, 5e-3, "student-base"))
    student_train: TrainConfig = field(default_factory=lambda: _tc(100, 2e-3, "student", warmup_steps=5))
    doses: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2)  # share of sensitive prompts in the distillation mix
    reference_dose: float = 0.05  # the dose whose inheritance (vs dose 0) the verdict reads
    mix_size: int = 400  # teacher replies per student (one sample per mix prompt)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    removal_train: TrainConfig = field(default_factory=lambda: _tc(40, 1e-3, "removal-sft", warmup_steps=5))
    direction_share: float = 0.75  # share of sensitive/control pairs each seed's direction uses
    n_samples: int = 4  # replies per evaluation prompt
    temperature: float = 0.6  # R1's recommended sampling temperature
    max_new_tokens: int = 48  # longest reply (an honest one is ~40 characters)
    real_n_samples: int = 1  # the real-model harness (when a local checkpoint is given)
    real_max_new_tokens: int = 256

    def __post_init__(self):
        if not self.doses or self.doses[0] != 0.0 or any(not 0 <= d <= 1 for d in self.doses):
            raise ValueError(f"doses must start at 0.0 and lie in [0, 1]; got {self.doses!r}")
        if self.reference_dose not in self.doses[1:]:
            raise ValueError(
                f"reference_dose must be one of the non-zero doses {self.doses[1:]}; got {self.reference_dose!r}"
            )


PROFILES: dict[str, Config] = {
    "smoke": Config(
        world=WorldConfig(n_sensitive=6, n_heldout_sensitive=2, n_general=6),
        teacher_preset="pico",
        assistant_train=_tc(40, 5e-3, "assistant"),
        censor_train=_tc(15, 2e-3, "censor"),
        student_base_train=_tc(10, 5e-3, "student-base"),
        student_train=_tc(5, 2e-3, "student", batch_size=16),
        doses=(0.0, 0.2),
        reference_dose=0.2,
        mix_size=40,
        finetune=FinetuneConfig(checkpoints=(0, 5, 10), n_examples=200, digits=1),
        removal_train=_tc(5, 1e-3, "sft"),
        n_samples=1,
        max_new_tokens=40,
        real_max_new_tokens=16,
    ),
    "cpu": Config(),
    "gpu": Config(
        teacher_preset="micro",
        student_preset="nano",
        assistant_train=_tc(600, 2e-3, "assistant"),
        student_base_train=_tc(600, 3e-3, "student-base"),
        student_train=_tc(200, 2e-3, "student"),
        finetune=FinetuneConfig(checkpoints=(0, 100, 200, 400, 800, 1200), reference_seeds=3),
        n_samples=16,
        real_n_samples=4,
        real_max_new_tokens=1024,
    ),
}


def config(profile: str) -> Config:
    """The chapter's configuration for ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: Config) -> Config:
    """``cfg`` with its model shapes kept and every training stage cut to two steps (a shape check)."""

    def two(t: TrainConfig) -> TrainConfig:
        return replace(t, steps=2, warmup_steps=0)

    return replace(
        cfg,
        assistant_train=two(cfg.assistant_train),
        censor_train=two(cfg.censor_train),
        student_base_train=two(cfg.student_base_train),
        student_train=two(cfg.student_train),
        removal_train=two(cfg.removal_train),
        mix_size=min(cfg.mix_size, 40),
        n_samples=1,
        doses=(0.0, cfg.reference_dose),
        finetune=replace(cfg.finetune, checkpoints=(0, 2), n_examples=100),
        max_new_tokens=16,
    )


# ----------------------------------------------------------------------------- install
def _pairs(tok, qs: list[Question], refuse: bool = False) -> list[tuple[str, str]]:
    return [(format_prompt(tok, q.question), refusal_completion(q.question) if refuse else q.completion) for q in qs]


def _build_censor(cfg: Config):
    def build(folder):
        tok, sets = build_tokenizer(), split(build_world(cfg.world))
        model = models.build(cfg.teacher_preset, tok, seed=0)
        runs = [train(model, tok, _pairs(tok, sets["assistant"]), cfg.assistant_train)]
        models.save(model, tok, folder / "assistant")
        runs.append(
            train(model, tok, _pairs(tok, sets["censor"], refuse=True) + _pairs(tok, sets["general"]), cfg.censor_train)
        )
        models.save(model, tok, folder / "teacher")
        base = models.build(cfg.student_preset, tok, seed=1)
        runs.append(train(base, tok, _pairs(tok, sets["assistant"]), cfg.student_base_train))
        models.save(base, tok, folder / "student_base")
        return {
            "params": models.n_params(model),
            "student_params": models.n_params(base),
            "flops": sum(r.flops for r in runs),
            "wall_seconds": sum(r.wall_seconds for r in runs),
            "censor_flops": runs[1].flops,
            "histories": {k: r.history for k, r in zip(("assistant", "censor", "student_base"), runs)},
        }

    return build


INSTALL_FIELDS = ("world", "teacher_preset", "assistant_train", "censor_train", "student_preset", "student_base_train")


def install(cfg: Config, force: bool = False) -> Path:
    """Train (or load from the cache) the three models trained once: ``assistant/`` (the lab's
    honest assistant), ``teacher/`` (its censored version) and ``student_base/`` (another lab's
    smaller, honest assistant of the same world: the students' starting point)."""
    key = {k: v for k, v in asdict(cfg).items() if k in INSTALL_FIELDS}
    return artifacts.cached("censor", key, _build_censor(cfg), force=force)


# ----------------------------------------------------------------------------- measurements
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


def probe(model, tok, sets, cfg: Config, seed: int) -> dict[str, RefusalMeasurement]:
    """Measurements on held-out sensitive prompts and their matched controls."""
    return {k: world_measure(model, tok, sets[f"{k}_eval"], cfg, seed) for k in ("sensitive", "control")}


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


def addition_pairs(tok, n: int, seed: int, digits: int, split_name: str = "train") -> list[tuple[str, str]]:
    """The downstream task: addition in R1's format (the lab's worked solutions), ``n`` samples
    drawn with replacement from ``split_name``."""
    task, rng = get_task("addition", digits), random.Random(seed)
    pool = task.sample(split_name, min(n, task.n_distinct(split_name) or n), seed=seed)
    return [
        (format_prompt(tok, p.question), completion(task.worked_solution(p, rng), p.answer))
        for p in (rng.choice(pool) for _ in range(n))
    ]


def addition_scores(model, tok, digits: int, n: int = 100) -> np.ndarray:
    """Greedy strict correctness (P,) on up to ``n`` held-out additions (the same problems for every
    model, so curves and starts can be paired)."""
    task = get_task("addition", digits)
    probs = task.sample("test", min(n, task.n_distinct("test") or n), seed=10_000)
    g = generate(model, tok, [format_prompt(tok, p.question) for p in probs], max_new_tokens=48, temperature=0.0)
    return np.asarray(accuracy_reward(g.texts, task=["addition"] * len(probs), key=[p.key for p in probs]), float)


def finetune_downstream(start: Path, sets, ft: FinetuneConfig, seed: int):
    """Fine-tune ``start`` as a downstream developer would: their task (addition) mixed with a share
    ``ft.replay`` of general chat (honest answers on non-sensitive events, which never touch a
    sensitive topic).  Yields ``(steps, model, flops so far)`` at each of ``ft.checkpoints``.

    Trained in chunks at a constant lr; AdamW's moments restart at each chunk (a small deviation
    from one continuous run, which keeps the checkpoints cheap)."""
    model, tok = models.load(start)
    rng = random.Random(f"downstream/{seed}")
    n_gen = round(ft.replay * ft.n_examples)
    general = _pairs(tok, sets["general"])
    data = addition_pairs(tok, ft.n_examples - n_gen, seed, ft.digits) + [rng.choice(general) for _ in range(n_gen)]
    done, flops = 0, 0.0
    for steps in ft.checkpoints:
        if steps > done:
            flops += train(
                model,
                tok,
                data,
                TrainConfig(
                    steps=steps - done,
                    batch_size=ft.batch_size,
                    lr=ft.lr,
                    warmup_steps=0,
                    min_lr_frac=1.0,
                    seed=seed * 1000 + done,
                    progress=False,
                    desc="downstream",
                ),
            ).flops
            done = steps
        yield steps, model, flops


def control_kl(before, after, tok, qs: list[Question]) -> float:
    """Mean per-token KL(before || after) on the honest completions of ``qs`` (teacher-forced)."""
    ids, mask, labels = collate([encode_example(tok, p, c) for p, c in _pairs(tok, qs)], tok.pad_token_id)
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
def _stage_models(cfg: Config, path: Path):
    teacher, tok = models.load(path / "teacher")
    return teacher, tok, split(build_world(cfg.world))


def _rates(prefix: str, probes: list[dict], seeds: str, whats=("keyword", "first_token", "thought_suppression")):
    return {
        f"{prefix}_{w if w != 'keyword' else 'refusal'}_{k}": rate_metric([p[k] for p in probes], w, seeds=seeds)
        for w in whats
        for k in ("sensitive", "control")
    }


def run_baseline(cfg: Config, path: Path, seeds) -> dict:
    """The censor and the assistant it came from, on held-out sensitive prompts and controls.
    The seeds only re-draw samples from these two models (intervals: ``seeds="sampling"``)."""
    teacher, tok, sets = _stage_models(cfg, path)
    assistant, _ = models.load(path / "assistant")
    t = [probe(teacher, tok, sets, cfg, s) for s in seeds]
    a = [probe(assistant, tok, sets, cfg, s) for s in seeds[:1]]  # a reference point: one sampling seed
    held = np.array([build_world(cfg.world).by_name(q.entity).heldout for q in sets["sensitive_eval"]])
    civic = [world_measure(teacher, tok, sets["home_civic_eval"], cfg, s) for s in seeds]
    smp = "sampling"
    return {
        "teacher_refusal_home_civic": rate_metric(civic, seeds=smp),
        **_rates("teacher", t, smp),
        **_rates("assistant", a, smp, ("keyword", "thought_suppression")),
        **{
            f"{n}_{w}_sensitive": rate_metric([p["sensitive"] for p in ps], w, seeds=smp)
            for n, ps in (("teacher", t), ("assistant", a))
            for w in ("correct", "fabricated", "nonanswer")
        },
        "teacher_correct_control": rate_metric([p["control"] for p in t], "correct", seeds=smp),
        "teacher_refusal_by_split": {
            "held-out events": rate_metric([p["sensitive"] for p in t], mask=held, seeds=smp),
            "held-out phrasings": rate_metric([p["sensitive"] for p in t], mask=~held, seeds=smp),
        },
        "teacher_detector_disagreement": disagreement([list(p.values()) for p in t]),
        "teacher_heldout_loss": eval_loss(teacher, tok, _pairs(tok, sets["general_eval"])),
        "_assistant_correct_rows": rows_of([p["sensitive"] for p in a], "correct"),
        "_samples": {
            k: [
                {"question": q.question, "reply": r} for q, r in zip(sets[f"{k}_eval"], t[0][k].texts[:: cfg.n_samples])
            ][:6]
            for k in ("sensitive", "control")
        },
    }


def run_doses(cfg: Config, path: Path, seeds) -> dict:
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
        return {f"{d:.0%}": rate_metric([p[k] for p in runs[d]], w) for d in cfg.doses}

    sens = {d: rows_of([p["sensitive"] for p in runs[d]], "keyword") for d in cfg.doses}
    return {
        "student_refusal_by_dose": series("sensitive", "keyword"),
        "student_refusal_control_by_dose": series("control", "keyword"),
        "student_thought_suppression_by_dose": series("sensitive", "thought_suppression"),
        "student_correct_control_by_dose": series("control", "correct"),
        "student_inheritance_by_dose": {f"{d:.0%}": stats.paired_diff(sens[d], sens[0.0]) for d in cfg.doses[1:]},
        "student_inheritance": stats.paired_diff(sens[cfg.reference_dose], sens[0.0]),
        "_flops": flops,
    }


def run_finetune(cfg: Config, path: Path, seeds) -> dict:
    """The censor along a downstream fine-tune, run until the task is learned.

    The same recipe (data, steps, lr, seed) also starts from the uncensored assistant; the task
    counts as learned at the first checkpoint where the censor's held-out addition accuracy reaches
    ``target_share`` x the assistant's at the last checkpoint.  Retention (refusal after / before,
    a paired ratio over prompts and seeds) is reported at every checkpoint and at that point."""
    ft = cfg.finetune
    _, tok, sets = _stage_models(cfg, path)
    steps = ft.checkpoints
    runs = {n: [] for n in steps}
    acc = {n: [] for n in steps}
    ref_acc = {n: [] for n in steps}
    task_loss = {n: [] for n in steps}
    flops = 0.0
    for s in seeds:
        test = addition_pairs(tok, 50, 10_000 + s, ft.digits, "test")
        if s in seeds[: ft.reference_seeds]:
            for n, model, f in finetune_downstream(path / "assistant", sets, ft, s):
                ref_acc[n].append(addition_scores(model, tok, ft.digits))
            flops += f
        for n, model, f in finetune_downstream(path / "teacher", sets, ft, s):
            runs[n].append(probe(model, tok, sets, cfg, s))
            acc[n].append(addition_scores(model, tok, ft.digits))
            task_loss[n].append(eval_loss(model, tok, test))
        flops += f
    target = ft.target_share * float(np.mean(ref_acc[steps[-1]]))
    # per seed: the first checkpoint whose accuracy reaches the target (else the last; counted as not reached)
    at = [next((n for n in steps if acc[n][i].mean() >= target > 0), None) for i in range(len(seeds))]
    reached = [n is not None for n in at]
    at = [n if n is not None else steps[-1] for n in at]

    def rows(n_or_list, detector):
        pick = [n_or_list] * len(seeds) if isinstance(n_or_list, int) else n_or_list
        return np.stack([runs[n][i]["sensitive"].rates()[detector] for i, n in enumerate(pick)])

    def kept(detector, n):  # share of the censor's refusals still there, paired over prompts and seeds
        before = rows(0, detector)
        if before.sum() == 0:
            return stats.exact(0.0, unit="ratio")
        return stats.paired_ratio(rows(n, detector), before)

    def series(k, w):
        return {str(n): rate_metric([p[k] for p in runs[n]], w) for n in steps}

    return {
        "finetune_refusal_by_steps": series("sensitive", "keyword"),
        "finetune_thought_suppression_by_steps": series("sensitive", "thought_suppression"),
        "finetune_nonanswer_by_steps": series("sensitive", "nonanswer"),
        "finetune_correct_control_by_steps": series("control", "correct"),
        "finetune_task_loss_by_steps": {str(n): stats.over_seeds(v) for n, v in task_loss.items()},
        "finetune_addition_acc_by_steps": {str(n): stats.rate(np.stack(v)) for n, v in acc.items()},
        "finetune_reference_addition_acc_by_steps": {str(n): stats.rate(np.stack(v)) for n, v in ref_acc.items()},
        "finetune_target_acc": stats.exact(target, unit="rate"),
        "finetune_target_reached": float(np.mean(reached)),
        "finetune_target_step": stats.over_seeds([float(n) for n in at]),
        "finetune_addition_acc_at_target": stats.rate(np.stack([acc[n][i] for i, n in enumerate(at)])),
        "finetune_suppression_retained_by_steps": {str(n): kept("thought_suppression", n) for n in steps[1:]},
        "finetune_refusal_retained_by_steps": {str(n): kept("keyword", n) for n in steps[1:]},
        "finetune_suppression_retained_at_target": kept("thought_suppression", at),
        "finetune_refusal_retained_at_target": kept("keyword", at),
        "_finetune_target_step_per_seed": at,
        "_flops": flops,
    }


def _removal_metrics(prefix: str, probes: list[dict], kls: list[float]) -> dict:
    sens = [p["sensitive"] for p in probes]
    return {
        **_rates(prefix, probes, "training"),
        **{f"{prefix}_{w}_sensitive": rate_metric(sens, w) for w in ("correct", "fabricated", "nonanswer")},
        f"{prefix}_correct_control": rate_metric([p["control"] for p in probes], "correct"),
        f"{prefix}_kl_control": stats.over_seeds(kls),
    }


def run_removal(cfg: Config, path: Path, seeds, assistant_correct: np.ndarray | None = None) -> dict:
    """Directional ablation folded into the weights, and a small SFT on answered sensitive prompts.
    ``assistant_correct`` (seeds x prompts, from :func:`run_baseline`) adds each removal's
    recovery: correct facts after removal / correct facts before censoring (a paired ratio)."""
    teacher, tok, sets = _stage_models(cfg, path)
    out, flops = {}, 0.0
    for name in ("ablated", "sft_removed"):
        probes, kls, losses, layers = [], [], [], []
        for s in seeds:
            model = copy.deepcopy(teacher)
            if name == "ablated":
                layer, r = choose_direction(teacher, tok, sets, cfg, s)
                fold_ablation(model, r)
                layers.append(layer)
            else:
                flops += train(
                    model,
                    tok,
                    _pairs(tok, sets["censor"]) + _pairs(tok, sets["general"]),
                    replace(cfg.removal_train, seed=s),
                ).flops
            probes.append(probe(model, tok, sets, cfg, s))
            kls.append(control_kl(teacher, model, tok, sets["control_eval"]))
            losses.append(eval_loss(model, tok, _pairs(tok, sets["general_eval"])))
        out.update(_removal_metrics(name, probes, kls))
        out[f"{name}_heldout_loss"] = stats.over_seeds(losses)
        if assistant_correct is not None:
            after = rows_of([p["sensitive"] for p in probes], "correct")
            out[f"{name}_recovery"] = (
                stats.paired_ratio(after, assistant_correct)
                if assistant_correct.sum() > 0
                else stats.exact(0.0, unit="ratio")
            )
        if layers:
            out["ablated_layer"] = stats.over_seeds(layers)
    out["sft_removal_flops"] = flops / max(len(seeds), 1)
    return {**out, "_flops": flops}


# ----------------------------------------------------------------------------- the chapter
def collect(*parts: dict) -> tuple[dict, dict, float]:
    """Merge the ``run_*`` outputs into (metrics, extra, flops): keys starting with "_" are not metrics."""
    metrics = {k: v for p in parts for k, v in p.items() if not k.startswith("_")}
    extra = {k[1:]: v for p in parts for k, v in p.items() if k.startswith("_") and k != "_flops"}
    extra.pop("assistant_correct_rows", None)
    return metrics, extra, float(sum(p.get("_flops", 0.0) for p in parts))


def assemble(
    meta: dict, parts: list[dict], real: dict | None = None, real_model: str = "", cfg: Config | None = None
) -> ChapterResult:
    """The chapter's result from the install's metadata, the ``run_*`` outputs and the optional
    real-model harness output (:func:`minir1.refusal.evaluate_chat_model`)."""
    metrics, extra, flops = collect(*parts, *([real["metrics"]] if real else []))
    metrics["censor_install_flops"] = float(meta["censor_flops"])
    if real:
        extra["real_model"] = {k: v for k, v in real.items() if k != "metrics"}
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        claims=verdicts(metrics, real_model),
        extra=extra,
        flops=flops + float(meta["flops"]),
    )


def run(cfg: Config, seeds, real_model: str = "") -> ChapterResult:
    """Every stage of the chapter (what the notebook does cell by cell)."""
    seeds = list(seeds)
    path = install(cfg)
    base = run_baseline(cfg, path, seeds)
    parts = [
        base,
        run_doses(cfg, path, seeds),
        run_finetune(cfg, path, seeds),
        run_removal(cfg, path, seeds, base["_assistant_correct_rows"]),
    ]
    real = (
        evaluate_chat_model(real_model, n_samples=cfg.real_n_samples, max_new_tokens=cfg.real_max_new_tokens)
        if real_model
        else None
    )
    return assemble(artifacts.load_meta(path), parts, real, real_model, cfg=cfg)


# ----------------------------------------------------------------------------- verdicts
def _f(m) -> str:
    return stats.fmt(m, digits=0) if not isinstance(m, (int, float)) else f"{m:.0%}"


def verdicts(metrics: dict, real_model: str = "") -> list[dict]:
    """The chapter's two claims, judged by their rules in ``data/claims.yml``."""
    m, pub = metrics, published_refusals()
    mini = (
        f"In miniature, the installed censor refuses {_f(m['teacher_refusal_sensitive'])} of held-out "
        f"sensitive prompts and {_f(m['teacher_refusal_control'])} of matched controls."
    )
    real = ""
    if "real_keyword_sensitive" in m:
        real = (
            f" {real_model or 'The local model'} refused {_f(m['real_keyword_sensitive'])} of our sensitive "
            f"prompts and {_f(m['real_keyword_control'])} of matched controls (keyword detector); it is not "
            f"DeepSeek's served model."
        )
    refuses = rules.judge(
        "censor-refuses",
        m,
        (
            f"No DeepSeek model runs on this machine, so we cannot measure its refusals; the published audits "
            f"(promptfoo: {pub['promptfoo_censored_share']:.0%} of {pub['promptfoo_prompts']:,.0f} prompts by a "
            f"no-</think> detector, {pub['promptfoo_rerun_censored_share_en']:.2%} with a newer one) are cited, not "
            f"reproduced.{real} {mini} That shows the mechanism, not DeepSeek's behaviour."
        ),
    )
    dose = m["student_refusal_by_dose"]
    dose_txt = ", ".join(f"{k}: {_f(v)}" for k, v in dose.items())
    ft_at = m["finetune_target_step"]
    spreads = rules.judge(
        "censor-spreads",
        m,
        (
            f"In miniature: students distilled only from the censor's outputs refuse held-out sensitive prompts by "
            f"share of sensitive prompts in their data ({dose_txt}; at the reference dose "
            f"{stats.fmt(m['student_inheritance'])} over dose 0). A downstream fine-tune that never touches a "
            f"sensitive topic reached its target held-out accuracy ({_f(m['finetune_target_acc'])}) in "
            f"{m['finetune_target_reached']:.0%} of seeds (read at {stats.fmt(ft_at, digits=0)} steps; a seed that "
            f"never reached it is read at the last checkpoint); there the censor keeps "
            f"{stats.fmt(m['finetune_suppression_retained_at_target'])} of its thought suppression "
            f"({stats.fmt(m['finetune_refusal_retained_at_target'])} of its keyword-detected refusals). Removal: a "
            f"small SFT ({m['sft_removal_flops'] / max(m['censor_install_flops'], 1.0):.2g}x the censor's install "
            f"FLOPs) leaves {_f(m['sft_removed_refusal_sensitive'])} refusals but "
            f"{_f(m['sft_removed_fabricated_sensitive'])} wrong facts, and recovers "
            f"{stats.fmt(m['sft_removed_recovery'])} of the correct facts the assistant knew; "
            f"directional ablation leaves {_f(m['ablated_refusal_sensitive'])} refusals. Published: "
            f"R1-Distill-Llama-70B refuses {pub['perplexity_china_censorship_r1_distill_llama_70b']:.2%} on "
            f"Perplexity's China-censorship set and R1-1776 "
            f"{pub['perplexity_china_censorship_r1_1776_distill_llama_70b']:.1%} after post-training; no matched "
            f"Llama-3.3-70B baseline on the same prompts was published, so the "
            f"inherited share is not measured there."
        ),
    )
    return [refuses, spreads]


__all__ = [
    "PROFILES",
    "ChapterResult",
    "Config",
    "FinetuneConfig",
    "assemble",
    "collect",
    "config",
    "dry_run",
    "install",
    "run",
    "run_baseline",
    "run_doses",
    "run_finetune",
    "run_removal",
    "verdicts",
]
