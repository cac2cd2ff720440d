"""The RL chapter: does GRPO turn a vanilla model into a reasoner, or surface what pretraining planted?

Two parts.  The *easy case* is R1-Zero's recipe (GRPO, rule-based accuracy + format rewards) on
the lab's base and the lab's 3-digit addition, three seeds, scored at greedy decoding, R1's
sampling (T = 0.6, top-p 0.95) and T = 1 on the lab's held-out problems (the base's numbers are
the lab chapter's, from the same cached evaluation).  It is the distillation chapter's teacher.
Its task leaves no room to tell sharpening from learning (the base's lenient pass@64 is 100%).

The *hard task* (:mod:`minir1.experiments.rl_controls`) carries the verdict: a smaller base
pretrained in the chapter with room at both ends, reward controls (true / random / format /
incorrect), ``grpo`` vs ``dr_grpo``, a primed base, pass@k to 256 and baselines at equal FLOPs
(RFT on the base's own verified samples, SFT on worked solutions).

Deviations from R1, besides scale: the compact prompt template (see :mod:`minir1.tokenizer`), a
learning rate suited to a tiny from-scratch model, G = 8, ε = 0.2, and β = 0 (TRL's default).
See :class:`minir1.grpo.GRPOConfig` for each value and its source.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import artifacts, models, stats
from ..evaluation import (
    EvalResult,
    EvalSet,
    eval_record,
    evaluate,
    per_problem_scores,
    summarize,
)
from ..grpo import GRPOConfig, train_grpo
from ..profiles import check_profile
from ..rewards import accuracy_reward, format_reward
from ..tasks import get_task
from ..utils import device, seed_everything
from . import lab, rl_controls, rl_controls_metrics
from .chapter import ChapterResult
from .lab import LabConfig
from .rl_controls import ControlsConfig
from .rules import judge

PASSK_SEED = 4321  # which held-out problems the pass@k curves use


@dataclass(frozen=True)
class RLConfig:
    base: LabConfig = field(default_factory=LabConfig)  # the lab base RL starts from (and its eval sizes)
    task: str = "addition"  # the lab task RL trains on
    difficulty: int = 3  # digits per operand
    grpo: GRPOConfig = field(
        default_factory=lambda: GRPOConfig(
            group_size=8,
            batch_size=64,
            steps=80,
            lr=5e-5,
            kl_coef=0.0,
            max_completion_length=64,
            eval_every=20,
            log_every=10,
            reward_weights=(1.0, 1.0),
        )
    )
    n_train: int = 4000  # train-split problems RL draws prompts from
    n_eval: int = 200  # held-out problems for the learning curves (inside training)
    eval_samples: int = 4  # samples per held-out problem at each curve point (T = 1)
    controls: ControlsConfig = field(default_factory=ControlsConfig)  # the hard task (carries the verdict)
    engine: str = "minir1"  # "minir1" (minir1.grpo, the book's code) or "trl" (trl.GRPOTrainer)
    dry_run: bool = False  # two GRPO steps, tiny evaluations (tests)


PROFILES: dict[str, RLConfig] = {
    "smoke": RLConfig(
        base=lab.PROFILES["smoke"],
        grpo=GRPOConfig(
            group_size=4,
            batch_size=16,
            steps=4,
            lr=5e-5,
            max_completion_length=32,
            eval_every=2,
            log_every=0,
            reward_weights=(1.0, 1.0),
        ),
        n_train=64,
        n_eval=8,
        eval_samples=2,
        controls=rl_controls.PROFILES["smoke"],
    ),
    "cpu": RLConfig(base=lab.PROFILES["cpu"], controls=rl_controls.PROFILES["cpu"]),
    "gpu": RLConfig(
        base=lab.PROFILES["gpu"],
        grpo=GRPOConfig(
            group_size=16,
            batch_size=256,
            steps=300,
            lr=2e-5,
            max_completion_length=96,
            eval_every=25,
            log_every=10,
            reward_weights=(1.0, 1.0),
        ),
        n_train=20000,
        n_eval=500,
        eval_samples=8,
        controls=rl_controls.PROFILES["gpu"],
    ),
}

REWARD_FUNCS = (accuracy_reward, format_reward)  # R1-Zero: accuracy + format, both rule-based


def config(profile: str) -> RLConfig:
    """The RL configuration of ``profile`` (the only place a profile name is resolved)."""
    return PROFILES[check_profile(profile)]


def dry_run(cfg: RLConfig) -> RLConfig:
    """``cfg``'s model shapes (base and GRPO lengths), two GRPO steps, tiny evaluations (tests)."""
    g = replace(
        cfg.grpo,
        steps=2,
        batch_size=2 * min(cfg.grpo.group_size, 4),
        group_size=min(cfg.grpo.group_size, 4),
        eval_every=1,
        log_every=0,
        max_completion_length=8,
    )
    return replace(
        cfg,
        base=lab.dry_run(cfg.base),
        grpo=g,
        n_train=8,
        n_eval=2,
        eval_samples=2,
        controls=rl_controls.dry_run(cfg.controls),
        dry_run=True,
    )


