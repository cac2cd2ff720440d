"""Recipe: the pretrained "vanilla" base every experiment chapter starts from, and how it is scored.

:func:`pretrained_path` returns the artifact folder of the base of a :class:`LabConfig`, training
it with :mod:`minir1.train` on :mod:`minir1.corpus` the first time and reusing it from the
artifact cache afterwards (built once under a lock, whichever chapter asks first).

The recipe also owns the held-out evaluation every chapter shares: :func:`eval_set` (which
problems) and :func:`samplings` (greedy, R1's T = 0.6 / top-p 0.95, and T = 1), scored once by
:func:`minir1.evaluation.evaluate_cached`, so the same model on the same problems has the same
numbers in every chapter.  The lab chapter publishes this base; the RL and distillation chapters
build on it through this module, never through the lab chapter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch

from ... import artifacts, models, stats
from ...corpus import CorpusConfig, build_corpus
from ...evaluation import (
    GREEDY,
    R1_SAMPLING,
    T1_SAMPLING,
    EvalResult,
    EvalSet,
    Sampling,
    evaluate_seeds,
)
from ...tokenizer import build_tokenizer
from ...train import TrainConfig, train
from ...utils import device, device_name, seed_everything

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
    # One GPU: the 27.3M-parameter "small" preset, 8,400 x 256 x 256 = 550M tokens (20.1 per parameter)
    # in bf16 over a 4M-document corpus (~130M unique tokens, ~4 epochs; Muennighoff et al. 2023 find
    # up to 4 epochs of repeated data nearly as good as fresh).
    "gpu": LabConfig(
        preset="small",
        corpus=CorpusConfig(n_docs=4_000_000),
        train=TrainConfig(
            steps=8400,
            batch_size=256,
            lr=1e-3,
            pack=True,
            seq_len=256,
            warmup_steps=200,
            log_every=200,
            desc="pretrain",
            bf16=True,
        ),
        n_eval=500,
        n_samples=32,  # pass@16 from 32 samples per problem
    ),
}


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


def pretrained_path(cfg: LabConfig, *, force: bool = False) -> Path:
    """The artifact folder of the base of ``cfg`` (trained the first time)."""
    conf = {k: v for k, v in asdict(cfg).items() if k in BUILD_FIELDS}
    return artifacts.cached("base", conf, _build_base(cfg), force=force)


def pretrained_model(cfg: LabConfig, *, force: bool = False):
    """``(model, tokenizer, meta)`` of the pretrained base of ``cfg``; trains it if missing.

    ``meta`` holds the training history, tokens, FLOPs and wall time of the (cached) run.
    """
    path = pretrained_path(cfg, force=force)
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
