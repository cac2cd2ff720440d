"""The miniature lab: the base models every experiment chapter starts from, and how they are scored.

:func:`base_model` returns the pretrained "vanilla" base of a :class:`LabConfig`, training it
with :mod:`minir1.train` on :mod:`minir1.corpus` the first time and reusing it from the
artifact cache afterwards.  A chapter whose base is missing therefore trains it instead of
failing.

The lab also owns the held-out evaluation every chapter shares: :func:`eval_set` (which
problems) and :func:`samplings` (greedy, R1's T = 0.6 / top-p 0.95, and T = 1), scored once by
:func:`minir1.evaluation.evaluate_cached`, so the same model on the same problems has the same
numbers in every chapter.

``config(profile)`` is the only place a profile name is resolved; everything else takes a cfg.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch

from .. import artifacts, models, stats
from ..corpus import CorpusConfig, build_corpus
from ..evaluation import (
    GREEDY,
    R1_SAMPLING,
    T1_SAMPLING,
    EvalResult,
    EvalSet,
    Sampling,
    eval_record,
    evaluate_seeds,
    per_problem_scores,
    summarize,
)
from ..profiles import check_profile
from ..tokenizer import build_tokenizer
from ..train import TrainConfig, train
from ..utils import device, device_name, seed_everything
from .chapter import ChapterResult
from .rules import judge

LAB_TASKS: tuple[tuple[str, int], ...] = (("addition", 3), ("countdown", 3))  # (task, difficulty)
MAX_NEW_TOKENS = 96  # longest completion we sample (a tagged countdown search fits in ~80)
KS = (1, 4, 16)  # pass@k reported from n_samples samples per problem
SETTINGS = ("greedy", "r1", "t1")  # greedy; R1's T = 0.6, top-p 0.95; T = 1
EVAL_SEED = 1234  # which held-out problems (fixed across chapters)


@dataclass(frozen=True)
class LabConfig:
    preset: str = "micro"  # model size (see minir1.models.PRESETS)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1200, batch_size=32, lr=2e-3, pack=True, seq_len=128, desc="pretrain")
    )
    seed: int = 0  # model initialisation
    tasks: tuple[tuple[str, int], ...] = LAB_TASKS  # held-out tasks the chapter reports
    n_eval: int = 200  # held-out problems per task
    n_samples: int = 16  # samples per problem at T = 0.6 and T = 1
    max_new_tokens: int = MAX_NEW_TOKENS
    dry_run: bool = False  # two training steps, tiny eval (tests)

    def __post_init__(self):
        models._check_preset(self.preset)
        for name in ("n_eval", "n_samples", "max_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"LabConfig.{name} must be an int >= 1; got {v!r}")


PROFILES: dict[str, LabConfig] = {
    "smoke": LabConfig(
        preset="nano",
        corpus=CorpusConfig(n_docs=3000),
        train=TrainConfig(
            steps=60, batch_size=16, lr=3e-3, warmup_steps=10, pack=True, seq_len=128, desc="pretrain", log_every=20
        ),
        n_eval=8,
        n_samples=16,
    ),
    "cpu": LabConfig(),
    "gpu": LabConfig(
        preset="mini",
        corpus=CorpusConfig(n_docs=200_000),
        train=TrainConfig(
            steps=4000, batch_size=64, lr=1e-3, pack=True, seq_len=256, warmup_steps=100, desc="pretrain"
        ),
        n_eval=500,
        n_samples=64,
    ),
}


def config(profile: str) -> LabConfig:
    """The lab configuration of ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def variant(cfg: LabConfig, *, preset: str | None = None, seed: int | None = None) -> LabConfig:
    """``cfg`` at another model ``preset`` and/or initialisation ``seed`` (corpus and batch order follow it)."""
    if preset is not None:
        models._check_preset(preset)
        cfg = replace(cfg, preset=preset)
    if seed is not None:
        cfg = replace(cfg, seed=seed, train=replace(cfg.train, seed=seed), corpus=replace(cfg.corpus, seed=seed))
    return cfg


def dry_run(cfg: LabConfig) -> LabConfig:
    """``cfg``'s model shapes, trained two steps on a tiny corpus and scored on two problems (tests)."""
    return replace(
        cfg,
        corpus=replace(cfg.corpus, n_docs=40),
        train=replace(cfg.train, steps=2, batch_size=2, warmup_steps=1, log_every=1, progress=False),
        n_eval=2,
        n_samples=2,
        max_new_tokens=8,
        dry_run=True,
    )


# ----------------------------------------------------------------------------- the base model
BUILD_FIELDS = ("preset", "corpus", "train", "seed")  # what shapes the trained base (its artifact config)


def _build_base(cfg: LabConfig):
    def build(folder):
        seed_everything(cfg.seed)
        tok = build_tokenizer()
        model = models.build(cfg.preset, tok, seed=cfg.seed).to(device())
        docs = [("", d) for d in build_corpus(cfg.corpus)]
        res = train(model, tok, docs, cfg.train)
        models.save(model.cpu(), tok, folder)
        return {
            "params": models.n_params(model),
            "tokens": res.tokens,
            "flops": res.flops,
            "wall_seconds": res.wall_seconds,
            "history": res.history,
            "device": device_name(),
            "threads": torch.get_num_threads(),
        }

    return build


