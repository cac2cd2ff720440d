"""The engineering chapter's config (its own module, so the chapter's companions can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..architectures import Shape, check_model
from ..corpus import CorpusConfig


@dataclass(frozen=True)
class EngineeringConfig:
    """One profile of the chapter: corpus, model shape, training and measurement sizes."""

    shape: Shape = field(default_factory=Shape)
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(n_docs=12_000))
    models: tuple[str, ...] = ("moe", "dense_active", "dense_total", "mha", "gqa")  # trained
    steps: int = 140  # optimizer steps of the MoE and the dense-same-total model
    dense_steps_factor: float = 1.5  # the other dense runs train this much longer, so their
    # loss-vs-FLOPs curve reaches past the MoE's FLOPs
    batch_size: int = 8  # packed sequences per step (small batches: more updates per token)
    seq_len: int = 128  # tokens per packed sequence
    lr: float = 3e-3  # peak (and constant) learning rate
    warmup_steps: int = 20  # linear warm-up, then constant (min_lr_frac = 1)
    smooth: int = 30  # trailing window (steps) of the loss curves
    balance_gamma: float = 0.001  # bias update speed γ (V3 §2.1.2: 0.001 over ~10⁵ steps)
    aux_alpha: float = 1e-4  # sequence-wise balance loss α (V3 §2.1.2: 0.0001)
    min_tokens_per_active_param: float = 20.0  # the regime in which the multiplier is read
    quality_tolerance: float = 0.02  # nats/token: a held-out loss difference still "no quality cost"
    n_heldout: int = 400  # held-out documents (test-split problems)
    context_lens: tuple[int, ...] = (64, 128, 256)  # decoding benchmark contexts
    decode_batch: int = 8  # sequences decoded together
    decode_steps: int = 16  # timed decoding steps per context
    repeats: int = 5  # timing repeats (interleaved across models)
    workers: int = 1  # seeds trained in parallel processes (1 thread each)
    dry_run: bool = False  # tests: this shape, two steps, tiny corpus, on the CPU

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "seq_len",
            "smooth",
            "n_heldout",
            "decode_batch",
            "decode_steps",
            "repeats",
            "workers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if self.dense_steps_factor < 1:
            raise ValueError(f"dense_steps_factor must be >= 1; got {self.dense_steps_factor!r}")
        for name in ("balance_gamma", "aux_alpha", "min_tokens_per_active_param", "quality_tolerance"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        for name in ("moe", "dense_active", "mha", "gqa"):
            if name not in self.models:
                raise ValueError(f"models must include {name!r}; got {self.models!r}")
        for name in self.models:
            check_model(name)

    def steps_of(self, name: str) -> int:
        """Optimizer steps of model ``name`` (one of :data:`MODELS`)."""
        check_model(name)
        short = name in ("moe", "dense_total")
        return self.steps if short else int(round(self.steps * self.dense_steps_factor))
