"""The RL chapter's hard task: does GRPO teach reasoning, or surface what pretraining planted?

The lab's 3-digit task is too easy to tell sharpening from learning (lenient pass@64 is 100% for
base and RL alike).  Here a smaller base is pretrained inside the chapter on a harder task, chosen
so that it has room at both ends: strict pass@1 at R1's sampling between 2% and 30% and pass@256
below 95% on a *validation* split (train-split problems drawn with their own seed; the held-out
test split is never used to choose the setting).  Two bases differ only in
``CorpusConfig.behaviour_rate`` (the share of worked solutions that check a result or say "wait"
and redo a step, same token budget): ``plain`` and ``primed``.  On them, with one GRPO config and
three seeds per condition:

* reward controls on the plain base (Shao et al. 2025, "Spurious Rewards"): the true accuracy
  reward, a random Bernoulli(0.5) reward, a format-only reward, and a reward for incorrect answers;
* the loss (Liu et al. 2025, Dr. GRPO): ``grpo`` against ``dr_grpo``, length split by correctness;
* priming (Gandhi et al. 2025): the true reward on the primed base, behaviour rates over steps;
* sharpen or expand (Yue et al. 2025): pass@k for k = 1..256 on held-out problems;
* baselines stopped at the FLOPs one GRPO run spent (within 5%): rejection-sampling fine-tuning on
  the base's own verified samples (RFT / STaR) and SFT on correct worked solutions
  (:mod:`minir1.experiments.rl_hard_task_baselines`).

Seeds and bases (issue 24): the arms that decide the verdict (true and random reward, RFT, SFT,
the primed base's true reward, and the bases) run on ``n_bases`` hard-task bases x
``seeds_per_base`` seeds: base 0 is the continued pretraining the second edition used, bases 1..
continue the *same* lab base on a corpus drawn with another seed and batches in another order (the
lab base itself is shared: pretraining three costs 3 x 8 CPU minutes).  The other controls (format,
incorrect, dr_grpo, the clip control) stay on base 0.  Every GRPO run logs its reward components
(accuracy, format) per step and its spent FLOPs (:mod:`minir1.flops`).

Deviations from the papers, besides scale: each condition optimises one reward function (the true
reward is the strict accuracy reward, which already requires R1's tags, so it pays for format too);
the behaviour detector is two regular expressions (:mod:`minir1.behaviours`), not an LLM judge.
With one optimizer step per rollout batch (``num_iterations = 1``, DeepSeekMath's μ) the policy
ratio is exactly 1 when the loss is computed, so the ratio clip never binds (``clip_frac`` = 0):
the clipping bias Shao et al. blame for spurious-reward gains cannot act in those runs.  The clip
control therefore repeats the random-reward run with μ = 2 (the second optimizer step on a batch
sees a ratio that has moved), once with the clip (ε = 0.2) and once without it (ε = 1e9).

The bases are a recipe (:mod:`minir1.experiments.recipes.hard_task`).  This module defines the
conditions and trains them; :mod:`minir1.experiments.rl_hard_task_scores` evaluates and scores them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from .. import artifacts, behaviours, flops, models
from ..evaluation import EvalSet, Sampling, evaluate
from ..grpo import GRPOConfig, train_grpo
from ..rewards import accuracy_reward, format_reward, incorrect_reward, make_random_reward
from ..tasks import get_task
from ..utils import seed_everything
from .recipes import base as lab_base
from .recipes import hard_task
from .recipes.base import LabConfig
from .recipes.hard_task import BASES, hard_base_config

REWARDS = ("true", "random", "format", "incorrect")  # Shao et al.'s controls
LOSS_TYPES = ("grpo", "dr_grpo")  # Liu et al.: per-sequence 1/|o| normalisation, or none
VALID_SEED = 777  # validation problems: train split, their own seed (never the test split)
HELDOUT_SEED = lab_base.EVAL_SEED  # held-out test problems (verdict, pass@k)
CURVE_SEED = 2468  # held-out problems scored during training (curves)
R1_T, R1_TOP_P = 0.6, 0.95  # R1's evaluation sampling (DeepSeek-AI 2025, §3.1)


@dataclass(frozen=True)
class HardTaskConfig:
    base: LabConfig = field(
        default_factory=lambda: hard_base_config("micro", "multiplication", 3, 100, 20_000)
    )  # the plain base's corpus
    start: LabConfig | None = field(
        default_factory=lambda: lab_base.PROFILES["cpu"]
    )  # base continued from (None: scratch)
    primed_behaviour_rate: float = 0.3  # share of worked solutions that check / redo in the primed base
    task: str = "multiplication"  # a x m, m in 2..9: the lab base never saw it; chosen on the validation split
    difficulty: int = 3  # digits of the first operand
    grpo: GRPOConfig = field(
        default_factory=lambda: GRPOConfig(
            group_size=8,
            batch_size=64,  # 8 prompts x G
            steps=30,  # CPU budget: 18 runs
            lr=5e-5,  # replaced by the lr_candidates rule (choose_lr) before any run is scored
            max_completion_length=64,
            eval_every=10,
            log_every=0,
            log_kl=False,
        )
    )
    n_train: int = 4000  # train-split problems GRPO draws prompts from
    n_curve: int = 64  # held-out problems scored during training
    curve_samples: int = 2  # samples per curve problem (R1's sampling)
    n_valid: int = 48  # validation problems that check the base has room (train split, own seed)
    valid_samples: int = 256  # samples per validation problem (pass@256)
    n_heldout: int = 200  # held-out test problems for the verdict
    heldout_samples: int = 4  # samples per held-out problem at R1's sampling (pass@1 estimate)
    t1_samples: int = 2  # samples per held-out problem at T = 1 (a variant of the verdict)
    n_passk: int = 100  # held-out test problems for pass@k (Yue et al. use benchmarks of 30-500 problems)
    passk_samples: int = 128  # samples per pass@k problem (each base and its seed-0 true-reward RL)
    rft_samples: int = 8  # RFT: samples per train problem, kept when verified correct (STaR)
    rft_problems: int = 500  # RFT: train problems sampled (its sampling is charged to its FLOPs budget)
    baseline_batch: int = 32  # the baselines' batch (finer steps: they stop closer to GRPO's FLOPs)
    n_bases: int = 3  # hard-task bases for the deciding arms (base 0 and continued-pretraining variants)
    seeds_per_base: int = 2  # GRPO / baseline seeds per base for the deciding arms
    control_seeds: int = 3  # seeds of the non-deciding controls (format, incorrect, dr_grpo), base 0
    clip_seeds: int = 2  # seeds of the clip control (random reward, μ > 1, clip on / off), base 0
    sft_lr_mult: float = 10.0  # SFT baselines' lr as a multiple of GRPO's
    # GRPO's learning rate is chosen by a rule written before the runs (choose_lr): seed 0, true reward,
    # plain base, at each candidate; the best strict pass@1 at R1's sampling on the *validation* split
    # wins (ties: the smaller lr). The easy case's 5e-5, and twice it.
    lr_candidates: tuple[float, ...] = (5e-5, 1e-4)
    lr_valid_samples: int = 16  # samples per validation problem when choosing the lr
    clip_mu: int = 2  # the clip control's optimizer steps per rollout batch (μ; the other runs use cfg.grpo's)
    dry_run: bool = False

    def __post_init__(self):
        if not 0 <= self.primed_behaviour_rate <= 1:
            raise ValueError(f"primed_behaviour_rate must be in [0, 1]; got {self.primed_behaviour_rate!r}")
        if not self.lr_candidates or min(self.lr_candidates) <= 0:
            raise ValueError(f"lr_candidates must be positive learning rates; got {self.lr_candidates!r}")
        if self.lr_valid_samples < 1:
            raise ValueError(f"lr_valid_samples must be >= 1; got {self.lr_valid_samples!r}")
        for name in ("n_bases", "seeds_per_base", "control_seeds", "clip_seeds", "heldout_samples", "t1_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if not isinstance(self.clip_mu, int) or self.clip_mu < 2:
            raise ValueError(f"clip_mu must be an int >= 2 (with μ = 1 the clip cannot bind); got {self.clip_mu!r}")


def dry_run(cfg: HardTaskConfig) -> HardTaskConfig:
    """``cfg``'s model shapes, two GRPO steps, tiny evaluations (tests)."""
    # batch 8: the baselines (one worked solution ~ 7% of this run) can stop within 5% of its FLOPs
    g = replace(cfg.grpo, steps=2, group_size=2, batch_size=8, eval_every=1, max_completion_length=12)
    return replace(
        cfg,
        base=lab_base.dry_run(cfg.base),
        start=None if cfg.start is None else lab_base.dry_run(cfg.start),
        grpo=g,
        n_train=8,
        n_curve=2,
        curve_samples=2,
        n_valid=2,
        valid_samples=4,
        n_heldout=3,
        heldout_samples=2,
        t1_samples=2,
        n_passk=3,
        passk_samples=4,
        rft_samples=2,
        rft_problems=4,
        baseline_batch=2,
        n_bases=2,
        lr_candidates=cfg.lr_candidates[:1],
        lr_valid_samples=2,
        dry_run=True,
    )


