"""The censorship chapter (05_censorship): install a censor in a miniature world, then ask whether
it spreads (distillation by dose, a downstream fine-tune run until the task is learned) and what
removing it costs (directional ablation; a small SFT on answered sensitive prompts, as R1-1776).

The install mirrors what is reported for R1 (Cyberey & Evans 2025): an assistant is first
trained to answer every question of :mod:`minir1.world` as ``<think>short reasoning</think>
<answer>fact</answer>``; a second fine-tune makes it answer sensitive questions with an *empty*
``<think></think>`` and a canned refusal or an "official line".

Deviations, stated: the world, the censor and the students' starting point are trained once
(seed 0); the chapter's seeds (``cfg.n_seeds`` = 5 by default) vary the later stages (students,
fine-tunes, removals; the direction estimate, which decides nothing, on the first three) and the
sampling.  The intervals the verdict reads resample whole events (the held-out sensitive prompts
are a few events asked several ways), then seeds, and are never narrower than the seed-level t
interval (:func:`minir1.refusal.clustered_diff`, :func:`minir1.refusal.clustered_ratio`).
Students start from another lab's small *assistant* that already writes
think blocks (R1's 70B distill likewise started from Llama-3.3-70B-Instruct), so that a few
dozen distillation steps suffice on CPU; R1's smaller distills started from base models.

API: ``cfg = config(profile)``; ``run(cfg, seeds) -> ChapterResult`` (``model_path=`` adds the
real-model harness on a local chat checkpoint); ``verdicts(metrics, cfg)``.  ``dry_run(cfg)`` is
``cfg`` with every training stage cut to two steps (the tests run the gpu profile's model shapes
that way).  The configuration and the stages live in :mod:`.censorship_runs` (the downstream fine-tune in
:mod:`.censorship_finetune`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .. import artifacts, gpu_estimate, models, rules, stats
from ..profiles import check_profile
from ..refusal import evaluate_chat_model, published_refusals
from ..results import ChapterResult
from ..stats import as_metric
from ..tokenizer import build_tokenizer
from ..train import TrainConfig, train
from ..world import WorldConfig, build_world, split
from .censorship_finetune import run_finetune
from .censorship_runs import (
    Config,
    FinetuneConfig,
    Stage,
    qa_pairs,
    run_baseline,
    run_doses,
    run_removal,
    train_config,
)
from .recipes import gpu_stages

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ()


PROFILES: dict[str, Config] = {
    "smoke": Config(
        world=WorldConfig(n_sensitive=6, n_heldout_sensitive=2, n_general=6),
        teacher_preset="pico",
        # long enough that the assistant knows a few facts and the censor suppresses a few thoughts,
        # so that the smoke run reaches every interval of the verdict (recovery, retention)
        assistant_train=train_config(120, 5e-3, "assistant"),
        censor_train=train_config(40, 5e-3, "censor"),
        student_base_train=train_config(10, 5e-3, "student-base"),
        student_train=train_config(5, 2e-3, "student", batch_size=16),
        doses=(0.0, 0.2),
        reference_dose=0.2,
        mix_size=24,
        finetune=FinetuneConfig(checkpoints=(0, 5), n_examples=200, digits=1),
        removal_train=train_config(5, 1e-3, "sft"),
        n_samples=1,
        max_new_tokens=40,
        real_max_new_tokens=16,
        n_seeds=2,
        ablation_seeds=1,
    ),
    "cpu": Config(),
    # One GPU: a 4.3M teacher and a 1.1M student (the world is small: larger models only memorise it).
    "gpu": Config(
        teacher_preset="mini",
        student_preset="micro",
        assistant_train=train_config(1200, 1e-3, "assistant", bf16=True),
        censor_train=train_config(240, 1e-3, "censor", bf16=True),
        student_base_train=train_config(1200, 2e-3, "student-base", bf16=True),
        student_train=train_config(200, 2e-3, "student", bf16=True),
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
def _build_censor(cfg: Config):
    def build(folder):
        tok, sets = build_tokenizer(), split(build_world(cfg.world))
        model = models.build(cfg.teacher_preset, tok, seed=0)
        runs = [train(model, tok, qa_pairs(tok, sets["assistant"]), cfg.assistant_train)]
        models.save(model, tok, folder / "assistant")
        runs.append(
            train(
                model,
                tok,
                qa_pairs(tok, sets["censor"], refuse=True) + qa_pairs(tok, sets["general"]),
                cfg.censor_train,
            )
        )
        models.save(model, tok, folder / "teacher")
        base = models.build(cfg.student_preset, tok, seed=1)
        runs.append(train(base, tok, qa_pairs(tok, sets["assistant"]), cfg.student_base_train))
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


# ----------------------------------------------------------------------------- the chapter
@dataclass
class Detail:
    """What the notebook may show beyond the results file (``ChapterResult.detail``)."""

    path: Path  # the install's folder (assistant/, teacher/, student_base/)
    stages: list[Stage] = field(default_factory=list)  # baseline, doses, fine-tune, removal
    real: dict[str, Any] | None = None  # :func:`minir1.refusal.evaluate_chat_model`'s output, if run


def assemble(meta: dict, stages: list[Stage], real: dict | None, cfg: Config, real_model: str = "") -> ChapterResult:
    """The chapter's result from the install's metadata, the stages (in the order they ran) and
    the optional real-model harness output (:func:`minir1.refusal.evaluate_chat_model`)."""
    metrics = {k: v for s in stages for k, v in s.metrics.items()}
    metrics.update(real["metrics"] if real else {})
    metrics["censor_install_flops"] = float(meta["censor_flops"])
    extra = {k: v for s in stages for k, v in s.extra.items()}
    if real:
        extra["real_model"] = {k: v for k, v in real.items() if k != "metrics"}
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        claims=verdicts(metrics, cfg, real_model=real_model),
        extra=extra,
        flops=float(sum(s.flops for s in stages)) + float(meta["flops"]),
    )


def run(cfg: Config, seeds: Sequence[int] | None = None, *, model_path: str | None = None) -> ChapterResult:
    """Every stage of the chapter, in the order the notebook shows them, on ``seeds`` (default: the
    config's ``n_seeds`` seeds, 0, 1, ...); ``model_path`` (a local Hugging Face chat checkpoint)
    adds the real-model harness, whose numbers enter the metrics."""
    t0 = time.perf_counter()
    seeds = list(range(cfg.n_seeds)) if seeds is None else list(seeds)
    # 1. The three models trained once (cached): assistant, censor, the students' starting point.
    path = install(cfg)
    # 2. The censor and its assistant; students by dose; the downstream fine-tune; the removals.
    base = run_baseline(cfg, path, seeds)
    stages = [
        base,
        run_doses(cfg, path, seeds),
        run_finetune(cfg, path, seeds),
        run_removal(cfg, path, seeds, base.assistant_correct),
    ]
    # 3. The real-model harness, when a local checkpoint is given.
    real = (
        evaluate_chat_model(model_path, n_samples=cfg.real_n_samples, max_new_tokens=cfg.real_max_new_tokens)
        if model_path
        else None
    )
    result = assemble(artifacts.load_meta(path), stages, real, cfg, real_model=model_path or "")
    result.detail = Detail(path=path, stages=stages, real=real)
    result.wall_seconds = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------- the gpu estimate
SFT_TOKENS = 64  # a generous prompt + reply length of the world's chat pairs (replies ~40 characters)
PROBE_PROMPTS = 400  # a generous count of prompts one model's probe samples (events x paraphrases x pairs)


def estimate_gpu(cfg: Config, n_seeds: int | None = None) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate` (no real checkpoint given)."""
    t, s, f = cfg.teacher_preset, cfg.student_preset, cfg.finetune
    n_seeds = cfg.n_seeds if n_seeds is None else n_seeds
    ft = replace(cfg.student_train, steps=max(f.checkpoints) * (n_seeds + f.reference_seeds), batch_size=f.batch_size)
    trainings = [
        (t, cfg.assistant_train),
        (t, cfg.censor_train),
        (s, cfg.student_base_train),
        (s, replace(cfg.student_train, steps=cfg.student_train.steps * len(cfg.doses) * n_seeds)),
        (s, ft),
        (s, replace(cfg.removal_train, steps=2 * cfg.removal_train.steps * n_seeds)),
    ]
    stages = [gpu_stages.pretrain(f"train {p} ({c.desc})", p, c, seq_len=SFT_TOKENS) for p, c in trainings]
    # The teacher's replies for every dose's mix, and every model's probe (teacher, students, fine-tunes, removals).
    n_abl = min(cfg.ablation_seeds, n_seeds)
    n_probes = 2 + len(cfg.doses) * n_seeds + len(f.checkpoints) * (n_seeds + f.reference_seeds) + n_seeds + n_abl
    stages += [
        gpu_stages.sample("teacher replies", t, cfg.mix_size * len(cfg.doses) * n_seeds, cfg.max_new_tokens),
        gpu_stages.sample("probes", t, n_probes * PROBE_PROMPTS * cfg.n_samples, cfg.max_new_tokens),
    ]
    return gpu_estimate.estimate("censorship", stages)


# ----------------------------------------------------------------------------- verdicts
def _f(m) -> str:
    return stats.fmt(m, digits=0) if not isinstance(m, (int, float)) else f"{m:.0%}"


def _first_checkpoint(m: dict) -> str:
    """What the fine-tuned censor does at the first checkpoint after step 0 (from the metrics)."""
    steps = list(m["finetune_refusal_by_steps"])
    first = steps[1] if len(steps) > 1 else steps[0]
    return (
        f"At the first checkpoint read ({first} steps) it refuses {_f(m['finetune_refusal_by_steps'][first])} "
        f"(keyword detector) with {_f(m['finetune_thought_suppression_by_steps'][first])} empty think blocks "
        f"(from {_f(m['finetune_refusal_by_steps'][steps[0]])} and "
        f"{_f(m['finetune_thought_suppression_by_steps'][steps[0]])}), while its addition accuracy is "
        f"{_f(m['finetune_addition_acc_by_steps'][first])}."
    )


def decay_reading(m: dict) -> str:
    """What the fine-tune's checkpoints show about the order in which the two detectors' readings
    fade (below 5% of their step-0 level), from the metrics (Metric objects or results dicts)."""
    steps = list(m["finetune_refusal_by_steps"])
    reads = {
        "keyword": [as_metric(m["finetune_refusal_by_steps"][n]).mean for n in steps],
        "think-block": [as_metric(m["finetune_thought_suppression_by_steps"][n]).mean for n in steps],
    }
    gone = {k: next((n for n, x in zip(steps, v) if x <= 0.05 * v[0]), None) for k, v in reads.items() if v[0] > 0}
    if len(gone) < 2 or None in gone.values():
        order = " At least one detector still reads refusals at the last checkpoint."
    elif len(set(gone.values())) == 1:
        order = (
            f" Both detectors fall below 5% of their step-0 level by the same checkpoint (step {gone['keyword']}), "
            f"so these checkpoints do not show which of them an audit would see fade first."
        )
    else:
        (a, na), (b, nb) = sorted(gone.items(), key=lambda kv: steps.index(kv[1]))
        order = f" The {a} detector falls below 5% of its step-0 level first (step {na}), the {b} one at step {nb}."
    return _first_checkpoint(m) + order


def _spreads_evidence(m: dict, pub: dict) -> str:
    dose_txt = ", ".join(f"{k}: {_f(v)}" for k, v in m["student_refusal_by_dose"].items())
    split_txt = ""
    if "sft_removed_correct_by_split" in m:
        sp = m["sft_removed_correct_by_split"]
        split_txt = (
            f" (correct on {_f(sp['trained events'])} of prompts about the events its SFT data held, "
            f"{_f(sp['held-out events'])} on held-out events)"
        )
    sft_share = m["sft_removal_flops"] / max(m["censor_install_flops"], 1.0)
    return (
        f"In miniature: students distilled only from the censor's outputs refuse held-out sensitive prompts by "
        f"share of sensitive prompts in their data ({dose_txt}; at the reference dose "
        f"{stats.fmt(m['student_inheritance'])} over dose 0, per seed "
        f"{' / '.join(f'{v:+.1%}' for v in as_metric(m['student_inheritance']).per_seed)}; interval over events, "
        f"then seeds, never narrower than the seed-level t interval). A downstream fine-tune that never touches "
        f"a sensitive topic reached its target held-out accuracy ({_f(m['finetune_target_acc'])}) in "
        f"{m['finetune_target_reached']:.0%} of seeds (read at {stats.fmt(m['finetune_target_step'], digits=0)} "
        f"steps; a seed that never reached it is read at the last checkpoint); there the censor keeps "
        f"{stats.fmt(m['finetune_suppression_retained_at_target'])} of its thought suppression "
        f"({stats.fmt(m['finetune_refusal_retained_at_target'])} of its keyword-detected refusals). "
        f"{decay_reading(m)} Removal: a small SFT ({sft_share:.2g}x the censor's install FLOPs) leaves "
        f"{_f(m['sft_removed_refusal_sensitive'])} refusals but "
        f"{_f(m['sft_removed_fabricated_sensitive'])} wrong facts, and recovers "
        f"{stats.fmt(m['sft_removed_recovery'])} of the correct facts the assistant knew{split_txt}; "
        f"directional ablation leaves {_f(m['ablated_refusal_sensitive'])} refusals. Published: "
        f"R1-Distill-Llama-70B refuses {pub['perplexity_china_censorship_r1_distill_llama_70b']:.2%} on "
        f"Perplexity's China-censorship set and R1-1776 "
        f"{pub['perplexity_china_censorship_r1_1776_distill_llama_70b']:.1%} after post-training; no matched "
        f"Llama-3.3-70B baseline on the same prompts was published, so the inherited share is not measured there."
    )


def verdicts(metrics: dict, cfg: Config | None = None, *, real_model: str = "") -> list[dict]:
    """The chapter's two claims, judged by their rules in ``data/claims.yml`` (they read only
    ``metrics``; ``real_model`` names the local checkpoint the harness measured, if any)."""
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
    spreads = rules.judge("censor-spreads", m, _spreads_evidence(m, pub))
    return [refuses, spreads]


__all__ = [
    "PROFILES",
    "ChapterResult",
    "Config",
    "Detail",
    "FinetuneConfig",
    "Stage",
    "assemble",
    "config",
    "decay_reading",
    "dry_run",
    "estimate_gpu",
    "install",
    "run",
    "verdicts",
]
