"""The RL chapter: does GRPO turn a vanilla model into a reasoner, or surface what pretraining planted?

Two parts.  The *easy case* is R1-Zero's recipe (GRPO, rule-based accuracy + format rewards) on
the lab's base and the lab's 3-digit addition, three seeds, scored at greedy decoding and R1's
sampling (T = 0.6, top-p 0.95) on the lab's held-out problems (the base's numbers are the lab
chapter's, from the same cached evaluation).  The run itself is a shared recipe
(:mod:`minir1.experiments.recipes.lab_grpo`): it is also the distillation chapter's teacher.
Its task leaves no room to tell sharpening from learning (the base's lenient pass@64 is 100%).

The *hard task* (:mod:`minir1.experiments.rl_hard_task`, scored by
:mod:`minir1.experiments.rl_hard_task_scores`) carries the verdict: a base pretrained further in
the chapter with room at both ends, reward controls (true / random / format / incorrect),
``grpo`` vs ``dr_grpo``, a primed base, pass@k and baselines stopped at equal spent FLOPs (RFT on
the base's own verified samples, SFT on worked solutions).  The verdict is judged on answer-level
pass@1 (the answer right, tags or not) over 3 hard bases x 2 seeds per deciding arm, with the
book's interval rule (:func:`minir1.stats_hier.conservative`), and re-judged under the variants
``data/claims.yml`` declares (strict metric, greedy, T = 1, bootstrap alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from .. import artifacts, gpu_estimate, models, stats
from ..evaluation import EvalResult, eval_record, per_problem_scores, summarize
from ..profiles import check_profile
from ..results import ChapterResult
from ..rules import judge
from ..train import TrainConfig
from ..utils import device
from . import rl_hard_task, rl_hard_task_scores
from .recipes import base as lab_base
from .recipes import gpu_stages, lab_grpo
from .recipes.lab_grpo import LabGRPOConfig
from .rl_hard_task import HardTaskConfig
from .rl_hard_task_decide import BASELINE_ORDER

# The chapters whose results must be published before this one runs (read by the chapter runner).
AFTER: tuple[str, ...] = ("lab",)  # scores the lab base with the lab's cached evaluations


@dataclass(frozen=True)
class RLConfig:
    easy: LabGRPOConfig = field(default_factory=LabGRPOConfig)  # GRPO on the lab base (the shared recipe)
    hard: HardTaskConfig = field(default_factory=HardTaskConfig)  # the hard task (carries the verdict)
    dry_run: bool = False  # two GRPO steps, tiny evaluations (tests)


PROFILES: dict[str, RLConfig] = {
    name: RLConfig(easy=lab_grpo.PROFILES[name], hard=rl_hard_task.PROFILES[name]) for name in ("smoke", "cpu", "gpu")
}


def config(profile: str) -> RLConfig:
    """The RL configuration of ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: RLConfig) -> RLConfig:
    """``cfg``'s model shapes (base and GRPO lengths), two GRPO steps, tiny evaluations (tests)."""
    return RLConfig(easy=lab_grpo.dry_run(cfg.easy), hard=rl_hard_task.dry_run(cfg.hard), dry_run=True)


# ----------------------------------------------------------------------------- the chapter
CURVE_KEYS = (
    "step",
    "reward",
    "reward_accuracy_reward",
    "reward_format_reward",
    "acc_strict",
    "acc_lenient",
    "acc_format",  # the format reward component, logged whatever is optimised
    "len",
    "len_correct",
    "len_incorrect",
    "kl",
    "clip_frac",
    "frac_zero_std",
    "tok_per_s",
)
SCORES = ("pass@1", "pass@1_lenient", "format")  # per-problem scores compared between models


EASY_SETTINGS = ("greedy", "r1")  # the easy case at greedy decoding and R1's sampling (the hard task adds T = 1)


@dataclass
class EasyRuns:
    """What :func:`run_easy` trained and evaluated: the base's and each RL seed's evaluations by setting."""

    seeds: list[int]
    base_dir: Path  # the lab base's artifact folder
    base_meta: dict  # its artifact meta
    base: dict[str, list[EvalResult]] = field(default_factory=dict)  # setting -> evals, one per sampling seed
    rl: dict[str, list[EvalResult]] = field(default_factory=dict)  # setting -> evals, one per RL seed
    rl_dirs: list[Path] = field(default_factory=list)  # each RL seed's artifact folder
    runs: list[dict] = field(default_factory=list)  # each RL seed's artifact meta (history, curves, FLOPs)


