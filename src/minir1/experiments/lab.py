"""The lab chapter: the pretrained "vanilla" base every experiment chapter starts from, and how it scores.

The base itself and the held-out evaluation every chapter shares are a recipe
(:mod:`minir1.experiments.recipes.base`); this chapter trains (or loads) it, scores it on every
task and sampling setting, measures its training cost against this machine's matmul peak, and
judges ``lab-room-for-rl``.

``config(profile)`` is the only place a profile name is resolved; everything else takes a cfg.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from .. import artifacts, cost, gpu_estimate, models, stats
from ..evaluation import eval_record, per_problem_scores, summarize
from ..profiles import check_profile
from ..results import ChapterResult
from ..rules import judge
from ..stats_hier import conservative
from ..utils import device
from .recipes import base as lab_base
from .recipes import gpu_stages
from .recipes.base import (
    PROFILES,
    LabConfig,
    capability,
    eval_set,
    mean_len,
    pretrained_path,
    samplings,
)

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ("cost",)  # reads the machine peak the cost chapter measured


def config(profile: str) -> LabConfig:
    """The lab configuration of ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: LabConfig) -> LabConfig:
    """``cfg``'s model shapes, trained two steps on a tiny corpus and scored on two problems (tests)."""
    return lab_base.dry_run(cfg)


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
                for suffix in ("", "_lenient"):
                    put(f"{prefix}_room{suffix}_{name}", task, _room(runs, kmax, suffix))
        if "greedy" in by:
            g = summarize(by["greedy"])
            put(f"{prefix}_greedy_acc", task, g["acc"])
            put(f"{prefix}_greedy_acc_lenient", task, g["acc_lenient"])
            put(f"{prefix}_greedy_format_rate", task, g["format"])
    return out


def _room(runs, kmax: int, suffix: str = "") -> stats.Metric:
    """pass@kmax − pass@1 on the same problems (``suffix`` "_lenient": answer-level), reported by the
    book's interval rule (:func:`minir1.stats_hier.conservative`: never narrower than the seed-level
    t interval over the sampling seeds)."""
    boot = stats.paired_diff(
        per_problem_scores(runs, f"pass@{kmax}{suffix}"), per_problem_scores(runs, f"pass@1{suffix}"), seeds="sampling"
    )
    return conservative(boot) if len(boot.per_seed) > 1 else boot


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


# The MFU denominator: the cost chapter's matmul benchmark of this machine (measured once, cached
# in .artifacts/machine_flops.json; the cost chapter runs first and records it).
PEAK_BENCHES = {
    "cpu": cost.MatmulBench(),
    "cuda": cost.MatmulBench(n=8192, dtype="bfloat16", device="cuda", repeats=10, inner=10),
}


def machine_peak() -> float:
    """This machine's matmul FLOP/s on the device in use (the cost chapter's benchmark; cached)."""
    return cost.machine_peak(PEAK_BENCHES["cuda" if device().startswith("cuda") else "cpu"])


def run(cfg: LabConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """The lab chapter: train (or load) the base, score it on every task and setting, judge the claim."""
    t0 = time.perf_counter()
    # 1. This machine's matmul peak, for the base's MFU.
    peak = machine_peak()
    # 2. The base (trained the first time) and its capability in every setting (cached evaluations).
    path = pretrained_path(cfg)
    model, tok = models.load(path, device=device())
    meta = artifacts.load_meta(path)
    cap = capability(cfg, seeds, model_dir=path, model=model, tokenizer=tok)
    # 3. Metrics and the verdict.
    metrics = lab_metrics(meta, cap, peak)
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        evals=capability_evals(cfg, path, cap, seeds),
        extra=lab_extra(meta, cap),
        flops=meta["flops"] + eval_flops(cap, meta["params"]),
        # One sample per problem (a dry run) leaves no pass@k - pass@1 for the rule to read: no verdict.
        claims=verdicts(metrics, cfg) if "base_room_r1" in metrics else [],
        wall_seconds=time.perf_counter() - t0,
    )


def estimate_gpu(cfg: LabConfig, n_seeds: int = 3) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate`: pretraining the base, then scoring it."""
    stages = [
        gpu_stages.pretrain("pretrain base", cfg.preset, cfg.train),
        gpu_stages.capability("capability", cfg, n_seeds),
    ]
    return gpu_estimate.estimate("lab", stages)


# ----------------------------------------------------------------------------- verdict
def verdicts(metrics: dict, cfg: LabConfig | None = None) -> list[dict]:
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
        "Held-out strict (R1-format) accuracy of the base at R1's sampling (T = 0.6, top-p 0.95), "
        "intervals by the book's rule (the hull of the paired bootstrap and the seed-level t interval) — "
        + "; ".join(parts)
        + "."
    )
    return [judge("lab-room-for-rl", metrics, evidence)]


__all__ = [
    "AFTER",
    "LabConfig",
    "PROFILES",
    "config",
    "dry_run",
    "capability_metrics",
    "capability_evals",
    "estimate_gpu",
    "lab_metrics",
    "mfu_comparable",
    "machine_peak",
    "run",
    "verdicts",
]