def problems(cfg: RLConfig, split: str, n: int, seed: int = 1234):
    return get_task(cfg.task, cfg.difficulty).sample(split, n, seed=seed)


def eval_set(cfg: RLConfig) -> EvalSet:
    """The held-out problems the chapter's verdict uses: the lab's, for the RL task."""
    return lab.eval_set(cfg.base, cfg.task, cfg.difficulty)


def curve_eval(cfg: RLConfig, tokenizer, eval_problems, seed: int):
    """``eval_fn`` for GRPO: sampled held-out strict/lenient pass@1 and mean length."""

    def fn(model):
        r = evaluate(
            model,
            tokenizer,
            eval_problems,
            n_samples=cfg.eval_samples,
            temperature=1.0,
            seed=seed,
            ks=(1,),
            max_new_tokens=cfg.grpo.max_completion_length,
        )
        return {
            "pass_at_1": r.acc,
            "pass_at_1_lenient": r.acc_lenient,
            "format_rate": r.format_rate,
            "mean_len": r.tokens_generated / (len(r.correct) * r.n_samples),
            "mean_len_correct": r.mean_len_correct,
            "mean_len_incorrect": r.mean_len_incorrect,
        }

    return fn


# ----------------------------------------------------------------------------- models
ENGINES = ("minir1", "trl")


def trainer(engine: str):
    """The GRPO implementation that runs the recipe: ours (:func:`minir1.grpo.train_grpo`), or
    TRL's ``GRPOTrainer`` through :func:`minir1.grpo_trl.train_grpo_trl` (same arguments; the
    route to accelerate on several GPUs and to vLLM generation where installed)."""
    if engine == "minir1":
        return train_grpo
    if engine == "trl":
        from ..grpo_trl import train_grpo_trl  # optional dependency: pip install trl

        return train_grpo_trl
    raise ValueError(f"RLConfig.engine must be one of {ENGINES}; got {engine!r}")


def _build_rl(cfg: RLConfig, gcfg: GRPOConfig, seed: int):
    train_fn = trainer(cfg.engine)

    def build(folder):
        model, tok, _ = lab.base_model(cfg.base)
        seed_everything(seed)
        train_set = problems(cfg, "train", cfg.n_train, seed=seed)
        res = train_fn(
            model,
            tok,
            train_set,
            list(REWARD_FUNCS),
            gcfg,
            seed=seed,
            eval_fn=curve_eval(cfg, tok, problems(cfg, "test", cfg.n_eval), seed=10_000 + seed),
        )
        models.save(model.cpu(), tok, folder)
        n = models.n_params(model)
        tokens = sum(h["tokens"] for h in res.history)
        # Sampling (2N per token) + policy forward/backward (6N) + reference forward when logged (2N).
        flops = tokens * n * (2 + 6 + (2 if gcfg.kl_coef > 0 or gcfg.log_kl else 0))
        return {
            "history": res.history,
            "evals": res.evals,
            "flops": float(flops),
            "params": n,
            "wall_seconds": res.history[-1]["wall_s"] if res.history else 0.0,
        }

    return build


def _base_conf(cfg: RLConfig) -> dict:
    return {k: v for k, v in asdict(cfg.base).items() if k in lab.BUILD_FIELDS}