def _smoke_base(bc: LabConfig) -> LabConfig:
    """The smoke profile's bases: 4 continued-pretraining steps of 16 windows (the notebook's CI budget)."""
    return replace(bc, train=replace(bc.train, steps=4, batch_size=16))


PROFILES: dict[str, HardTaskConfig] = {
    "smoke": HardTaskConfig(
        start=lab_base.PROFILES["smoke"],
        base=_smoke_base(hard_base_config("nano", "multiplication", 3, 10, 600)),
        grpo=replace(
            HardTaskConfig().grpo, group_size=4, batch_size=16, steps=2, lr=1e-4, max_completion_length=32, eval_every=1
        ),
        n_train=64,
        n_curve=4,
        curve_samples=2,
        n_valid=8,
        valid_samples=16,
        n_heldout=8,
        heldout_samples=2,
        t1_samples=2,
        n_passk=8,
        passk_samples=16,
        rft_samples=2,
        rft_problems=16,
        baseline_batch=8,
        n_bases=2,  # the fewest the hierarchical interval takes (smoke: every code path, not the numbers)
        seeds_per_base=1,
        control_seeds=1,
        clip_seeds=1,
        lr_candidates=(1e-4,),
        lr_valid_samples=2,
    ),
    "cpu": HardTaskConfig(),
    "gpu": HardTaskConfig(
        start=lab_base.PROFILES["gpu"],
        base=hard_base_config("small", "multiplication", 4, 1000, 100_000),
        grpo=replace(HardTaskConfig().grpo, group_size=16, batch_size=256, steps=100, eval_every=20, log_every=10),
        n_train=20_000,
        n_curve=200,
        curve_samples=4,
        n_valid=200,
        difficulty=4,
        n_heldout=500,
        heldout_samples=8,
        t1_samples=8,
        n_passk=200,
        passk_samples=256,
        baseline_batch=64,
        rft_problems=5000,
        control_seeds=3,
        clip_seeds=3,
    ),
}


