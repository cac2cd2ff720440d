"""How long a chapter's ``gpu`` profile takes on one GPU, estimated from counts before it runs.

Pure functions of counts (parameters, layers, tokens, sequential steps); the experiment tier
turns each chapter's config into :class:`Stage` counts (``estimate_gpu(cfg)`` in every chapter
module) and this module turns those into FLOPs and minutes.

The model of a stage's time, stated so it can be checked (``make gpu-check`` measures it):

* training: ``6 · N · tokens`` FLOPs at ``ASSUMED_MFU`` of the GPU's dense bf16 peak, but never
  faster than ``steps · n_layer · TRAIN_LAYER_SECONDS`` (small models are kernel-launch bound);
* generation and forward-only scoring: ``2 · N · tokens`` FLOPs at the same MFU, but never faster
  than ``decode_steps · (n_layer · DECODE_LAYER_SECONDS + DECODE_STEP_SECONDS)``: a decoding
  step of a small model in eager PyTorch costs its kernel launches, whatever the batch.

The peak is NVIDIA's H100 SXM5 datasheet figure, 1,979 TFLOP/s bf16 *with sparsity*, i.e.
989.4 TFLOP/s dense (the same number the cost chapter and :mod:`minir1.ledger` use).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

H100_BF16_DENSE_PEAK = 989.4e12  # FLOP/s; NVIDIA H100 Tensor Core GPU datasheet (SXM5), 1,979 sparse / 2
ASSUMED_MFU = 0.30  # sustained share of the peak in training matmuls (the target; measured by gpu-check)
TRAIN_LAYER_SECONDS = 1.0e-3  # floor per layer per optimizer step (forward + backward + AdamW), eager PyTorch
DECODE_LAYER_SECONDS = 0.3e-3  # floor per layer per decoding step (about 30 kernel launches)
DECODE_STEP_SECONDS = 2.0e-3  # per decoding step outside the layers: sampling, logits processors, Python
BUDGET_MINUTES = 60.0  # what every chapter's gpu run must stay under, by this estimate

# Known dense bf16 peaks (FLOP/s) by a substring of torch.cuda.get_device_name(); datasheet figures.
BF16_PEAKS: dict[str, float] = {
    "H200": 989.4e12,  # same SXM tensor cores as H100
    "H100": 989.4e12,  # SXM5; the PCIe card is 756 TFLOP/s
    "A100": 312e12,  # NVIDIA A100 datasheet, bf16 dense
    "L40S": 362e12,  # NVIDIA L40S datasheet, bf16 dense (733 sparse)
    "4090": 165.2e12,  # Ada whitepaper, bf16 dense with fp32 accumulate
    "A10": 125e12,  # NVIDIA A10 datasheet, bf16 dense
}


@dataclass(frozen=True)
class Stage:
    """One piece of a chapter's work, in counts."""

    name: str
    params: int  # parameters of the model that does the work
    n_layer: int  # transformer blocks (the launch-bound floors scale with them)
    train_tokens: float = 0.0  # tokens through forward + backward
    train_steps: int = 0  # optimizer steps
    gen_tokens: float = 0.0  # tokens generated or scored forward-only
    gen_steps: int = 0  # sequential model calls of the generation (decoding steps)

    def __post_init__(self):
        for name in ("params", "n_layer", "train_tokens", "train_steps", "gen_tokens", "gen_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"Stage.{name} must be >= 0; got {getattr(self, name)!r}")


def llama_params(d_model: int, n_layer: int, d_ff: int, vocab: int, *, tied: bool = True) -> int:
    """Parameters of a Llama block stack (MHA, SwiGLU, RMSNorm) with a ``vocab``-sized embedding.

    >>> llama_params(48, 2, 128, 104)  # the ``pico`` preset with the book's tokenizer
    60528
    """
    per_layer = 4 * d_model * d_model + 3 * d_model * d_ff + 2 * d_model
    emb = vocab * d_model * (1 if tied else 2)
    return n_layer * per_layer + emb + d_model


def training(name: str, params: int, n_layer: int, steps: int, batch: int, seq_len: float) -> Stage:
    """``steps`` optimizer steps of ``batch`` sequences of ``seq_len`` tokens."""
    return Stage(name, params, n_layer, train_tokens=float(steps) * batch * seq_len, train_steps=steps)


def generation(name: str, params: int, n_layer: int, n_sequences: float, new_tokens: int, batch: int) -> Stage:
    """``n_sequences`` completions of up to ``new_tokens`` tokens, ``batch`` decoded together."""
    calls = math.ceil(n_sequences / max(1, batch))
    return Stage(name, params, n_layer, gen_tokens=float(n_sequences) * new_tokens, gen_steps=calls * new_tokens)


def stage_flops(stage: Stage) -> float:
    """Training ``6·N·D`` plus forward-only ``2·N·D`` FLOPs of ``stage``."""
    return 6.0 * stage.params * stage.train_tokens + 2.0 * stage.params * stage.gen_tokens


def stage_seconds(stage: Stage, *, peak: float = H100_BF16_DENSE_PEAK, mfu: float = ASSUMED_MFU) -> float:
    """Estimated seconds of ``stage``: compute at ``mfu`` of ``peak``, floored by launch overhead."""
    if peak <= 0 or not 0 < mfu <= 1:
        raise ValueError(f"peak must be > 0 and mfu in (0, 1]; got {peak!r}, {mfu!r}")
    rate = peak * mfu
    train = max(6.0 * stage.params * stage.train_tokens / rate, stage.train_steps * stage.n_layer * TRAIN_LAYER_SECONDS)
    per_call = stage.n_layer * DECODE_LAYER_SECONDS + DECODE_STEP_SECONDS
    gen = max(2.0 * stage.params * stage.gen_tokens / rate, stage.gen_steps * per_call)
    return train + gen


def estimate(
    chapter: str, stages: list[Stage], *, peak: float = H100_BF16_DENSE_PEAK, mfu: float = ASSUMED_MFU
) -> dict:
    """A JSON-able estimate of ``chapter``'s gpu run: FLOPs, minutes, the largest model, per stage."""
    rows = [
        {**asdict(s), "flops": stage_flops(s), "minutes": stage_seconds(s, peak=peak, mfu=mfu) / 60.0} for s in stages
    ]
    return {
        "chapter": chapter,
        "flops": sum(r["flops"] for r in rows),
        "minutes": sum(r["minutes"] for r in rows),
        "max_params": max((s.params for s in stages if s.n_layer), default=0),  # models only
        "budget_minutes": BUDGET_MINUTES,
        "assumptions": {
            "peak_flops_per_s": peak,
            "mfu": mfu,
            "train_layer_seconds": TRAIN_LAYER_SECONDS,
            "decode_layer_seconds": DECODE_LAYER_SECONDS,
            "decode_step_seconds": DECODE_STEP_SECONDS,
        },
        "stages": rows,
    }


def bf16_peak(device_name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of a GPU named like ``torch.cuda.get_device_name()``, if known."""
    for key, peak in BF16_PEAKS.items():
        if key in device_name:
            return peak
    return None


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over ``peak``."""
    if seconds <= 0 or peak <= 0:
        raise ValueError(f"seconds and peak must be > 0; got {seconds!r}, {peak!r}")
    return flops / seconds / peak


def format_estimate(est: dict) -> str:
    """One line for the chapter runner: ``lab: ~23 min on one H100 (3.1e17 FLOPs, largest model 27.3M)``."""
    a = est["assumptions"]
    return (
        f"{est['chapter']}: ~{est['minutes']:.0f} min by estimate ({est['flops']:.2g} FLOPs, largest model "
        f"{est['max_params'] / 1e6:.1f}M parameters; {a['peak_flops_per_s'] / 1e12:.0f} TFLOP/s x MFU {a['mfu']:.2f})"
    )
