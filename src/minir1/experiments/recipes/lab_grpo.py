"""Recipe: R1-Zero's GRPO on the lab base — the RL chapter's easy case and the distillation teacher.

GRPO with rule-based accuracy + format rewards on the lab's base (:mod:`.base`) and the lab's
3-digit addition.  :func:`grpo_path` returns the artifact of one seed's run, training it the
first time (once, under a lock, whichever chapter asks first).

Deviations from R1, besides scale: the compact prompt template (see :mod:`minir1.tokenizer`), a
learning rate suited to a tiny from-scratch model, G = 8, ε = 0.2, and β = 0 (TRL's default).
See :class:`minir1.grpo.GRPOConfig` for each value and its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ... import artifacts, models
from ...evaluation import EvalSet, evaluate
from ...grpo import GRPOConfig, train_grpo
from ...rewards import accuracy_reward, format_reward
from ...tasks import get_task
from ...utils import device, seed_everything
from . import base
from .base import LabConfig


@dataclass(frozen=True)
class LabGRPOConfig:
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
    engine: str = "minir1"  # "minir1" (minir1.grpo, the book's code) or "trl" (trl.GRPOTrainer)
    dry_run: bool = False  # two GRPO steps, tiny evaluations (tests)


PROFILES: dict[str, LabGRPOConfig] = {
    "smoke": LabGRPOConfig(
        base=base.PROFILES["smoke"],
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
    ),
    "cpu": LabGRPOConfig(base=base.PROFILES["cpu"]),
    "gpu": LabGRPOConfig(
        base=base.PROFILES["gpu"],
        grpo=GRPOConfig(
            group_size=16,  # R1's G
            batch_size=512,  # 32 prompts x 16: R1's batch
            steps=200,
            lr=2e-5,
            max_completion_length=96,
            eval_every=25,
            log_every=10,
            reward_weights=(1.0, 1.0),
            gen_batch_size=512,
        ),
        n_train=20000,
        n_eval=500,
        eval_samples=4,
    ),
}

REWARD_FUNCS = (accuracy_reward, format_reward)  # R1-Zero: accuracy + format, both rule-based


def dry_run(cfg: LabGRPOConfig) -> LabGRPOConfig:
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
    return replace(cfg, base=base.dry_run(cfg.base), grpo=g, n_train=8, n_eval=2, eval_samples=2, dry_run=True)


def problems(cfg: LabGRPOConfig, split: str, n: int, seed: int = 1234):
    return get_task(cfg.task, cfg.difficulty).sample(split, n, seed=seed)


def eval_set(cfg: LabGRPOConfig) -> EvalSet:
    """The held-out problems the RL task is scored on: the lab's, for the RL task."""
    return base.eval_set(cfg.base, cfg.task, cfg.difficulty)


def curve_eval(cfg: LabGRPOConfig, tokenizer, eval_problems, seed: int):
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


# ----------------------------------------------------------------------------- the trained model
ENGINES = ("minir1", "trl")


def trainer(engine: str):
    """The GRPO implementation that runs the recipe: ours (:func:`minir1.grpo.train_grpo`), or
    TRL's ``GRPOTrainer`` through :func:`minir1.grpo_trl.train_grpo_trl` (same arguments; the
    route to accelerate on several GPUs and to vLLM generation where installed)."""
    if engine == "minir1":
        return train_grpo
    if engine == "trl":
        from ...grpo_trl import train_grpo_trl  # optional dependency: pip install trl

        return train_grpo_trl
    raise ValueError(f"LabGRPOConfig.engine must be one of {ENGINES}; got {engine!r}")


def _build_rl(cfg: LabGRPOConfig, gcfg: GRPOConfig, seed: int):
    train_fn = trainer(cfg.engine)

    def build(folder):
        model, tok, _ = base.pretrained_model(cfg.base)
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


def grpo_path(cfg: LabGRPOConfig, seed: int = 0, *, kl_coef: float | None = None, force: bool = False) -> Path:
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
        "base": {k: v for k, v in asdict(cfg.base).items() if k in base.BUILD_FIELDS},
    }  # what shapes the model and its curves
    return artifacts.cached("rl", conf, _build_rl(cfg, gcfg, seed), force=force)


def grpo_model(cfg: LabGRPOConfig, seed: int = 0, *, kl_coef: float | None = None, force: bool = False):
    """``(model, tokenizer, meta)`` of a GRPO run from the lab base (cached; trained if missing)."""
    path = grpo_path(cfg, seed, kl_coef=kl_coef, force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)