def run_easy(cfg: LabGRPOConfig, seeds: Sequence[int] = (0, 1, 2)) -> EasyRuns:
    """The easy case: GRPO per seed on the lab base, scored at greedy decoding and R1's sampling."""
    seeds = list(seeds)
    eset = lab_grpo.eval_set(cfg)
    base_dir = lab_base.pretrained_path(cfg.base)
    out = EasyRuns(seeds=seeds, base_dir=base_dir, base_meta=artifacts.load_meta(base_dir))
    # The base on the lab's held-out set: the same cached evaluations the lab chapter reports.
    out.base = lab_base.score(cfg.base, eset, seeds, model_dir=base_dir, settings=EASY_SETTINGS)
    rl_runs = {name: [] for name in EASY_SETTINGS}
    for s in seeds:
        path = lab_grpo.grpo_path(cfg, s)
        out.rl_dirs.append(path)
        out.runs.append(artifacts.load_meta(path))
        model, tok = models.load(path, device=device())
        # RL seed s is one trained model, sampled once with seed s (paired with the base's seed-s samples).
        for name, runs in lab_base.score(
            cfg.base, eset, [s], model_dir=path, model=model, tokenizer=tok, settings=EASY_SETTINGS
        ).items():
            rl_runs[name].extend(runs)
    out.rl = rl_runs
    return out


def rl_metrics(out: EasyRuns) -> dict:
    """Results-file metrics of the easy case; every comparison a paired bootstrap."""
    m: dict = {}
    base, rl = out.base, out.rl
    for tag in EASY_SETTINGS:
        b, r = base[tag], rl[tag]
        bs = summarize(b)  # the lab chapter's numbers (one model, sampling seeds)
        m[f"base_pass_at_1_{tag}"] = bs["pass@1"] if "pass@1" in bs else bs["acc"]
        m[f"base_pass_at_1_lenient_{tag}"] = bs["pass@1_lenient"] if "pass@1_lenient" in bs else bs["acc_lenient"]
        m[f"base_format_rate_{tag}"] = bs["format"]
        m[f"base_mean_len_{tag}"] = lab_base.mean_len(b)
        # RL: one trained model per seed -> resample problems and seeds.
        for score, key in (("pass@1", "pass_at_1"), ("pass@1_lenient", "pass_at_1_lenient"), ("format", "format_rate")):
            m[f"rl_{key}_{tag}"] = stats.rate(per_problem_scores(r, score))
            m[f"rl_vs_base_{key}_{tag}"] = stats.paired_diff(per_problem_scores(r, score), per_problem_scores(b, score))
        m[f"rl_mean_len_{tag}"] = lab_base.mean_len(r)
    runs = out.runs
    m["rl_flops_per_run"] = stats.over_seeds([r["flops"] for r in runs])
    m["rl_wall_seconds_per_run"] = stats.over_seeds([r["wall_seconds"] for r in runs])
    m["base_params"] = out.base_meta["params"]
    return m


def rl_evals(cfg: LabGRPOConfig, out: EasyRuns) -> dict:
    """``evals`` records: the base (same records as the lab chapter) and each RL model."""
    eset, smp = lab_grpo.eval_set(cfg), lab_base.samplings(cfg.base)
    seeds = out.seeds
    recs = dict(eval_record(out.base_dir, eset, smp[name], out.base[name], seeds) for name in EASY_SETTINGS)
    for i, s in enumerate(seeds):
        for name in EASY_SETTINGS:
            eid, rec = eval_record(out.rl_dirs[i], eset, smp[name], [out.rl[name][i]], [s])
            recs[eid] = rec
    return recs


def rl_extra(out: EasyRuns) -> dict:
    """Curves and samples of the easy case (read back from the results file)."""
    return {
        "runs": [
            {"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"]}
            for r in out.runs
        ],
        "samples_base": out.base["r1"][0].samples,
        "samples_rl": out.rl["r1"][0].samples,
    }


def total_flops(out: EasyRuns) -> float:
    """FLOPs of the easy case: GRPO training and sampled evaluations (2·N per token)."""
    toks = sum(r.tokens_generated for by in (out.base, out.rl) for runs in by.values() for r in runs)
    return float(sum(r["flops"] for r in out.runs) + 2.0 * out.base_meta["params"] * toks)


