"""The R1-Zero experiment in miniature: GRPO with rule-based rewards on the lab's base.

R1-Zero applied GRPO directly to a base model with two rule-based rewards — accuracy
(the answer inside ``<answer>`` tags is checked by a program) and format (reasoning
inside ``<think>`` tags).  This module runs that recipe on our base model and the
comparisons a skeptic asks for: several seeds; held-out strict *and* lenient accuracy
(so format learning is not mistaken for reasoning) at greedy decoding, R1's sampling
(T = 0.6, top-p 0.95) and T = 1, on the lab's held-out problems (the base's numbers are the
lab chapter's, from the same cached evaluation); pass@k from 1 to 64 for base and RL (does
RL sharpen what the base could already do, or expand it?); an ablation with the KL penalty
on; and two supervised baselines at the FLOPs of one GRPO run: SFT on answers only (a weak
baseline) and SFT on worked solutions from the task generator (a fair one).

Deviations from R1, besides scale: the compact prompt template (see
:mod:`minir1.tokenizer`), a learning rate suited to a tiny from-scratch model, G = 8,
ε = 0.2, and β = 0 in the main runs (TRL's default; the ablation uses DeepSeekMath's
β = 0.04).  See :class:`minir1.grpo.GRPOConfig` for each value and its source.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import artifacts, models, stats
from ..evaluation import (
    EvalResult,
    EvalSet,
    Sampling,
    eval_record,
    evaluate,
    evaluate_cached,
    per_problem_scores,
    summarize,
)
from ..grpo import GRPOConfig, train_grpo
from ..profiles import check_profile
from ..rewards import accuracy_reward, format_reward
from ..tasks import completion, final_answer, get_task
from ..tokenizer import format_prompt
from ..train import TrainConfig, train
from ..utils import device, seed_everything
from . import lab
from .chapter import ChapterResult
from .lab import LabConfig
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
    ablation_kl_coef: float = 0.04  # β of the KL-on ablation (DeepSeekMath's value; R1 used 0.001)
    n_train: int = 4000  # train-split problems RL draws prompts from
    n_eval: int = 200  # held-out problems for the learning curves (inside training)
    eval_samples: int = 4  # samples per held-out problem at each curve point (T = 1)
    n_passk: int = 64  # held-out problems for the pass@k curves
    passk_samples: int = 64  # samples per problem for pass@k (k = 1..64)
    sft_lr_mult: float = 10.0  # SFT baselines' lr as a multiple of GRPO's
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
        n_passk=8,
        passk_samples=8,
    ),
    "cpu": RLConfig(base=lab.PROFILES["cpu"]),
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
        n_passk=300,
        passk_samples=64,
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
        n_passk=2,
        passk_samples=4,
        dry_run=True,
    )


def problems(cfg: RLConfig, split: str, n: int, seed: int = 1234):
    return get_task(cfg.task, cfg.difficulty).sample(split, n, seed=seed)


def eval_set(cfg: RLConfig) -> EvalSet:
    """The held-out problems the chapter's verdict uses: the lab's, for the RL task."""
    return lab.eval_set(cfg.base, cfg.task, cfg.difficulty)


def passk_set(cfg: RLConfig) -> EvalSet:
    return EvalSet(task=cfg.task, difficulty=cfg.difficulty, n=cfg.n_passk, split="test", seed=PASSK_SEED)


def passk_sampling(cfg: RLConfig) -> Sampling:
    n = cfg.passk_samples
    return Sampling(
        n_samples=n,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=cfg.grpo.max_completion_length,
        ks=tuple(k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= n),
    )


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


SFT_KINDS = ("answers", "worked")


def sft_pairs(cfg: RLConfig, kind: str, tok, seed: int) -> list[tuple[str, str]]:
    """Training pairs of an SFT baseline: ``answers`` = R1's format with an empty ``<think>``
    (``<think></think> <answer>936</answer>``); ``worked`` = a correct worked solution from the task
    generator inside ``<think>`` (``<think>6+9=15 c1 ...</think> <answer>936</answer>``)."""
    if kind not in SFT_KINDS:
        raise ValueError(f"kind must be one of {SFT_KINDS}; got {kind!r}")
    task = get_task(cfg.task, cfg.difficulty)
    rng = random.Random(seed)
    out = []
    for p in problems(cfg, "train", cfg.n_train, seed=seed):
        if kind == "answers":
            reply = completion("", p.answer)
        else:
            steps = task.worked_solution(p, rng, 0.0)
            reply = completion(steps, final_answer(steps))
        out.append((format_prompt(tok, p.question), " " + reply))
    return out


def _build_sft(cfg: RLConfig, kind: str, seed: int, flops_budget: float):
    def build(folder):
        model, tok, meta = lab.base_model(cfg.base)
        pairs = sft_pairs(cfg, kind, tok, seed)
        tokens_per_example = float(np.mean([len(tok.encode(c)) + 1 for _, c in pairs[:200]]))  # completion + eos
        batch = cfg.grpo.batch_size
        steps = max(1, int(flops_budget / (6 * meta["params"] * tokens_per_example * batch)))
        tcfg = TrainConfig(
            steps=steps,
            batch_size=batch,
            lr=cfg.grpo.lr * cfg.sft_lr_mult,
            warmup_steps=min(10, steps),
            seed=seed,
            desc=f"SFT {kind}",
            progress=False,
            log_every=max(1, steps // 5),
        )
        res = train(model, tok, pairs, tcfg)
        models.save(model.cpu(), tok, folder)
        return {
            "steps": steps,
            "flops": 6.0 * meta["params"] * res.tokens,
            "history": res.history,
            "params": meta["params"],
            "flops_budget": flops_budget,
        }

    return build


def sft_path(cfg: RLConfig, kind: str, seed: int, flops_budget: float) -> Path:
    """An SFT baseline (``kind`` in :data:`SFT_KINDS`) trained for as many steps as fit in
    ``flops_budget`` (6·N per trained completion token), cached as an artifact."""
    conf = {
        "kind": kind,
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "n_train": cfg.n_train,
        "batch": cfg.grpo.batch_size,
        "lr": cfg.grpo.lr * cfg.sft_lr_mult,
        "seed": seed,
        "flops_budget": float(f"{flops_budget:.6g}"),
        "base": _base_conf(cfg),
    }
    return artifacts.cached("sft", conf, _build_sft(cfg, kind, seed, float(conf["flops_budget"])))


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


def run_experiment(cfg: RLConfig, seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """Train (or load) and score everything the chapter reports, for ``seeds``.

    Returns raw evaluations: ``{"base": {setting: [EvalResult]}, "rl": {setting: [EvalResult per
    seed]}, "sft_answers"/"sft_worked": {"r1": [...]}, "passk_base", "passk_rl", "paths", "meta"}``.
    """
    seeds = list(seeds)
    eset = eval_set(cfg)
    base_dir = lab.base_path(cfg.base)
    base_meta = artifacts.load_meta(base_dir)
    out = {
        "paths": {"base": base_dir, "rl": [], "sft_answers": [], "sft_worked": []},
        "runs": [],
        "ablation": [],
        "sft": {k: [] for k in SFT_KINDS},
        "base_meta": base_meta,
    }
    # The base on the lab's held-out set: the same cached evaluations the lab chapter reports.
    out["base"] = lab.score(cfg.base, eset, seeds, model_dir=base_dir)
    pk_set, pk_smp = passk_set(cfg), passk_sampling(cfg)
    out["passk_base"] = [evaluate_cached(base_dir, pk_set, pk_smp, 0)]
    rl_runs = {name: [] for name in lab.SETTINGS}
    sft_runs = {k: [] for k in SFT_KINDS}
    out["passk_rl"] = []
    for s in seeds:
        path = rl_path(cfg, s)
        meta = artifacts.load_meta(path)
        out["paths"]["rl"].append(path)
        out["runs"].append(meta)
        model, tok = models.load(path, device=device())
        # RL seed s is one trained model, sampled once with seed s (paired with the base's seed-s samples).
        for name, runs in lab.score(cfg.base, eset, [s], model_dir=path, model=model, tokenizer=tok).items():
            rl_runs[name].extend(runs)
        out["passk_rl"].append(evaluate_cached(path, pk_set, pk_smp, s, model=model, tokenizer=tok))
        out["ablation"].append(artifacts.load_meta(rl_path(cfg, s, kl_coef=cfg.ablation_kl_coef)))
        for kind in SFT_KINDS:
            spath = sft_path(cfg, kind, s, flops_budget=meta["flops"])
            out["paths"][f"sft_{kind}"].append(spath)
            out["sft"][kind].append(artifacts.load_meta(spath))
            sft_runs[kind].extend(lab.score(cfg.base, eset, [s], model_dir=spath, settings=("r1",))["r1"])
    out["rl"] = rl_runs
    out["sft_answers"], out["sft_worked"] = {"r1": sft_runs["answers"]}, {"r1": sft_runs["worked"]}
    out["seeds"] = seeds
    return out


def _ablation_metric(runs: list[dict], key: str) -> stats.Metric:
    return stats.over_seeds([float(r["evals"][-1][key]) for r in runs], unit="rate" if "len" not in key else "")


def rl_metrics(out: dict) -> dict:
    """Results-file metrics of :func:`run_experiment`; every comparison a paired bootstrap."""
    m: dict = {}
    base, rl = out["base"], out["rl"]
    for name in lab.SETTINGS:
        tag = name
        b, r = base[name], rl[name]
        bs = summarize(b)  # the lab chapter's numbers (one model, sampling seeds)
        m[f"base_pass_at_1_{tag}"] = bs["pass@1"] if "pass@1" in bs else bs["acc"]
        m[f"base_pass_at_1_lenient_{tag}"] = bs["pass@1_lenient"] if "pass@1_lenient" in bs else bs["acc_lenient"]
        m[f"base_format_rate_{tag}"] = bs["format"]
        m[f"base_mean_len_{tag}"] = lab.mean_len(b)
        # RL: one trained model per seed -> resample problems and seeds.
        for score, key in (("pass@1", "pass_at_1"), ("pass@1_lenient", "pass_at_1_lenient"), ("format", "format_rate")):
            m[f"rl_{key}_{tag}"] = stats.rate(_scores(r, score))
            m[f"rl_vs_base_{key}_{tag}"] = stats.paired_diff(_scores(r, score), _scores(b, score))
        m[f"rl_mean_len_{tag}"] = lab.mean_len(r)
    # Supervised baselines at the FLOPs of one GRPO run, R1's sampling.
    rl_r1 = _scores(rl["r1"], "pass@1")
    best, best_mean = None, -1.0
    for kind in SFT_KINDS:
        runs = out[f"sft_{kind}"]["r1"]
        m[f"sft_{kind}_pass_at_1_r1"] = stats.rate(_scores(runs, "pass@1"))
        m[f"sft_{kind}_pass_at_1_lenient_r1"] = stats.rate(_scores(runs, "pass@1_lenient"))
        m[f"rl_vs_sft_{kind}_pass_at_1_r1"] = stats.paired_diff(rl_r1, _scores(runs, "pass@1"))
        if m[f"sft_{kind}_pass_at_1_r1"].mean > best_mean:
            best, best_mean = kind, m[f"sft_{kind}_pass_at_1_r1"].mean
    m["rl_vs_best_baseline_pass_at_1_r1"] = m[f"rl_vs_sft_{best}_pass_at_1_r1"]
    m["best_baseline"] = SFT_KINDS.index(best)  # 0 = answers only, 1 = worked solutions
    m["sft_steps"] = {k: stats.over_seeds([s["steps"] for s in out["sft"][k]]) for k in SFT_KINDS}
    # KL-on ablation (from the training curves: T = 1, curve problems).
    for key in ("pass_at_1", "pass_at_1_lenient", "mean_len"):
        m[f"rl_kl_{key}_curve"] = _ablation_metric(out["ablation"], key)
        m[f"rl_{key}_curve"] = _ablation_metric(out["runs"], key)
    # pass@k, T = 1: base sampled once (one model), RL one model per seed.
    pk_b, pk_r = out["passk_base"], out["passk_rl"]
    n = pk_b[0].n_samples
    ks = sorted(pk_b[0].pass_at_k)
    for suffix in ("", "_lenient"):
        cb = np.asarray([r.correct_lenient if suffix else r.correct for r in pk_b])
        cr = np.asarray([r.correct_lenient if suffix else r.correct for r in pk_r])
        m[f"base_pass_at_k{suffix}"] = {str(k): v for k, v in stats.pass_at_k(cb, n, ks, seeds="sampling").items()}
        m[f"rl_pass_at_k{suffix}"] = {str(k): v for k, v in stats.pass_at_k(cr, n, ks).items()}
        kmax = max(ks)
        m[f"rl_vs_base_pass_at_{kmax}{suffix}"] = stats.paired_diff(
            stats.pass_at_k_scores(cr, n, kmax), stats.pass_at_k_scores(cb, n, kmax)
        )
    runs = out["runs"]
    m["rl_flops_per_run"] = stats.over_seeds([r["flops"] for r in runs])
    m["rl_wall_seconds_per_run"] = stats.over_seeds([r["wall_seconds"] for r in runs])
    m["rl_tokens_per_s"] = stats.over_seeds([float(np.mean([h["tok_per_s"] for h in r["history"]])) for r in runs])
    m["base_params"] = out["base_meta"]["params"]
    return m


def rl_evals(cfg: RLConfig, out: dict) -> dict:
    """``evals`` records: the base (same records as the lab chapter), each RL model and each SFT baseline."""
    eset, smp = eval_set(cfg), lab.samplings(cfg.base)
    seeds = out["seeds"]
    recs = dict(eval_record(out["paths"]["base"], eset, smp[name], out["base"][name], seeds) for name in lab.SETTINGS)
    for i, s in enumerate(seeds):
        for name in lab.SETTINGS:
            eid, rec = eval_record(out["paths"]["rl"][i], eset, smp[name], [out["rl"][name][i]], [s])
            recs[eid] = rec
        for kind in SFT_KINDS:
            eid, rec = eval_record(out["paths"][f"sft_{kind}"][i], eset, smp["r1"], [out[f"sft_{kind}"]["r1"][i]], [s])
            recs[eid] = rec
    pk_set, pk_smp = passk_set(cfg), passk_sampling(cfg)
    eid, rec = eval_record(out["paths"]["base"], pk_set, pk_smp, out["passk_base"], [0])
    recs[eid] = rec
    for i, s in enumerate(seeds):
        eid, rec = eval_record(out["paths"]["rl"][i], pk_set, pk_smp, [out["passk_rl"][i]], [s])
        recs[eid] = rec
    return recs


def rl_extra(out: dict) -> dict:
    """Curves and samples for the chapter's figures (read back from the results file)."""

    def curves(runs):
        return [
            {"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"]} for r in runs
        ]

    return {
        "runs": curves(out["runs"]),
        "ablation": curves(out["ablation"]),
        "samples_base": out["base"]["r1"][0].samples,
        "samples_rl": out["rl"]["r1"][0].samples,
        "samples_base_t1": out["base"]["t1"][0].samples,
        "samples_rl_t1": out["rl"]["t1"][0].samples,
        "samples_sft_worked": out["sft_worked"]["r1"][0].samples,
        "sft_steps": {k: [s["steps"] for s in out["sft"][k]] for k in SFT_KINDS},
    }