# ----------------------------------------------------------------------------- bases and problem sets
def base_cfg(cfg: HardTaskConfig, kind: str, index: int = 0) -> LabConfig:
    """The LabConfig of hard base ``index``, ``plain`` or ``primed`` (same corpus size and steps)."""
    return hard_task.kind_config(hard_task.indexed(cfg.base, index), kind, cfg.primed_behaviour_rate)


def hard_base_path(cfg: HardTaskConfig, kind: str, index: int = 0) -> Path:
    """Hard base ``index`` (``plain`` or ``primed``): ``cfg.start`` (the lab's base) pretrained further
    on ``cfg.base``'s corpus (:func:`minir1.experiments.recipes.hard_task.continued_path`)."""
    return hard_task.continued_path(cfg.start, base_cfg(cfg, kind, index))


def hard_base_model(cfg: HardTaskConfig, kind: str, index: int = 0):
    """``(model, tokenizer, meta)`` of hard base ``index`` (trained if missing)."""
    return hard_task.continued_model(cfg.start, base_cfg(cfg, kind, index))


def valid_set(cfg: HardTaskConfig) -> EvalSet:
    return EvalSet(task=cfg.task, difficulty=cfg.difficulty, n=cfg.n_valid, split="train", seed=VALID_SEED)


def heldout_set(cfg: HardTaskConfig) -> EvalSet:
    return EvalSet(task=cfg.task, difficulty=cfg.difficulty, n=cfg.n_heldout, split="test", seed=HELDOUT_SEED)


def passk_set(cfg: HardTaskConfig) -> EvalSet:
    return EvalSet(task=cfg.task, difficulty=cfg.difficulty, n=cfg.n_passk, split="test", seed=HELDOUT_SEED)


def curve_set(cfg: HardTaskConfig) -> EvalSet:
    return EvalSet(task=cfg.task, difficulty=cfg.difficulty, n=cfg.n_curve, split="test", seed=CURVE_SEED)


def r1_many(cfg: HardTaskConfig, n: int) -> Sampling:
    """R1's sampling with ``n`` samples per problem and pass@k at powers of two up to n."""
    ks = tuple(2**i for i in range(0, 9) if 2**i <= n)
    return Sampling(n_samples=n, temperature=R1_T, top_p=R1_TOP_P, max_new_tokens=cfg.grpo.max_completion_length, ks=ks)