def run(cfg: RLConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """The RL chapter: the easy case on the lab base, then the hard task's controls and baselines."""
    t0 = time.time()
    # 1. The easy case: GRPO on the lab base (the shared recipe), scored in the lab's settings.
    easy = run_easy(cfg.easy, seeds)
    t_easy = time.time() - t0
    # 2. The hard task: every condition and baseline trained (or loaded) and evaluated.
    hard = rl_hard_task_scores.run_experiment(cfg.hard, seeds)
    # 3. Metrics of both, in one namespace.
    metrics = rl_metrics(easy)
    hard_m = rl_hard_task_scores.controls_metrics(hard)
    clash = set(metrics) & set(hard_m)
    if clash:
        raise RuntimeError(f"easy-case and hard-task metrics share names: {sorted(clash)}")
    metrics.update(hard_m)
    metrics["wall_seconds_easy"] = t_easy
    metrics["wall_seconds_hard"] = time.time() - t0 - t_easy
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        evals={**rl_evals(cfg.easy, easy), **rl_hard_task_scores.controls_evals(cfg.hard, hard)},
        extra={
            **rl_extra(easy),
            "hard": rl_hard_task_scores.controls_extra(hard),
            "equal_flops": rl_hard_task_scores.equal_flops(hard),  # metrics["flops_spent"] pairs, 5% per cell
        },
        flops=total_flops(easy) + rl_hard_task_scores.total_flops(hard),
        claims=verdicts(metrics, cfg),
        wall_seconds=time.time() - t0,
    )


def _easy_stages(e: LabGRPOConfig, n_seeds: int) -> list:
    """The easy case: GRPO per seed on the lab's (cached) base, base and RL models scored."""
    preset, calls = e.base.preset, e.n_eval * (1 + 2 * e.base.n_samples)  # greedy, R1's and T = 1 sampling
    return [
        *gpu_stages.grpo_run("easy GRPO", preset, e.grpo, e.n_eval * e.eval_samples, runs=n_seeds),
        gpu_stages.sample("easy scoring", preset, 2 * n_seeds * calls, e.base.max_new_tokens),
    ]


def _hard_stages(h: HardTaskConfig, n_seeds: int) -> list:
    """The hard task: 2 x n_bases continued bases, the lr rule, every condition and baseline, pass@k."""
    preset, g, n = h.base.preset, h.grpo, h.grpo.max_completion_length
    seeds = range(n_seeds)
    runs = {c.name: len(rl_hard_task.cells(h, c.name, seeds)) for c in rl_hard_task.CONDITIONS}
    n_grpo = sum(runs.values()) + len(h.lr_candidates)
    n_cells = len(rl_hard_task.deciding_cells(h, seeds))
    n_scored = sum(len(rl_hard_task.cells(h, m, seeds)) for m in rl_hard_task.VERDICT_MODELS)
    per_setting = len(rl_hard_task.DECIDING_MODELS) * n_cells * h.n_heldout * (1 + h.t1_samples)
    return [
        gpu_stages.pretrain("hard bases", preset, replace(h.base.train, steps=2 * h.n_bases * h.base.train.steps)),
        *gpu_stages.grpo_run("hard GRPO", preset, g, h.n_curve * h.curve_samples, runs=n_grpo),
        gpu_stages.sample("hard validation", preset, h.n_valid * (h.valid_samples + h.lr_valid_samples * 2), n),
        gpu_stages.sample("hard RFT samples", preset, n_cells * h.rft_problems * h.rft_samples, n),
        gpu_stages.pretrain("hard SFT baselines", preset, replace(_g_train(g), steps=2 * n_cells * g.steps)),
        gpu_stages.sample("hard scoring", preset, n_scored * h.n_heldout * h.heldout_samples + per_setting, n),
        gpu_stages.sample("hard pass@k", preset, 2 * h.n_bases * h.n_passk * h.passk_samples, n),
    ]


def _g_train(g) -> TrainConfig:
    """A training stage as large as a GRPO run's updates (the SFT baselines are FLOP-matched to it)."""
    return TrainConfig(
        steps=g.steps, batch_size=g.batch_size, seq_len=gpu_stages.PROMPT_TOKENS + g.max_completion_length, pack=True
    )


