"""Recipe: the RL hard task's bases — the lab base pretrained further on a harder task.

The lab's 3-digit addition is too easy to tell sharpening from learning, so the RL chapter's hard
task starts from a base that has room at both ends: the lab's base (``start``) pretrained further
on a corpus of the hard task only (:func:`hard_base_config`).  Two bases differ only in
``CorpusConfig.behaviour_rate`` (the share of worked solutions that check a result or say "wait"
and redo a step, same token budget): ``plain`` and ``primed`` (:func:`kind_config`).  Several
hard bases (:func:`indexed`) continue the *same* lab base on corpora drawn with different seeds and
batches in different orders: independent continued pretraining, one shared starting point.
:func:`continued_path` builds one the first time (once, under a lock) and reuses it afterwards.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from ... import artifacts, models
from ...corpus import CorpusConfig, build_corpus
from ...train import TrainConfig, train
from ...utils import device, seed_everything
from . import base
from .base import LabConfig

BASES = ("plain", "primed")  # Gandhi et al.: without / with checking-and-correcting traces


def hard_base_config(preset: str, task: str, difficulty: int, steps: int, n_docs: int, lr: float = 1e-3) -> LabConfig:
    """The hard task's corpus and (continued) pretraining: ``task`` at ``difficulty`` only, with a
    larger share of R1-format transcripts (10%) than the lab's (4%)."""
    return LabConfig(
        preset=preset,
        corpus=CorpusConfig(tasks=((task, difficulty, 1.0),), n_docs=n_docs, mix=(0.33, 0.28, 0.19, 0.10, 0.10)),
        train=TrainConfig(
            steps=steps,
            batch_size=32,
            lr=lr,
            warmup_steps=10,
            pack=True,
            seq_len=128,
            desc="pretrain (hard task)",
            log_every=100,
            progress=False,
        ),
        tasks=((task, difficulty),),
        n_eval=200,
        n_samples=8,  # held-out samples per problem at T = 0.6 and T = 1 (the lab uses 16; CPU budget)
        max_new_tokens=64,
    )


def kind_config(plain: LabConfig, kind: str, primed_behaviour_rate: float) -> LabConfig:
    """The LabConfig of the ``plain`` or ``primed`` base (same corpus size and steps)."""
    if kind not in BASES:
        raise ValueError(f"base kind must be one of {BASES}; got {kind!r}")
    if kind == "plain":
        return plain
    return replace(plain, corpus=replace(plain.corpus, behaviour_rate=primed_behaviour_rate))


def indexed(bc: LabConfig, index: int) -> LabConfig:
    """Hard base ``index``: 0 is ``bc`` itself; another index draws the corpus with seed ``index``
    and trains with batch order and initialisation seed ``index`` (same sizes and steps)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"base index must be an int >= 0; got {index!r}")
    if index == 0:
        return bc
    return replace(bc, seed=index, train=replace(bc.train, seed=index), corpus=replace(bc.corpus, seed=index))


def _build_continued(start: LabConfig, bc: LabConfig):
    def build(folder):
        model, tok, meta = base.pretrained_model(start)
        seed_everything(bc.seed)
        res = train(model, tok, [("", d) for d in build_corpus(bc.corpus)], bc.train)
        models.save(model.cpu(), tok, folder)
        return {
            "params": models.n_params(model),
            "tokens": res.tokens,
            "flops": res.flops,
            "start_flops": meta["flops"],
            "wall_seconds": res.wall_seconds,
            "history": res.history,
        }

    return build


def continued_path(start: LabConfig | None, bc: LabConfig) -> Path:
    """The base ``start`` (the lab's base) pretrained further on ``bc``'s corpus for
    ``bc.train.steps`` (or, with ``start=None``, ``bc`` from scratch); trained the first time."""
    if start is None:
        return base.pretrained_path(bc)
    conf = {
        "start": {k: v for k, v in asdict(start).items() if k in base.BUILD_FIELDS},
        **{k: v for k, v in asdict(bc).items() if k in base.BUILD_FIELDS},
    }
    return artifacts.cached("base-continued", conf, _build_continued(start, bc))


def continued_model(start: LabConfig | None, bc: LabConfig):
    """``(model, tokenizer, meta)`` of :func:`continued_path` (trained if missing)."""
    path = continued_path(start, bc)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)
