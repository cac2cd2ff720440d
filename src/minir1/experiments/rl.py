"""The R1-Zero experiment in miniature: GRPO with rule-based rewards on the lab's base.

R1-Zero applied GRPO directly to a base model with two rule-based rewards — accuracy
(the answer inside ``<answer>`` tags is checked by a program) and format (reasoning
inside ``<think>`` tags).  This module runs that recipe on our base model and the
comparisons a skeptic asks for: several seeds; held-out strict *and* lenient accuracy
(so format learning is not mistaken for reasoning); pass@k from 1 to 64 for base and
RL (does RL sharpen what the base could already do, or expand it?); an ablation with the
KL penalty on; and supervised fine-tuning on answers at equal compute.

Deviations from R1, besides scale: the compact prompt template (see
:mod:`minir1.tokenizer`), a learning rate suited to a tiny from-scratch model, G = 8,
ε = 0.2, and β = 0 in the main runs (TRL's default; the ablation uses DeepSeekMath's
β = 0.04).  See :class:`minir1.grpo.GRPOConfig` for each value and its source.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .. import artifacts, models
from . import lab
from ..evaluation import evaluate, pass_at_k
from ..grpo import GRPOConfig, train_grpo
from ..profiles import check_profile
from ..results import claim, metric
from ..rewards import accuracy_reward, format_reward
from ..tasks import get_task
from ..train import TrainConfig, train
from ..utils import device, seed_everything



@dataclass(frozen=True)
class RLConfig:
    task: str = "addition"          # the lab task RL trains on
    difficulty: int = 3             # digits per operand
    grpo: GRPOConfig = field(default_factory=lambda: GRPOConfig(
        group_size=8, batch_size=64, steps=80, lr=5e-5, kl_coef=0.0, max_completion_length=64,
        eval_every=20, log_every=10, reward_weights=(1.0, 1.0)))
    ablation_kl_coef: float = 0.04  # β of the KL-on ablation (DeepSeekMath's value; R1 used 0.001)
    n_train: int = 4000             # train-split problems RL draws prompts from
    n_eval: int = 200               # held-out problems for the learning curves
    eval_samples: int = 4           # samples per held-out problem at each curve point (T = 1)
    n_passk: int = 64               # held-out problems for the pass@k curves
    passk_samples: int = 64         # samples per problem for pass@k (k = 1..64)


RL_PROFILES: dict[str, RLConfig] = {
    "smoke": RLConfig(grpo=GRPOConfig(group_size=4, batch_size=16, steps=4, lr=5e-5, max_completion_length=32,
                                      eval_every=2, log_every=0, reward_weights=(1.0, 1.0)),
                      n_train=64, n_eval=8, eval_samples=2, n_passk=8, passk_samples=8),
    "cpu": RLConfig(),
    "gpu": RLConfig(grpo=GRPOConfig(group_size=16, batch_size=256, steps=300, lr=2e-5, max_completion_length=96,
                                    eval_every=25, log_every=10, reward_weights=(1.0, 1.0)),
                    n_train=20000, n_eval=500, eval_samples=8, n_passk=300, passk_samples=64),
}

REWARD_FUNCS = (accuracy_reward, format_reward)  # R1-Zero: accuracy + format, both rule-based


def rl_config(profile: str) -> RLConfig:
    return RL_PROFILES[check_profile(profile)]


def problems(cfg: RLConfig, split: str, n: int, seed: int = 1234):
    return get_task(cfg.task, cfg.difficulty).sample(split, n, seed=seed)


def curve_eval(cfg: RLConfig, tokenizer, eval_problems, seed: int):
    """``eval_fn`` for GRPO: sampled held-out strict/lenient pass@1 and mean length."""
    def fn(model):
        r = evaluate(model, tokenizer, eval_problems, n_samples=cfg.eval_samples, temperature=1.0, seed=seed,
                     ks=(1,), max_new_tokens=cfg.grpo.max_completion_length)
        return {"pass_at_1": r.acc, "pass_at_1_lenient": r.acc_lenient, "format_rate": r.format_rate,
                "mean_len": r.tokens_generated / (len(r.correct) * r.n_samples),
                "mean_len_correct": r.mean_len_correct, "mean_len_incorrect": r.mean_len_incorrect}
    return fn


def _build_rl(profile: str, cfg: RLConfig, gcfg: GRPOConfig, seed: int):
    def build(folder):
        model, tok, _ = lab.base_model(profile)
        seed_everything(seed)
        train_set = problems(cfg, "train", cfg.n_train, seed=seed)
        res = train_grpo(model, tok, train_set, list(REWARD_FUNCS), gcfg, seed=seed,
                         eval_fn=curve_eval(cfg, tok, problems(cfg, "test", cfg.n_eval), seed=10_000 + seed))
        models.save(model.cpu(), tok, folder)
        n = models.n_params(model)
        tokens = sum(h["tokens"] for h in res.history)
        # Sampling (2N per token) + policy forward/backward (6N) + reference forward when logged (2N).
        flops = tokens * n * (2 + 6 + (2 if gcfg.kl_coef > 0 or gcfg.log_kl else 0))
        return {"history": res.history, "evals": res.evals, "flops": float(flops), "params": n,
                "wall_seconds": res.history[-1]["wall_s"] if res.history else 0.0}
    return build


def rl_model(profile: str, seed: int = 0, *, kl_coef: float | None = None, force: bool = False):
    """``(model, tokenizer, meta)`` of a GRPO run from the lab base (cached; trained if missing)."""
    cfg = rl_config(profile)
    gcfg = cfg.grpo if kl_coef is None else replace(cfg.grpo, kl_coef=kl_coef)
    conf = {"profile": profile, "task": cfg.task, "difficulty": cfg.difficulty, "grpo": asdict(gcfg),
            "n_train": cfg.n_train, "n_eval": cfg.n_eval, "eval_samples": cfg.eval_samples, "seed": seed,
            "base": asdict(lab.lab_config(profile))}  # what shapes the model and its curves
    path = artifacts.cached("rl", conf, _build_rl(profile, cfg, gcfg, seed), force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)


def sft_answers_model(profile: str, seed: int, flops_budget: float):
    """SFT on correct answers in R1's format, no reasoning (``<think></think> <answer>936</answer>``),
    for as many steps as fit in ``flops_budget`` (6·N per trained token)."""
    cfg = rl_config(profile)
    model, tok, meta = lab.base_model(profile)
    train_set = problems(cfg, "train", cfg.n_train, seed=seed)
    pairs = [(_prompt(tok, p.question), f" <think></think> <answer>{p.answer}</answer>") for p in train_set]
    tokens_per_example = np.mean([len(tok.encode(c)) + 1 for _, c in pairs[:200]])  # completion + eos
    batch = cfg.grpo.batch_size
    steps = max(1, int(flops_budget / (6 * meta["params"] * tokens_per_example * batch)))
    tcfg = TrainConfig(steps=steps, batch_size=batch, lr=cfg.grpo.lr * 10, warmup_steps=min(10, steps),
                       seed=seed, desc="SFT answers", progress=False, log_every=max(1, steps // 5))
    res = train(model, tok, pairs, tcfg)
    return model, tok, {"steps": steps, "flops": 6.0 * meta["params"] * res.tokens, "history": res.history}


def _prompt(tok, question: str) -> str:
    from ..tokenizer import format_prompt

    return format_prompt(tok, question)


def passk_curve(model, tokenizer, cfg: RLConfig, seed: int = 0) -> dict:
    """pass@k for k = 1, 2, 4, ..., ``passk_samples`` (strict and lenient) on held-out problems."""
    probs = problems(cfg, "test", cfg.n_passk, seed=4321)
    n = cfg.passk_samples
    r = evaluate(model, tokenizer, probs, n_samples=n, temperature=1.0, seed=seed, ks=(1,),
                 max_new_tokens=cfg.grpo.max_completion_length)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    return {"k": ks,
            "strict": [float(np.mean([pass_at_k(n, c, k) for c in r.correct])) for k in ks],
            "lenient": [float(np.mean([pass_at_k(n, c, k) for c in r.correct_lenient])) for k in ks],
            "tokens": r.tokens_generated, "samples": r.samples}


# ----------------------------------------------------------------------------- the chapter
CURVE_KEYS = ("step", "reward", "reward_accuracy_reward", "reward_format_reward", "acc_strict", "acc_lenient",
              "len", "len_correct", "len_incorrect", "kl", "clip_frac", "frac_zero_std", "tok_per_s")


def run_experiment(profile: str, seeds=(0, 1, 2)) -> dict:
    """Everything the RL chapter measures, for ``seeds``: GRPO runs (β = 0), the KL-on
    ablation, SFT-on-answers at equal compute, and pass@k curves for base and RL."""
    cfg = rl_config(profile)
    base, tok, base_meta = lab.base_model(profile)
    out = {"runs": [], "ablation": [], "sft": [], "passk_rl": [], "samples_rl": []}
    for s in seeds:
        model, _, meta = rl_model(profile, s)
        out["runs"].append(meta)
        pk = passk_curve(model, tok, cfg, seed=s)
        out["passk_rl"].append(pk)
        out["samples_rl"].append(pk.pop("samples"))
        out["ablation"].append(rl_model(profile, s, kl_coef=cfg.ablation_kl_coef)[2])
        sft, _, sft_meta = sft_answers_model(profile, s, flops_budget=meta["flops"])
        r = evaluate(sft, tok, problems(cfg, "test", cfg.n_eval), n_samples=cfg.eval_samples, temperature=1.0,
                     seed=10_000 + s, ks=(1,), max_new_tokens=cfg.grpo.max_completion_length)
        out["sft"].append({**sft_meta, "pass_at_1": r.acc, "pass_at_1_lenient": r.acc_lenient})
    pk = passk_curve(base, tok, cfg, seed=0)
    out["samples_base"] = pk.pop("samples")
    out["passk_base"] = pk
    out["base_params"] = base_meta["params"]
    return out


def _per_seed(runs: list[dict], key: str, at: int) -> list[float]:
    return [float(r["evals"][at][key]) for r in runs]


def rl_metrics(out: dict) -> dict:
    """Results-file metrics of :func:`run_experiment` (per-seed values, t-intervals over seeds)."""
    runs, abl = out["runs"], out["ablation"]
    m = {f"base_{k}": metric(_per_seed(runs, k, 0)) for k in ("pass_at_1", "pass_at_1_lenient", "format_rate", "mean_len")}
    m |= {f"rl_{k}": metric(_per_seed(runs, k, -1)) for k in ("pass_at_1", "pass_at_1_lenient", "format_rate", "mean_len")}
    m |= {f"rl_kl_{k}": metric(_per_seed(abl, k, -1)) for k in ("pass_at_1", "pass_at_1_lenient", "mean_len")}
    m["gain_pass_at_1"] = metric([a - b for a, b in zip(_per_seed(runs, "pass_at_1", -1), _per_seed(runs, "pass_at_1", 0))])
    m["gain_pass_at_1_lenient"] = metric([a - b for a, b in zip(_per_seed(runs, "pass_at_1_lenient", -1),
                                                                 _per_seed(runs, "pass_at_1_lenient", 0))])
    m["sft_answers_pass_at_1"] = metric([s["pass_at_1"] for s in out["sft"]])
    m["sft_answers_pass_at_1_lenient"] = metric([s["pass_at_1_lenient"] for s in out["sft"]])
    ks = out["passk_base"]["k"]
    for kind in ("strict", "lenient"):
        suffix = "" if kind == "strict" else "_lenient"
        m[f"base_pass_at_k{suffix}"] = {str(k): out["passk_base"][kind][i] for i, k in enumerate(ks)}
        m[f"rl_pass_at_k{suffix}"] = {str(k): metric([p[kind][i] for p in out["passk_rl"]]) for i, k in enumerate(ks)}
    m["rl_flops_per_run"] = metric([r["flops"] for r in runs])
    m["rl_wall_seconds_per_run"] = metric([r["wall_seconds"] for r in runs])
    m["rl_tokens_per_s"] = metric([float(np.mean([h["tok_per_s"] for h in r["history"]])) for r in runs])
    m["base_params"] = out["base_params"]
    return m


def rl_extra(out: dict) -> dict:
    """Curves and samples for the chapter's figures (read back from the results file)."""
    def curves(runs):
        return [{"history": [{k: h.get(k) for k in CURVE_KEYS} for h in r["history"]], "evals": r["evals"]}
                for r in runs]
    return {"runs": curves(out["runs"]), "ablation": curves(out["ablation"]),
            "samples_base": out["samples_base"], "samples_rl": out["samples_rl"][0],
            "sft_steps": [s["steps"] for s in out["sft"]]}