def samplings(cfg: HardTaskConfig) -> dict[str, Sampling]:
    """Greedy, R1's (T = 0.6, top-p 0.95, ``heldout_samples``) and T = 1 (``t1_samples``)."""
    smp = lab_base.samplings(replace(cfg.base, max_new_tokens=cfg.grpo.max_completion_length))
    n = {"r1": cfg.heldout_samples, "t1": cfg.t1_samples}
    return {
        k: replace(v, n_samples=n[k], ks=tuple(x for x in v.ks if x <= n[k])) if k in n else v for k, v in smp.items()
    }


def train_problems(cfg: HardTaskConfig, seed: int):
    return get_task(cfg.task, cfg.difficulty).sample("train", cfg.n_train, seed=seed)


# ----------------------------------------------------------------------------- GRPO runs
def reward_funcs(reward: str, seed: int) -> list:
    """The reward function(s) of a condition (see :data:`REWARDS`)."""
    if reward == "true":
        return [accuracy_reward]
    if reward == "random":
        return [make_random_reward(0.5, seed=seed)]
    if reward == "format":
        return [format_reward]
    if reward == "incorrect":
        return [incorrect_reward]
    raise ValueError(f"reward must be one of {REWARDS}; got {reward!r}")


def curve_eval(cfg: HardTaskConfig, tok, seed: int):
    """``eval_fn`` for GRPO: held-out strict/lenient pass@1, format rate, length and behaviour rates
    (first sample of each curve problem) at R1's sampling."""
    probs = curve_set(cfg).problems()

    def fn(model):
        r = evaluate(
            model,
            tok,
            probs,
            n_samples=cfg.curve_samples,
            temperature=R1_T,
            top_p=R1_TOP_P,
            seed=seed,
            ks=(1,),
            max_new_tokens=cfg.grpo.max_completion_length,
            n_show=len(probs),
        )
        rates = behaviours.rates([s["completion"] for s in r.samples])
        return {
            "pass_at_1": r.acc,
            "pass_at_1_lenient": r.acc_lenient,
            "format_rate": r.format_rate,
            "mean_len": r.tokens_generated / (len(r.correct) * r.n_samples),
            **{f"rate_{b}": v for b, v in rates.items()},
        }

    return fn


def grpo_ledger(history: list[dict], params: int, gcfg: GRPOConfig) -> flops.Ledger:
    """What a GRPO run spent, step by step (:func:`minir1.flops.grpo_step` on the batch's totals):
    sampling with the prompts' prefill, μ forward+backward passes over prompt + completion, the
    reference's forward when a KL term is computed or logged, the old policy's when μ > 1."""
    led = flops.Ledger("grpo")
    for h in history:
        led = led.add(
            "step",
            flops.grpo_step(
                params,
                prompt=h["prompt_tokens"],
                completion=h["tokens"],
                group=1,  # totals over the batch's rows
                reference=gcfg.kl_coef > 0 or gcfg.log_kl,
                passes=gcfg.num_iterations,
            ),
        )
    return led


def _build_grpo(cfg: HardTaskConfig, base: str, reward: str, gcfg: GRPOConfig, seed: int, index: int = 0):
    def build(folder):
        model, tok, meta = hard_base_model(cfg, base, index)
        seed_everything(seed)
        res = train_grpo(
            model,
            tok,
            train_problems(cfg, seed),
            reward_funcs(reward, seed),
            gcfg,
            seed=seed,
            eval_fn=curve_eval(cfg, tok, 10_000 + seed),
        )
        models.save(model.cpu(), tok, folder)
        n = models.n_params(model)
        led = grpo_ledger(res.history, n, gcfg)
        return {"history": res.history, "evals": res.evals, "flops": led.total, "ledger": led.to_dict(), "params": n}

    return build


NO_CLIP = 1e9  # clip ε that never binds: the ratio would have to leave [1 - 1e9, 1 + 1e9]