def estimate_gpu(cfg: RLConfig, n_seeds: int = 3) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate` (the lab's base already trained: AFTER)."""
    return gpu_estimate.estimate("rl", _easy_stages(cfg.easy, n_seeds) + _hard_stages(cfg.hard, n_seeds))


def _room(m: dict) -> bool:
    """The hard task's acceptance test, on the validation split: 2% <= pass@1 <= 30%, pass@kmax < 95%."""
    pass1, passk = (stats.as_metric(m[k]["plain"]).mean for k in ("valid_pass_at_1_r1", "valid_pass_at_kmax_r1"))
    return 0.02 <= pass1 <= 0.30 and passk < 0.95


def _clip_verdict(m: dict) -> str:
    """What the clip control shows, in words, from the two paired intervals."""
    on_off = stats.as_metric(m["clip_vs_noclip_random_pass_at_1_r1"])
    on_base = stats.as_metric(m["clip_random_vs_base_pass_at_1_r1"])
    if on_off.lo > 0 and on_base.lo > 0:
        return "The clip makes the random reward pay, as Shao et al. found on Qwen2.5-Math."
    if on_off.lo > 0:
        return (
            "The clip moves the random-reward run up against no clip, the direction Shao et al. describe, "
            "but not to a gain over the base."
        )
    if on_off.hi < 0:
        return "The clip moves the random-reward run down against no clip, the opposite of Shao et al.'s mechanism."
    return "The clip makes no difference we can measure here."


def _passk_sentence(m: dict) -> str:
    """The sharpen-or-expand finding: pass@1 and pass@n of RL against the base, crossover, coverage."""
    f, n, k = stats.fmt, int(m["passk_n"]), int(m["passk_crossover_k"])
    return (
        f"Answer-level pass@k over {int(m['passk_bases'])} bases (each with its seed-0 GRPO run). "
        f"pass@1: RL − base {f(m['passk_rl_vs_base_at_1'])}; "
        f"pass@{n}: RL − base {f(m[f'passk_rl_vs_base_at_{n}'])}; "
        + (
            "RL does not start above the base. "
            if stats.as_metric(m["passk_rl_vs_base_at_1"]).mean <= 0
            else (f"the base's curve reaches RL's at k = {k}. " if k else f"the base stays below RL up to k = {n}. ")
        )
        + f"Problems RL solved in {n} samples that the base never did: {f(m['coverage_rl_only'])}; "
        f"solved by the base but lost by RL: {f(m['coverage_base_only'])}."
    )


def findings(m: dict) -> dict[str, str]:
    """One sentence per experiment of the hard task, with its numbers (for the chapter's text)."""
    f = stats.fmt
    L, S, F = m["pass_at_1_lenient_r1"], m["pass_at_1_r1"], m["format_rate_r1"]
    comp = m["reward_component_format_last"]
    return {
        "room": (
            f"On the validation split plain base 0's strict pass@1 at R1's sampling is "
            f"{f(m['valid_pass_at_1_r1']['plain'])} and its pass@{int(m['valid_kmax'])} is "
            f"{f(m['valid_pass_at_kmax_r1']['plain'])}: "
            + ("room at both ends." if _room(m) else "NOT the room the test needs (2-30% and below 95%).")
            + " GRPO's learning rate, chosen on the same split by one seed-0 run per candidate: "
            + ", ".join(f"{lr} ({f(v)})" for lr, v in m["lr_valid_pass_at_1"].items())
            + f"; chosen {stats.as_metric(m['grpo_lr']).mean:g}."
        ),
        "rewards": (
            f"Held-out answer-level pass@1 over {int(m['n_bases'])} bases x {int(m['seeds_per_base'])} seeds: base "
            f"{f(L['base'])}, true reward {f(L['true'])}, random reward {f(L['random'])}; GRPO − base "
            f"{f(m['plain_rl_vs_base_pass_at_1_lenient_r1'])}, true − random "
            f"{f(m['plain_true_vs_random_pass_at_1_lenient_r1'])}. The tag rate moved far more: base {f(F['base'])}, "
            f"true reward {f(F['true'])} (strict pass@1 {f(S['base'])} -> {f(S['true'])}, gain "
            f"{f(m['plain_rl_vs_base_pass_at_1_r1'])}). Format component at the last step, by reward: "
            + ", ".join(f"{name} {f(v)}" for name, v in comp.items() if name in rl_hard_task.REWARDS)
            + "."
        ),
        "clip": (
            f"With μ = {int(m['clip_mu'])} optimizer steps per batch the clip cut "
            f"{f(m['clip_frac']['random_mu'])} of the random-reward run's completion tokens (μ = 1: "
            f"{f(m['clip_frac']['random'])}). Random reward minus base, held-out strict pass@1 on base 0: clip on "
            f"{f(m['clip_random_vs_base_pass_at_1_r1'])}, clip off {f(m['noclip_random_vs_base_pass_at_1_r1'])}; "
            f"on − off {f(m['clip_vs_noclip_random_pass_at_1_r1'])} (answer-level: "
            f"{f(m['clip_vs_noclip_random_pass_at_1_lenient_r1'])}). " + _clip_verdict(m)
        ),
        "passk": _passk_sentence(m),
        "priming": (
            f"GRPO on the primed bases, answer-level: {f(L['primed_base'])} -> {f(L['primed_true'])} "
            f"(gain {f(m['primed_rl_vs_base_pass_at_1_lenient_r1'])}). Verification in completions, start -> end of "
            f"GRPO: plain {f(m['behaviour_verification_start']['true'])} -> "
            f"{f(m['behaviour_verification_end']['true'])}, primed "
            f"{f(m['behaviour_verification_start']['primed_true'])} -> "
            f"{f(m['behaviour_verification_end']['primed_true'])}."
        ),
        "length": (
            f"Mean completion length at the end of GRPO: grpo loss {f(m['final_mean_len_curve']['true'])} tokens, "
            f"dr_grpo {f(m['final_mean_len_curve']['dr_grpo'])}; paired over seeds dr_grpo − grpo "
            f"{f(m['dr_grpo_vs_grpo_mean_len_curve'])}."
        ),
    }


# ----------------------------------------------------------------------------- verdict
def verdicts(m: dict, cfg: RLConfig | None = None) -> list[dict]:
    """``rl-vanilla-to-reasoner`` by its rule in data/claims.yml; the evidence states the numbers."""
    f = stats.fmt
    c = cfg.hard if cfg is not None else HardTaskConfig()
    best = BASELINE_ORDER[int(m["best_baseline"])]
    best_name = {"sft_worked": "SFT on worked solutions", "rft": "rejection-sampling fine-tuning"}[best]
    n, L = int(m["passk_n"]), m["pass_at_1_lenient_r1"]
    ev = (
        f"Hard task ({c.difficulty}-digit {c.task}, {int(m['n_bases'])} bases of "
        f"{m['hard_base_params'] / 1e6:.2f}M parameters continued from the lab base, {int(m['seeds_per_base'])} seeds "
        f"each; base 0's validation strict pass@1 {f(m['valid_pass_at_1_r1']['plain'])}, "
        f"pass@{int(m['valid_kmax'])} {f(m['valid_pass_at_kmax_r1']['plain'])}). At R1's sampling held-out "
        f"answer-level pass@1 went from {f(L['base'])} (base) to {f(L['true'])} (GRPO, true reward): gain "
        f"{f(m['plain_rl_vs_base_pass_at_1_lenient_r1'])}, while the tag rate went {f(m['format_rate_r1']['base'])} -> "
        f"{f(m['format_rate_r1']['true'])} (strict gain {f(m['plain_rl_vs_base_pass_at_1_r1'])}). Random reward: "
        f"{f(L['random'])}; true − random {f(m['plain_true_vs_random_pass_at_1_lenient_r1'])}. "
        f"Best baseline at equal spent FLOPs ({best_name}, {f(L[best])}): RL − baseline "
        f"{f(m['plain_rl_vs_best_baseline_pass_at_1_lenient_r1'])}. Primed bases: {f(L['primed_base'])} -> "
        f"{f(L['primed_true'])}, gain {f(m['primed_rl_vs_base_pass_at_1_lenient_r1'])}. "
        f"Answer-level pass@{n}: RL − base {f(m[f'passk_rl_vs_base_at_{n}'])}. Easy case (lab base, 3-digit addition): "
        f"{f(m['base_pass_at_1_r1'])} -> {f(m['rl_pass_at_1_r1'])}, but the base's lenient accuracy was already "
        f"{f(m['base_pass_at_1_lenient_r1'])}: the corpus planted the behaviour. Tiny models on arithmetic, not AIME."
    )
    return [judge("rl-vanilla-to-reasoner", m, ev)]


def variants_sentence(res: dict) -> str:
    """The verdict and each declared variant under which it flips, in words (from the results file)."""
    c = next(x for x in res["claims"] if x["id"] == "rl-vanilla-to-reasoner")
    off = [v for v in c.get("variants", []) if v["verdict"] != c["verdict"]]
    n = len(c.get("variants", []))
    if not off:
        return f"Verdict: **{c['verdict']}**, and the same under all {n} variants."
    flips = "; ".join(f"{v['name']}: {v['verdict']}" for v in off)
    return f"Verdict: **{c['verdict']}**; it flips under {len(off)} of {n} variants ({flips})."


__all__ = [
    "AFTER",
    "variants_sentence",
    "RLConfig",
    "PROFILES",
    "config",
    "dry_run",
    "run_easy",
    "rl_metrics",
    "rl_evals",
    "rl_extra",
    "total_flops",
    "estimate_gpu",
    "run",
    "verdicts",
    "findings",
]