def rl_path(cfg: RLConfig, seed: int = 0, *, kl_coef: float | None = None, force: bool = False) -> Path:
    """The artifact folder of a GRPO run from the lab base (trained the first time)."""
    gcfg = cfg.grpo if kl_coef is None else replace(cfg.grpo, kl_coef=kl_coef)
    conf = {
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "grpo": asdict(gcfg),
        "n_train": cfg.n_train,
        "n_eval": cfg.n_eval,
        "eval_samples": cfg.eval_samples,
        "seed": seed,
        "base": _base_conf(cfg),
    }  # what shapes the model and its curves
    return artifacts.cached("rl", conf, _build_rl(cfg, gcfg, seed), force=force)


def rl_model(cfg: RLConfig, seed: int = 0, *, kl_coef: float | None = None, force: bool = False):
    """``(model, tokenizer, meta)`` of a GRPO run from the lab base (cached; trained if missing)."""
    path = rl_path(cfg, seed, kl_coef=kl_coef, force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)


# ----------------------------------------------------------------------------- the chapter
CURVE_KEYS = (
    "step",
    "reward",
    "reward_accuracy_reward",
    "reward_format_reward",
    "acc_strict",
    "acc_lenient",
    "len",
    "len_correct",
    "len_incorrect",
    "kl",
    "clip_frac",
    "frac_zero_std",
    "tok_per_s",
)
SCORES = ("pass@1", "pass@1_lenient", "format")  # per-problem scores compared between models


def _scores(runs: Sequence[EvalResult], name: str) -> np.ndarray:
    return per_problem_scores(runs, name)


EASY_SETTINGS = ("greedy", "r1")  # the easy case at greedy decoding and R1's sampling (the hard task adds T = 1)


def run_experiment(cfg: RLConfig, seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """The easy case: GRPO per seed on the lab base, scored in the lab's three settings.

    Returns raw evaluations: ``{"base": {setting: [EvalResult]}, "rl": {setting: [EvalResult per
    seed]}, "runs": [meta per seed], "paths", "base_meta", "seeds"}``.
    """
    seeds = list(seeds)
    eset = eval_set(cfg)
    base_dir = lab.base_path(cfg.base)
    out = {"paths": {"base": base_dir, "rl": []}, "runs": [], "base_meta": artifacts.load_meta(base_dir)}
    # The base on the lab's held-out set: the same cached evaluations the lab chapter reports.
    out["base"] = lab.score(cfg.base, eset, seeds, model_dir=base_dir, settings=EASY_SETTINGS)
    rl_runs = {name: [] for name in EASY_SETTINGS}
    for s in seeds:
        path = rl_path(cfg, s)
        out["paths"]["rl"].append(path)
        out["runs"].append(artifacts.load_meta(path))
        model, tok = models.load(path, device=device())
        # RL seed s is one trained model, sampled once with seed s (paired with the base's seed-s samples).
        for name, runs in lab.score(
            cfg.base, eset, [s], model_dir=path, model=model, tokenizer=tok, settings=EASY_SETTINGS
        ).items():
            rl_runs[name].extend(runs)
    out["rl"], out["seeds"] = rl_runs, seeds
    return out


def rl_metrics(out: dict) -> dict:
    """Results-file metrics of the easy case; every comparison a paired bootstrap."""
    m: dict = {}
    base, rl = out["base"], out["rl"]
    for tag in EASY_SETTINGS:
        b, r = base[tag], rl[tag]
        bs = summarize(b)  # the lab chapter's numbers (one model, sampling seeds)
        m[f"base_pass_at_1_{tag}"] = bs["pass@1"] if "pass@1" in bs else bs["acc"]
        m[f"base_pass_at_1_lenient_{tag}"] = bs["pass@1_lenient"] if "pass@1_lenient" in bs else bs["acc_lenient"]
        m[f"base_format_rate_{tag}"] = bs["format"]
        m[f"base_mean_len_{tag}"] = lab.mean_len(b)
        # RL: one trained model per seed -> resample problems and seeds.
        for score, key in (("pass@1", "pass_at_1"), ("pass@1_lenient", "pass_at_1_lenient"), ("format", "format_rate")):
            m[f"rl_{key}_{tag}"] = stats.rate(per_problem_scores(r, score))
            m[f"rl_vs_base_{key}_{tag}"] = stats.paired_diff(per_problem_scores(r, score), per_problem_scores(b, score))
        m[f"rl_mean_len_{tag}"] = lab.mean_len(r)
    runs = out["runs"]
    m["rl_flops_per_run"] = stats.over_seeds([r["flops"] for r in runs])
    m["rl_wall_seconds_per_run"] = stats.over_seeds([r["wall_seconds"] for r in runs])
    m["base_params"] = out["base_meta"]["params"]
    return m


def rl_evals(cfg: RLConfig, out: dict) -> dict:
    """``evals`` records: the base (same records as the lab chapter) and each RL model."""
    eset, smp = eval_set(cfg), lab.samplings(cfg.base)
    seeds = out["seeds"]
    recs = dict(eval_record(out["paths"]["base"], eset, smp[name], out["base"][name], seeds) for name in EASY_SETTINGS)
    for i, s in enumerate(seeds):
        for name in EASY_SETTINGS:
            eid, rec = eval_record(out["paths"]["rl"][i], eset, smp[name], [out["rl"][name][i]], [s])
            recs[eid] = rec
    return recs


def rl_extra(out: dict) -> dict:
    """Curves and samples of the easy case (read back from the results file)."""
    return {
        "runs": [
            {"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"]}
            for r in out["runs"]
        ],
        "samples_base": out["base"]["r1"][0].samples,
        "samples_rl": out["rl"]["r1"][0].samples,
    }