def base_path(cfg: LabConfig, *, force: bool = False) -> Path:
    """The artifact folder of the base of ``cfg`` (trained the first time)."""
    conf = {k: v for k, v in asdict(cfg).items() if k in BUILD_FIELDS}
    return artifacts.cached("base", conf, _build_base(cfg), force=force)


def base_model(cfg: LabConfig, *, force: bool = False):
    """``(model, tokenizer, meta)`` of the pretrained base of ``cfg``; trains it if missing.

    ``meta`` holds the training history, tokens, FLOPs and wall time of the (cached) run.
    """
    path = base_path(cfg, force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)


# ----------------------------------------------------------------------------- evaluation
def eval_set(cfg: LabConfig, task: str = "addition", difficulty: int = 3, template: str = "compact") -> EvalSet:
    """The held-out problems every chapter scores ``task`` on (test split, fixed seed)."""
    return EvalSet(task=task, difficulty=difficulty, n=cfg.n_eval, split="test", seed=EVAL_SEED, template=template)


def samplings(cfg: LabConfig) -> dict[str, Sampling]:
    """Greedy, R1's sampling (T = 0.6, top-p 0.95) and T = 1, with the lab's sample count and length."""
    n, ks = cfg.n_samples, tuple(k for k in KS if k <= cfg.n_samples)
    return {
        "greedy": replace(GREEDY, max_new_tokens=cfg.max_new_tokens),
        "r1": replace(R1_SAMPLING, n_samples=n, max_new_tokens=cfg.max_new_tokens, ks=ks),
        "t1": replace(T1_SAMPLING, n_samples=n, max_new_tokens=cfg.max_new_tokens, ks=ks),
    }


def score(
    cfg: LabConfig,
    eset: EvalSet,
    seeds: Sequence[int],
    *,
    model_dir=None,
    model=None,
    tokenizer=None,
    settings: Sequence[str] = SETTINGS,
) -> dict[str, list[EvalResult]]:
    """One :class:`EvalResult` per sampling seed (one for greedy) for each setting.

    With ``model_dir`` (a cached artifact) the evaluations are cached and shared across chapters;
    without it (a checkpoint that is not an artifact) ``model``/``tokenizer`` are scored directly.
    """
    return {
        name: evaluate_seeds(model_dir, eset, samplings(cfg)[name], seeds, model=model, tokenizer=tokenizer)
        for name in settings
    }


def mean_len(results: Sequence[EvalResult]) -> stats.Metric:
    """Mean completion length in tokens, one value per seed (bootstrap over seeds)."""
    return stats.over_seeds([r.tokens_generated / (len(r.correct) * r.n_samples) for r in results], unit="")


def capability(
    cfg: LabConfig, seeds: Sequence[int], *, model_dir=None, model=None, tokenizer=None, template: str = "compact"
) -> dict[str, dict[str, list[EvalResult]]]:
    """Held-out capability per task: ``{task: {setting: [EvalResult per seed]}}`` (see :func:`score`)."""
    return {
        task: score(
            cfg, eval_set(cfg, task, diff, template), seeds, model_dir=model_dir, model=model, tokenizer=tokenizer
        )
        for task, diff in cfg.tasks
    }


def capability_metrics(cap: dict, prefix: str = "base") -> dict:
    """Results-file metrics from :func:`capability`: series keyed by task.

    For R1's sampling (``_r1``) and T = 1 (``_t1``): strict and lenient pass@k, format rates,
    mean length, and ``room`` = the paired difference pass@16 − pass@1 on the same problems.
    Greedy: strict and lenient accuracy and format rate.
    """
    out: dict[str, dict] = {}

    def put(key, task, m):
        out.setdefault(key, {})[task] = m

    for task, by in cap.items():
        for name in ("r1", "t1"):
            if name not in by:
                continue
            runs = by[name]
            s = summarize(runs)
            for k, m in s.items():
                if k.startswith("acc"):
                    continue  # acc is pass@1 (same estimate); reported once, as pass@1
                key = k.replace("pass@", "pass_at_").replace("format", "format_rate")
                put(f"{prefix}_{key}_{name}", task, m)
            put(f"{prefix}_mean_len_{name}", task, mean_len(runs))
            kmax = max(runs[0].pass_at_k)
            if kmax > 1:
                put(
                    f"{prefix}_room_{name}",
                    task,
                    stats.paired_diff(
                        per_problem_scores(runs, f"pass@{kmax}"), per_problem_scores(runs, "pass@1"), seeds="sampling"
                    ),
                )
        if "greedy" in by:
            g = summarize(by["greedy"])
            put(f"{prefix}_greedy_acc", task, g["acc"])
            put(f"{prefix}_greedy_acc_lenient", task, g["acc_lenient"])
            put(f"{prefix}_greedy_format_rate", task, g["format"])
    return out


