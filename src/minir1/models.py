"""Tiny causal language models in Hugging Face format.

The book trains its own models, but they are ordinary ``transformers`` Llama models:
the same classes, ``save_pretrained`` / ``from_pretrained`` and safetensors files as a
real checkpoint.  :func:`load` therefore also opens a real local Hugging Face checkpoint
directory (the ``gpu`` profile's route to e.g. a Qwen2.5 or R1-Distill model).  It never
downloads and never runs remote code.

Presets (character-level vocabulary of ~100 tokens, tied embeddings):

======  =========  ========  =======  ======  ===============
preset  d_model    n_layer   n_head   d_ff    parameters
======  =========  ========  =======  ======  ===============
pico    48         2         4        128     ~0.06M
nano    96         3         4        256     ~0.34M
micro   128        4         4        512     ~1.06M
mini    256        5         8        768     ~4.3M
small   512        8         8        1536    ~27.3M  (gpu profile)
medium  768        12        12       2048    ~85.0M  (gpu profile)
======  =========  ========  =======  ======  ===============

``micro`` is the size of REFERENCE's feasibility run (1.05M parameters), which learned
3-digit addition with a scratchpad on two CPU cores in minutes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class ModelPreset:
    d_model: int  # hidden size
    n_layer: int  # transformer blocks
    n_head: int  # attention heads (n_kv_head = n_head: plain multi-head attention)
    d_ff: int  # SwiGLU inner size
    max_len: int = 320  # longest sequence (prompt + completion) in characters


PRESETS: dict[str, ModelPreset] = {
    "pico": ModelPreset(d_model=48, n_layer=2, n_head=4, d_ff=128),
    "nano": ModelPreset(d_model=96, n_layer=3, n_head=4, d_ff=256),
    "micro": ModelPreset(d_model=128, n_layer=4, n_head=4, d_ff=512),
    "mini": ModelPreset(d_model=256, n_layer=5, n_head=8, d_ff=768),
    # The gpu profile's from-scratch bases (one GPU; see README "GPU edition").
    "small": ModelPreset(d_model=512, n_layer=8, n_head=8, d_ff=1536, max_len=512),
    "medium": ModelPreset(d_model=768, n_layer=12, n_head=12, d_ff=2048, max_len=512),
}


def _check_preset(preset: str) -> ModelPreset:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}; got {preset!r}")
    return PRESETS[preset]


def config_for(preset: str, tokenizer) -> LlamaConfig:
    """The ``LlamaConfig`` of a preset for ``tokenizer``'s vocabulary."""
    p = _check_preset(preset)
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.d_model,
        intermediate_size=p.d_ff,
        num_hidden_layers=p.n_layer,
        num_attention_heads=p.n_head,
        num_key_value_heads=p.n_head,
        max_position_embeddings=p.max_len,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.02,
    )


def build(preset: str, tokenizer, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised model of ``preset`` (weights depend only on ``seed``)."""
    cfg = config_for(preset, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def n_params(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _no_progress_bars():
    """Hide transformers' "Loading weights" / "Writing model shards" bars while saving or loading.

    Our checkpoints load in milliseconds; the bars only filled every chapter's output with noise.
    Whatever the caller had set is restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def save(model, tokenizer, path: str | os.PathLike) -> Path:
    """Save model (safetensors) and tokenizer with ``save_pretrained`` (no progress bars)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with _no_progress_bars():
        model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load(
    path_or_preset: str | os.PathLike, *, seed: int = 0, dtype: torch.dtype | None = None, device: str | None = None
):
    """Return ``(model, tokenizer)`` for a preset name, a cache artifact or a local checkpoint.

    * a preset (``"micro"``) -> a fresh, untrained model with the book's tokenizer;
    * a directory holding ``config.json`` + ``*.safetensors`` (a minir1 artifact or a real
      Hugging Face checkpoint) -> loaded with ``from_pretrained`` (no remote code, local only,
      no progress bar).
    """
    from .tokenizer import build_tokenizer

    name = str(path_or_preset)
    if name in PRESETS:
        tok = build_tokenizer()
        model = build(name, tok, seed=seed)
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"model path_or_preset {name!r} is neither a preset ({', '.join(PRESETS)}) "
                f"nor an existing checkpoint directory"
            )
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"checkpoint directory {path} has no config.json")
        if not list(path.glob("*.safetensors")):
            raise FileNotFoundError(
                f"checkpoint directory {path} has no *.safetensors weights (only safetensors checkpoints are loaded)"
            )
        AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        with _no_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=dtype or torch.float32
            )
        if tok.pad_token is None:  # many real chat checkpoints have none
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
    if device is not None:
        model = model.to(device)
    return model.eval(), tok


def describe(model) -> dict:
    """A small JSON-able summary of a model: architecture, sizes, parameter count."""
    c = model.config
    return {
        "architecture": type(model).__name__,
        "d_model": c.hidden_size,
        "n_layer": c.num_hidden_layers,
        "n_head": c.num_attention_heads,
        "vocab_size": c.vocab_size,
        "params": n_params(model),
    }