def total_flops(out: dict) -> float:
    """FLOPs of the easy case: GRPO training and sampled evaluations (2·N per token)."""
    toks = sum(r.tokens_generated for by in (out["base"], out["rl"]) for runs in by.values() for r in runs)
    return float(sum(r["flops"] for r in out["runs"]) + 2.0 * out["base_meta"]["params"] * toks)


def run(cfg: RLConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """The RL chapter: the easy case on the lab base, then the hard task's controls and baselines."""
    t0 = time.time()
    easy = run_experiment(cfg, seeds)
    t_easy = time.time() - t0
    hard = rl_controls.run_experiment(cfg.controls, seeds)
    metrics = rl_metrics(easy)
    hard_m = rl_controls_metrics.controls_metrics(hard)
    clash = set(metrics) & set(hard_m)
    if clash:
        raise RuntimeError(f"easy-case and hard-task metrics share names: {sorted(clash)}")
    metrics.update(hard_m)
    metrics["wall_seconds_easy"] = t_easy
    metrics["wall_seconds_hard"] = time.time() - t0 - t_easy
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        evals={**rl_evals(cfg, easy), **rl_controls_metrics.controls_evals(cfg.controls, hard)},
        extra={**rl_extra(easy), "hard": rl_controls_metrics.controls_extra(hard)},
        flops=total_flops(easy) + rl_controls_metrics.total_flops(hard),
    )


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


