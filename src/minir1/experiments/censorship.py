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

API: ``cfg = config(profile)``; ``run(cfg, seeds) -> ChapterResult`` (``model_path=`` adds the
real-model harness on a local chat checkpoint); ``verdicts(metrics, cfg)``.  ``dry_run(cfg)`` is
``cfg`` with every training stage cut to two steps (the tests run the gpu profile's model shapes
that way).  The configuration and the stages live in :mod:`.censorship_runs`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .. import artifacts, gpu_estimate, models, stats
from ..profiles import check_profile
from ..refusal import evaluate_chat_model, published_refusals
from ..tokenizer import build_tokenizer
from ..train import TrainConfig, train
from ..world import WorldConfig, build_world, split
from .. import rules
from .censorship_runs import (
    Config,
    FinetuneConfig,
    Stage,
    qa_pairs,
    run_baseline,
    run_doses,
    run_finetune,
    run_removal,
    train_config,
)
from ..results import ChapterResult
from .recipes import gpu_stages

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ()


PROFILES: dict[str, Config] = {
    "smoke": Config(
        world=WorldConfig(n_sensitive=6, n_heldout_sensitive=2, n_general=6),
        teacher_preset="pico",
        assistant_train=train_config(40, 5e-3, "assistant"),
        censor_train=train_config(15, 2e-3, "censor"),
        student_base_train=train_config(10, 5e-3, "student-base"),
        student_train=train_config(5, 2e-3, "student", batch_size=16),
        doses=(0.0, 0.2),
        reference_dose=0.2,
        mix_size=40,
        finetune=FinetuneConfig(checkpoints=(0, 5, 10), n_examples=200, digits=1),
        removal_train=train_config(5, 1e-3, "sft"),
        n_samples=1,
        max_new_tokens=40,
        real_max_new_tokens=16,
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


def run(cfg: Config, seeds: Sequence[int] = (0, 1, 2), *, model_path: str | None = None) -> ChapterResult:
    """Every stage of the chapter, in the order the notebook shows them; ``model_path`` (a local
    Hugging Face chat checkpoint) adds the real-model harness, whose numbers enter the metrics."""
    t0 = time.perf_counter()
    seeds = list(seeds)
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


def estimate_gpu(cfg: Config, n_seeds: int = 3) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate` (no real checkpoint given)."""
    t, s, f = cfg.teacher_preset, cfg.student_preset, cfg.finetune
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
    n_probes = 2 + len(cfg.doses) * n_seeds + len(f.checkpoints) * (n_seeds + f.reference_seeds) + 2 * n_seeds
    stages += [
        gpu_stages.sample("teacher replies", t, cfg.mix_size * len(cfg.doses) * n_seeds, cfg.max_new_tokens),
        gpu_stages.sample("probes", t, n_probes * PROBE_PROMPTS * cfg.n_samples, cfg.max_new_tokens),
    ]
    return gpu_estimate.estimate("censorship", stages)


# ----------------------------------------------------------------------------- verdicts
def _f(m) -> str:
    return stats.fmt(m, digits=0) if not isinstance(m, (int, float)) else f"{m:.0%}"


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
    "Detail",
    "FinetuneConfig",
    "Stage",
    "assemble",
    "config",
    "dry_run",
    "estimate_gpu",
    "install",
    "run",
    "verdicts",
]