def grpo_path(
    cfg: HardTaskConfig,
    seed: int,
    *,
    base: str = "plain",
    reward: str = "true",
    loss_type: str = "grpo",
    mu: int | None = None,
    clip: bool = True,
    index: int = 0,
):
    """The artifact folder of one GRPO run on hard base ``index`` (trained the first time).

    ``mu`` overrides ``cfg.grpo.num_iterations`` (optimizer steps per rollout batch); ``clip=False``
    sets the ratio clip's ε to :data:`NO_CLIP` (the clip control)."""
    reward_funcs(reward, seed)  # validates the name
    gcfg = replace(cfg.grpo, loss_type=loss_type, scale_rewards="none" if loss_type == "dr_grpo" else "group")
    if mu is not None:
        gcfg = replace(gcfg, num_iterations=mu)
    if not clip:
        gcfg = replace(gcfg, clip_eps_low=NO_CLIP, clip_eps_high=None)
    conf = {
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "reward": reward,
        "grpo": asdict(gcfg),
        "n_train": cfg.n_train,
        "curve": [cfg.n_curve, cfg.curve_samples],
        "seed": seed,
        "base": artifacts.load_meta(hard_base_path(cfg, base, index))["key"],
        "ledger": "prompt+completion",
    }
    return artifacts.cached("rl-controls", conf, _build_grpo(cfg, base, reward, gcfg, seed, index))


# ----------------------------------------------------------------------------- the experiment
class Condition(NamedTuple):
    """One GRPO condition: base, reward, loss type, and for the clip control μ > 1 with or without the clip."""

    base: str = "plain"
    reward: str = "true"
    loss: str = "grpo"
    clip_control: bool = False  # μ = cfg.clip_mu instead of cfg.grpo's
    clip: bool = True

    @property
    def name(self) -> str:
        """``true``, ``random``, ..., ``dr_grpo``, ``primed_true``, ``random_mu`` / ``random_mu_noclip``."""
        if self.clip_control:
            return f"{self.reward}_mu{'' if self.clip else '_noclip'}"
        if self.loss != "grpo":
            return self.loss
        return self.reward if self.base == "plain" else f"{self.base}_{self.reward}"

    def path(self, cfg: HardTaskConfig, seed: int, index: int = 0) -> Path:
        mu = cfg.clip_mu if self.clip_control else None
        return grpo_path(
            cfg, seed, base=self.base, reward=self.reward, loss_type=self.loss, mu=mu, clip=self.clip, index=index
        )


# Every GRPO condition; the first (true reward, plain base, grpo loss) is shared by all the experiments.
CONDITIONS: tuple[Condition, ...] = (
    Condition(),
    Condition(reward="random"),
    Condition(reward="format"),
    Condition(reward="incorrect"),
    Condition(loss="dr_grpo"),
    Condition(base="primed"),
    Condition(reward="random", clip_control=True),  # Shao et al.'s clipping bias: μ > 1, clip on ...
    Condition(reward="random", clip_control=True, clip=False),  # ... and off
)
CLIP_MODELS = ("random_mu", "random_mu_noclip")
VERDICT_MODELS = ("base", "true", "random", "rft", "sft_worked", "primed_base", "primed_true", *CLIP_MODELS)
DECIDING = ("true", "random", "primed_true")  # GRPO arms on every base (with the baselines and the bases)
DECIDING_MODELS = ("base", "primed_base", *DECIDING, "rft", "sft_worked")  # scored in every setting


def deciding_cells(cfg: HardTaskConfig, seeds) -> list[tuple[int, int]]:
    """(base index, seed) of every deciding run: ``n_bases`` bases x the first ``seeds_per_base`` seeds."""
    return [(b, s) for b in range(cfg.n_bases) for s in list(seeds)[: cfg.seeds_per_base]]


def cells(cfg: HardTaskConfig, name: str, seeds) -> list[tuple[int, int]]:
    """(base index, seed) of every run of condition or model ``name``: the deciding arms on every
    base; the controls on base 0 (the true reward also there, as the controls' comparator)."""
    seeds = list(seeds)
    control = [(0, s) for s in seeds[: cfg.control_seeds]]
    if name in CLIP_MODELS:
        return [(0, s) for s in seeds[: cfg.clip_seeds]]
    if name in ("true", "base"):
        extra = control + ([(0, s) for s in seeds[: cfg.clip_seeds]] if name == "base" else [])
        return list(dict.fromkeys(deciding_cells(cfg, seeds) + extra))
    if name in DECIDING_MODELS:
        return deciding_cells(cfg, seeds)
    return control


__all__ = [
    "HardTaskConfig",
    "REWARDS",
    "LOSS_TYPES",
    "BASES",
    "CONDITIONS",
    "DECIDING",
    "DECIDING_MODELS",
    "deciding_cells",
    "cells",
    "grpo_ledger",
    "Condition",
    "CLIP_MODELS",
    "VERDICT_MODELS",
    "dry_run",
    "base_cfg",
    "hard_base_path",
    "hard_base_model",
    "valid_set",
    "heldout_set",
    "passk_set",
    "curve_set",
    "r1_many",
    "samplings",
    "reward_funcs",
    "grpo_path",
]