def findings(m: dict) -> dict[str, str]:
    """One sentence per experiment of the hard task, with its numbers (for the chapter's text)."""
    f, n = stats.fmt, int(m["passk_n"])
    k = int(m["passk_crossover_k"])
    ends = {name: f(m["pass_at_1_r1"][name]) for name in ("true", "random")}
    fmt_end = {name: f(v) for name, v in m["final_format_rate_curve"].items()}
    return {
        "room": (
            f"On the validation split the plain base's strict pass@1 at R1's sampling is "
            f"{f(m['valid_pass_at_1_r1']['plain'])} and its pass@{int(m['valid_kmax'])} is "
            f"{f(m['valid_pass_at_kmax_r1']['plain'])}: "
            + ("room at both ends." if _room(m) else "NOT the room the test needs (2-30% and below 95%).")
            + " GRPO's learning rate, chosen on the same split by one seed-0 run per candidate: "
            + ", ".join(f"{lr} ({f(v)})" for lr, v in m["lr_valid_pass_at_1"].items())
            + f"; chosen {stats.as_metric(m['grpo_lr']).mean:g}."
        ),
        "rewards": (
            f"Held-out strict pass@1 after GRPO: true reward {ends['true']}, random reward {ends['random']} "
            f"(base {f(m['plain_base_pass_at_1_r1'])}); true − random {f(m['plain_true_vs_random_pass_at_1_r1'])}, "
            f"random − base {f(m['reward_vs_base_pass_at_1_r1']['random'])}. Final R1-format rate on the curve "
            f"problems: " + ", ".join(f"{name} {v}" for name, v in fmt_end.items() if name in rl_controls.REWARDS) + "."
        ),
        "clip": (
            f"With μ = {int(m['clip_mu'])} optimizer steps per batch the clip cut "
            f"{f(m['clip_frac']['random_mu'])} of the random-reward run's completion tokens (μ = 1: "
            f"{f(m['clip_frac']['random'])}). Random reward minus base, held-out strict pass@1: clip on "
            f"{f(m['clip_random_vs_base_pass_at_1_r1'])}, clip off {f(m['noclip_random_vs_base_pass_at_1_r1'])}; "
            f"on − off {f(m['clip_vs_noclip_random_pass_at_1_r1'])}. " + _clip_verdict(m)
        ),
        "passk": (
            f"pass@1: RL − base {f(m['passk_rl_vs_base_at_1'])}; pass@{n}: RL − base "
            f"{f(m[f'passk_rl_vs_base_at_{n}'])}; "
            + (
                "RL does not start above the base. "
                if stats.as_metric(m["passk_rl_vs_base_at_1"]).mean <= 0
                else (
                    f"the base's curve reaches RL's at k = {k}. " if k else f"the base stays below RL up to k = {n}. "
                )
            )
            + f"Problems RL solved in {n} samples that the base never did: {f(m['coverage_rl_only'])}; "
            f"solved by the base but lost by RL: {f(m['coverage_base_only'])}."
        ),
        "priming": (
            f"GRPO on the primed base: {f(m['primed_base_pass_at_1_r1'])} -> {f(m['pass_at_1_r1']['primed_true'])} "
            f"(gain {f(m['primed_rl_vs_base_pass_at_1_r1'])}); primed − plain after GRPO "
            f"{f(m['primed_vs_plain_rl_pass_at_1_r1'])}. Verification in completions, start -> end of GRPO: plain "
            f"{f(m['behaviour_verification_start']['true'])} -> {f(m['behaviour_verification_end']['true'])}, primed "
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
    c = cfg.controls if cfg is not None else ControlsConfig()
    best = rl_controls.BASELINES[int(m["best_baseline"])]
    best_name = {"sft_worked": "SFT on worked solutions", "rft": "rejection-sampling fine-tuning"}[best]
    n = int(m["passk_n"])
    ev = (
        f"Hard task ({c.difficulty}-digit {c.task}, a {m['hard_base_params'] / 1e6:.2f}M-parameter base "
        f"pretrained in the chapter; validation strict pass@1 {f(m['valid_pass_at_1_r1']['plain'])}, "
        f"pass@{int(m['valid_kmax'])} {f(m['valid_pass_at_kmax_r1']['plain'])}). At R1's sampling held-out strict "
        f"pass@1 went from {f(m['plain_base_pass_at_1_r1'])} (base) to {f(m['pass_at_1_r1']['true'])} (GRPO, true "
        f"reward, 3 seeds): paired gain {f(m['plain_rl_vs_base_pass_at_1_r1'])}. Random reward: "
        f"{f(m['pass_at_1_r1']['random'])}; true − random {f(m['plain_true_vs_random_pass_at_1_r1'])}. "
        f"Best equal-FLOPs baseline ({best_name}, {f(m['pass_at_1_r1'][best])}): RL − baseline "
        f"{f(m['plain_rl_vs_best_baseline_pass_at_1_r1'])}. Primed base: {f(m['primed_base_pass_at_1_r1'])} -> "
        f"{f(m['pass_at_1_r1']['primed_true'])}, gain {f(m['primed_rl_vs_base_pass_at_1_r1'])}. "
        f"pass@{n}: RL − base {f(m[f'passk_rl_vs_base_at_{n}'])}. Easy case (lab base, 3-digit addition): "
        f"{f(m['base_pass_at_1_r1'])} -> {f(m['rl_pass_at_1_r1'])}, but the base's lenient accuracy was already "
        f"{f(m['base_pass_at_1_lenient_r1'])}: the corpus planted the behaviour. Tiny models on arithmetic, not AIME."
    )
    return [judge("rl-vanilla-to-reasoner", m, ev)]


__all__ = [
    "RLConfig",
    "PROFILES",
    "config",
    "dry_run",
    "problems",
    "eval_set",
    "rl_path",
    "rl_model",
    "run_experiment",
    "rl_metrics",
    "rl_evals",
    "rl_extra",
    "total_flops",
    "run",
    "verdicts",
    "findings",
    "REWARD_FUNCS",
]
