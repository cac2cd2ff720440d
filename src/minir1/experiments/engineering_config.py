"""The engineering chapter's config (its own module, so the chapter's companions can import it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..architectures import MODELS, Shape, check_model, model_configs
from ..corpus import CorpusConfig

SCALE_NAMES: tuple[str, ...] = ("S", "M", "L")  # the rule's variants name these (data/claims.yml)


@dataclass(frozen=True)
class EngineeringConfig:
    """One profile of the chapter: corpus, the model shapes at each scale, training and measurement sizes.

    Every scale trains the MoE and the dense model with its active parameters (MLA); the largest
    scale (the last) also trains that dense model with MHA and with GQA.  The MoE trains on
    ``tokens_per_active_param`` tokens per active parameter (``steps`` overrides it, for smoke
    runs); the dense models train ``dense_steps_factor`` times as many steps.
    """

    scales: tuple[tuple[str, Shape], ...] = (("S", Shape(d_model=16)), ("M", Shape(d_model=24)), ("L", Shape()))
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(n_docs=12_000))
    tokens_per_active_param: float = 21.0  # MoE training length (Chinchilla ~20; the rule reads >= 20)
    steps: int | None = None  # MoE steps at every scale instead (smoke and dry runs); None: from the line above
    dense_steps_factor: float = 2.0  # the dense runs train this much longer, so that their
    # loss-vs-FLOPs curve reaches past the MoE's FLOPs (a multiplier up to 2 is interpolated)
    batch_size: int = 16  # packed sequences per step
    seq_len: int = 64  # tokens per packed sequence (documents average ~32 characters)
    lr: float = 3e-3  # peak (and constant) learning rate
    warmup_steps: int = 20  # linear warm-up, then constant (min_lr_frac = 1)
    smooth: int = 30  # trailing window (steps) of the loss curves
    balance_gamma: float = 0.01  # bias update speed γ (V3 §2.1.2: 0.001 over ~10⁵ steps; ours ~10³)
    aux_alpha: float = 1e-4  # sequence-wise balance loss α (V3 §2.1.2: 0.0001)
    min_tokens_per_active_param: float = 20.0  # the regime in which the multiplier is read
    quality_tolerance: float = 0.02  # nats/token: the equivalence margin of MLA − MHA (data/claims.yml)
    n_seeds: int = 5  # seeds when run() is given none: >= 5 for the deciding comparisons
    n_heldout: int = 400  # held-out documents (test-split problems)
    context_lens: tuple[int, ...] = (64, 128, 256)  # decoding benchmark contexts
    decode_batch: int = 8  # sequences decoded together
    decode_steps: int = 16  # timed decoding steps per context
    repeats: int = 5  # timing repeats (interleaved across models)
    workers: int = 1  # training runs in parallel processes (1 thread each)
    dry_run: bool = False  # tests: these shapes, two steps, tiny corpus, on the CPU

    def __post_init__(self):
        for name in ("batch_size", "seq_len", "smooth", "n_heldout", "decode_batch", "decode_steps", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        for name in ("workers", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None; got {self.steps!r}")
        if self.dense_steps_factor < 1:
            raise ValueError(f"dense_steps_factor must be >= 1; got {self.dense_steps_factor!r}")
        for name in ("balance_gamma", "aux_alpha", "min_tokens_per_active_param", "quality_tolerance"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if self.tokens_per_active_param <= 0:
            raise ValueError(f"tokens_per_active_param must be > 0; got {self.tokens_per_active_param!r}")
        if tuple(n for n, _ in self.scales) != SCALE_NAMES:
            raise ValueError(f"scales must be named {SCALE_NAMES} in that order; got {[n for n, _ in self.scales]}")

    @property
    def shape(self) -> Shape:
        """The largest scale's shape (the attention comparison's, and the tables')."""
        return self.scales[-1][1]

    def models_at(self, scale: str) -> tuple[str, ...]:
        """The models trained at ``scale``: MoE and dense everywhere, MHA and GQA at the largest."""
        return MODELS if scale == SCALE_NAMES[-1] else ("moe", "dense_active")

    def configs(self, vocab_size: int, tokens=None) -> dict[str, dict]:
        """``{scale: {model: config}}`` of every model the chapter trains."""
        out = {}
        for scale, shape in self.scales:
            c = model_configs(shape, vocab_size, tokens)
            out[scale] = {n: c[n] for n in self.models_at(scale)}
        return out

    def moe_steps(self, n_active: int) -> int:
        """MoE steps for ``n_active`` active parameters: ``steps``, or enough for
        ``tokens_per_active_param`` tokens per active parameter."""
        if self.steps is not None:
            return self.steps
        return math.ceil(self.tokens_per_active_param * n_active / (self.batch_size * self.seq_len))

    def steps_of(self, name: str, n_active_moe: int) -> int:
        """Optimizer steps of model ``name`` at a scale whose MoE has ``n_active_moe`` active parameters."""
        check_model(name)
        s = self.moe_steps(n_active_moe)
        return s if name == "moe" else int(round(s * self.dense_steps_factor))