def total_flops(out: dict) -> float:
    """FLOPs this chapter spent (RL runs, ablation, SFT; evaluation sampling excluded)."""
    return float(sum(r["flops"] for r in out["runs"] + out["ablation"]) + sum(s["flops"] for s in out["sft"]))


def _ci(m: dict, pct: bool = True) -> str:
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.1f}")
    return f"{f(m['mean'])}{'%' if pct else ''} [{f(m['ci95'][0])}, {f(m['ci95'][1])}]"


def verdicts(m: dict, cfg: RLConfig) -> list[dict]:
    """``rl-vanilla-to-reasoner`` from the metrics.

    supported: held-out strict pass@1 *and* lenient pass@1 both rise (95% CIs of the per-seed
    gains above 0) — the model did not just learn the tags; partly supported: only the strict
    (format-dependent) accuracy rises; not supported: no reliable strict gain.  The evidence
    also says whether RL expanded pass@64 or only sharpened pass@1.
    """
    strict_up = m["gain_pass_at_1"]["ci95"][0] > 0
    lenient_up = m["gain_pass_at_1_lenient"]["ci95"][0] > 0
    verdict = "supported" if strict_up and lenient_up else ("partly supported" if strict_up else "not supported")
    kmax = max(m["base_pass_at_k"], key=int)
    base_k, rl_k = m["base_pass_at_k_lenient"][kmax], m["rl_pass_at_k_lenient"][kmax]
    scope = ("expanded" if rl_k["ci95"][0] > base_k else "did not expand")
    ev = (f"Held-out strict pass@1 went from {_ci(m['base_pass_at_1'])} to {_ci(m['rl_pass_at_1'])} and lenient "
          f"pass@1 from {_ci(m['base_pass_at_1_lenient'])} to {_ci(m['rl_pass_at_1_lenient'])} "
          f"(mean length {m['base_mean_len']['mean']:.1f} -> {m['rl_mean_len']['mean']:.1f} tokens); "
          f"RL {scope} lenient pass@{kmax} ({100 * base_k:.1f}% base vs {_ci(rl_k)}), "
          f"on a {m['base_params'] / 1e6:.2f}M-parameter model and {cfg.difficulty}-digit {cfg.task}, not AIME.")
    return [claim("rl-vanilla-to-reasoner", verdict, ev)]