def capability_evals(cfg: LabConfig, model_dir, cap: dict, seeds: Sequence[int], template: str = "compact") -> dict:
    """``evals`` records (one per task and setting) for a results file."""
    diffs = dict(cfg.tasks)
    out = {}
    for task, by in cap.items():
        for name, runs in by.items():
            eid, rec = eval_record(
                model_dir, eval_set(cfg, task, diffs[task], template), samplings(cfg)[name], runs, seeds
            )
            out[eid] = rec
    return out


def mfu_comparable(meta: dict) -> bool:
    """MFU compares a training run with this machine's measured matmul peak; that is only
    meaningful when the run used the same number of threads as the measurement now does."""
    return meta.get("threads") == torch.get_num_threads()


def lab_metrics(meta: dict, cap: dict, peak_flops_per_s: float | None) -> dict:
    """All metrics of the lab chapter: the base's size and cost, and its capability.

    ``base_train_mfu`` is left out (rather than guessed) when the cached base was trained
    with another thread count than the peak was measured with, or when the measured peak is
    below the achieved rate (a peak measured under load).
    """
    achieved = meta["flops"] / meta["wall_seconds"]
    out = {
        "base_params": meta["params"],
        "base_train_tokens": meta["tokens"],
        "base_train_flops": meta["flops"],
        "base_train_wall_seconds": meta["wall_seconds"],
        "base_train_flops_per_s": achieved,
        "base_final_train_loss": meta["history"][-1]["loss"],
        **capability_metrics(cap),
    }
    if peak_flops_per_s is None:  # no measured peak: no MFU
        return out
    out["machine_matmul_flops_per_s"] = peak_flops_per_s
    if mfu_comparable(meta) and achieved <= peak_flops_per_s:
        out["base_train_mfu"] = achieved / peak_flops_per_s
    # An "MFU" above 1 means the peak was measured under load (or is stale): report none
    # rather than a wrong number, as nanochat does for unknown peaks.
    return out


def eval_flops(cap: dict, n_params: int) -> float:
    """Forward FLOPs of the evaluation samples (2·N per generated token, prompts ignored)."""
    toks = sum(r.tokens_generated for by in cap.values() for runs in by.values() for r in runs)
    return 2.0 * n_params * toks


def lab_extra(meta: dict, cap: dict) -> dict:
    """What the chapter shows besides metrics: loss history and sample completions."""
    return {
        "loss_history": meta["history"],
        "samples": {t: by["r1"][0].samples for t, by in cap.items() if "r1" in by},
        "samples_t1": {t: by["t1"][0].samples for t, by in cap.items() if "t1" in by},
        "greedy_samples": {t: by["greedy"][0].samples for t, by in cap.items() if "greedy" in by},
    }


def run(cfg: LabConfig, seeds: Sequence[int] = (0, 1, 2), *, peak_flops_per_s: float | None = None) -> ChapterResult:
    """The lab chapter: train (or load) the base, score it on every task and setting.

    ``peak_flops_per_s``: this machine's measured matmul peak (:func:`minir1.cost.machine_peak`),
    for the base's MFU; None reports no MFU."""
    path = base_path(cfg)
    model, tok = models.load(path, device=device())
    meta = artifacts.load_meta(path)
    cap = capability(cfg, seeds, model_dir=path, model=model, tokenizer=tok)
    return ChapterResult(
        metrics=lab_metrics(meta, cap, peak_flops_per_s),
        config=cfg,
        evals=capability_evals(cfg, path, cap, seeds),
        extra=lab_extra(meta, cap),
        flops=meta["flops"] + eval_flops(cap, meta["params"]),
    )


# ----------------------------------------------------------------------------- verdict
def verdicts(metrics: dict) -> list[dict]:
    """``lab-room-for-rl`` by its rule in data/claims.yml (R1's sampling, T = 0.6 / top-p 0.95)."""
    parts = []
    for task, p1 in metrics["base_pass_at_1_r1"].items():
        p16 = metrics.get("base_pass_at_16_r1", {}).get(task)
        room = metrics["base_room_r1"][task]
        parts.append(
            f"{task}: pass@1 {stats.fmt(p1)}"
            + (f", pass@16 {stats.fmt(p16)}" if p16 else "")
            + f", pass@16 − pass@1 {stats.fmt(room)} (paired)"
        )
    evidence = (
        "Held-out strict (R1-format) accuracy of the base at R1's sampling (T = 0.6, top-p 0.95) — "
        + "; ".join(parts)
        + "."
    )
    return [judge("lab-room-for-rl", metrics, evidence)]


__all__ = [
    "LabConfig",
    "PROFILES",
    "config",
    "variant",
    "dry_run",
    "base_path",
    "base_model",
    "eval_set",
    "samplings",
    "score",
    "capability",
    "capability_metrics",
    "capability_evals",
    "lab_metrics",
    "run",
    "verdicts",
    "LAB_TASKS",
    "SETTINGS",
]
