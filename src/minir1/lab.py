"""The miniature lab: the base models every experiment chapter starts from.

:func:`base_model` returns the pretrained "vanilla" base for a profile (and optionally a
preset size), training it with :mod:`minir1.train` on :mod:`minir1.corpus` the first time
and reusing it from the artifact cache afterwards.  A chapter whose base is missing
therefore trains it at its own profile's size instead of failing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

from . import artifacts, models
from .corpus import CorpusConfig, build_corpus
from .profiles import check_profile
from .tokenizer import build_tokenizer
from .train import TrainConfig, train
from .utils import device, seed_everything


@dataclass(frozen=True)
class LabConfig:
    preset: str = "micro"                            # model size (see minir1.models.PRESETS)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=800, batch_size=32, lr=2e-3,
                                                                   pack=True, seq_len=128, desc="pretrain"))
    seed: int = 0                                    # model initialisation


LAB_PROFILES: dict[str, LabConfig] = {
    "smoke": LabConfig(preset="nano", corpus=CorpusConfig(n_docs=3000),
                       train=TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=10, pack=True,
                                         seq_len=128, desc="pretrain", log_every=20)),
    "cpu": LabConfig(),
    "gpu": LabConfig(preset="mini", corpus=CorpusConfig(n_docs=200_000),
                     train=TrainConfig(steps=4000, batch_size=64, lr=1e-3, pack=True, seq_len=256,
                                       warmup_steps=100, desc="pretrain")),
}

# Held-out evaluation sizes per profile: (problems per task, samples per problem).
EVAL_SIZES = {"smoke": (16, 4), "cpu": (200, 16), "gpu": (500, 64)}


def lab_config(profile: str, *, preset: str | None = None, seed: int = 0) -> LabConfig:
    """The lab configuration of ``profile``, optionally at another model ``preset``."""
    cfg = LAB_PROFILES[check_profile(profile)]
    if preset is not None:
        models._check_preset(preset)
        cfg = replace(cfg, preset=preset)
    return replace(cfg, seed=seed, train=replace(cfg.train, seed=seed), corpus=replace(cfg.corpus, seed=seed))


def _build_base(cfg: LabConfig):
    def build(folder):
        seed_everything(cfg.seed)
        tok = build_tokenizer()
        model = models.build(cfg.preset, tok, seed=cfg.seed).to(device())
        docs = [("", d) for d in build_corpus(cfg.corpus)]
        res = train(model, tok, docs, cfg.train)
        models.save(model.cpu(), tok, folder)
        return {"params": models.n_params(model), "tokens": res.tokens, "flops": res.flops,
                "wall_seconds": res.wall_seconds, "history": res.history, "device": device()}
    return build


def base_model(profile: str, *, preset: str | None = None, seed: int = 0, force: bool = False):
    """``(model, tokenizer, meta)`` of the pretrained base for ``profile``; trains it if missing.

    ``meta`` holds the training history, tokens, FLOPs and wall time of the (cached) run.
    """
    cfg = lab_config(profile, preset=preset, seed=seed)
    path = artifacts.cached("base", asdict(cfg), _build_base(cfg), force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)