def total_flops(out: dict) -> float:
    """FLOPs this chapter spent training (RL runs, ablation, SFT baselines) and sampling evaluations (2·N per token)."""
    train_flops = sum(r["flops"] for r in out["runs"] + out["ablation"])
    train_flops += sum(s["flops"] for k in SFT_KINDS for s in out["sft"][k])
    toks = sum(
        r.tokens_generated
        for by in (out["base"], out["rl"], out["sft_answers"], out["sft_worked"])
        for runs in by.values()
        for r in runs
    )
    toks += sum(r.tokens_generated for r in out["passk_base"] + out["passk_rl"])
    return float(train_flops + 2.0 * out["base_meta"]["params"] * toks)


def run(cfg: RLConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """The RL chapter: GRPO per seed, the KL-on ablation, two SFT baselines, evaluations."""
    out = run_experiment(cfg, seeds)
    return ChapterResult(
        metrics=rl_metrics(out), config=cfg, evals=rl_evals(cfg, out), extra=rl_extra(out), flops=total_flops(out)
    )


# ----------------------------------------------------------------------------- verdict
def verdicts(m: dict, cfg: RLConfig | None = None) -> list[dict]:
    """``rl-vanilla-to-reasoner`` by its rule in data/claims.yml; the evidence states the numbers."""
    f = stats.fmt
    task = f"{cfg.difficulty}-digit {cfg.task}" if cfg is not None else "3-digit addition"
    best = SFT_KINDS[int(m["best_baseline"])] if "best_baseline" in m else "worked"
    kmax = max(m["base_pass_at_k_lenient"], key=int)
    best_name = "worked solutions" if best == "worked" else "answers only"
    ev = (
        f"At R1's sampling (T = 0.6, top-p 0.95) held-out strict pass@1 went from {f(m['base_pass_at_1_r1'])} "
        f"(base) to {f(m['rl_pass_at_1_r1'])} (GRPO, 3 seeds): paired gain {f(m['rl_vs_base_pass_at_1_r1'])}; "
        f"lenient (any final answer) {f(m['base_pass_at_1_lenient_r1'])} -> {f(m['rl_pass_at_1_lenient_r1'])}, "
        f"gain {f(m['rl_vs_base_pass_at_1_lenient_r1'])}. Greedy strict {f(m['base_pass_at_1_greedy'])} -> "
        f"{f(m['rl_pass_at_1_greedy'])}; T = 1 {f(m['base_pass_at_1_t1'])} -> {f(m['rl_pass_at_1_t1'])}. "
        f"Against the best equal-FLOPs baseline (SFT on {best_name}, "
        f"{f(m[f'sft_{best}_pass_at_1_r1'])}) RL is {f(m['rl_vs_best_baseline_pass_at_1_r1'])}; SFT on answers "
        f"only (a weak baseline that removes the reasoning) reaches {f(m['sft_answers_pass_at_1_r1'])}. "
        f"Lenient pass@{kmax} at T = 1: RL − base {f(m[f'rl_vs_base_pass_at_{kmax}_lenient'])}. "
        f"Caveat: the pretraining corpus planted the behaviour (worked solutions and a few R1-format "
        f"transcripts), so RL here selects a mode the base already had; a "
        f"{m['base_params'] / 1e6:.2f}M-parameter model on {task}, not AIME."
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
    "sft_path",
    "sft_pairs",
    "run_experiment",
    "rl_metrics",
    "rl_evals",
    "rl_extra",
    "total_flops",
    "run",
    "verdicts",
    "REWARD_FUNCS",
]
