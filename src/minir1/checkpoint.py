"""A real local Hugging Face checkpoint for the book's GRPO and evaluation: load it, check it, prompt it.

A reader who has downloaded, say, Qwen2.5-0.5B or 1.5B can run the RL chapter's GRPO
(:func:`minir1.grpo.train_grpo`) and its evaluation (:func:`minir1.evaluation.evaluate`) from it,
with the checkpoint's own tokenizer and chat template (``template="chat"`` in either). Nothing is
ever downloaded: the folder is read with ``local_files_only=True`` (:func:`minir1.models.load`).

What a real tokenizer changes, and where it is handled:

* **Stop tokens.** A chat checkpoint ends its turn with its own token (Qwen2.5: ``<|im_end|>``),
  which is often not the tokenizer's eos (a Qwen2.5 base model's eos is ``<|endoftext|>``).
  :func:`load_checkpoint` finds the end-of-turn token of the chat template and writes every stop
  id into ``model.generation_config.eos_token_id`` (as HF's ``generate`` reads it); the sampler
  (:func:`minir1.sampling.stop_ids`) stops at any of them and drops them from the decoded text,
  so the rewards see only the reply.
* **Pad is eos.** Qwen2.5's pad token is its eos; the sampler keeps a row's first stop token in
  the completion (and its mask) even then. A tokenizer with no pad token gets its eos as pad.
* **Prompts.** :func:`prompt` renders a question as a user turn in the checkpoint's chat template
  (the book's compact template when the tokenizer has none); ``template="chat"`` does the same
  inside GRPO and the evaluation.
* **Tags are text.** ``<think>`` and ``<answer>`` are several tokens for a real tokenizer; the
  rewards read decoded text, so they need only that decoding gives the tags back
  (:func:`check_checkpoint` checks it).
* **Vocabulary.** Qwen2.5's embedding has more rows than its tokenizer has tokens; ids past the
  tokenizer decode to nothing. A tokenizer with more tokens than the embedding has rows is refused.

The book's own models and tokenizer go through none of this: their generation config names only
the tokenizer's eos, so sampling is exactly what it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import models
from .tokenizer import chat_prompt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TAG_TEXT = "<think> 3 + 5 = 8 </think> <answer> (1 + 2) / 3 </answer>"  # what the rewards must read back
_MARK = "\x1fminir1-reply\x1f"  # an assistant reply nothing else contains, to find what the template puts after it


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model, its tokenizer and what :func:`check_checkpoint` found."""

    model: object
    tokenizer: object
    path: str
    info: dict = field(default_factory=dict)  # JSON-able: architecture, sizes, token ids, chat template, ...


def end_of_turn_id(tokenizer) -> int | None:
    """The token the chat template closes an assistant turn with (Qwen2.5: ``<|im_end|>``), else None.

    Found by rendering a user turn and a reply, and tokenizing what follows the reply; it counts
    only when it is a special or added token (a template that closes a turn with plain text has none).
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    turns = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": _MARK}]
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False)
    except Exception:  # a template that refuses this conversation: no end-of-turn token learnt
        return None
    after = text[text.rfind(_MARK) + len(_MARK) :] if _MARK in text else ""
    ids = tokenizer.encode(after, add_special_tokens=False) if after else []
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return ids[0] if ids and ids[0] in special else None


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that should end a completion: the tokenizer's eos, the generation config's, the chat turn's end."""
    named = getattr(model.generation_config, "eos_token_id", None)
    named = [] if named is None else [named] if isinstance(named, int) else list(named)
    ids = {tokenizer.eos_token_id, *named, end_of_turn_id(tokenizer)}
    return sorted(i for i in ids if i is not None)


def check_checkpoint(model, tokenizer) -> dict:
    """Check that minir1's sampler, GRPO and rewards can use ``model`` with ``tokenizer``; return what was found.

    Raises ``ValueError`` for a tokenizer with no eos token, with more tokens than the model's
    embedding has rows, or that does not decode the reward tags back to the same text.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the checkpoint's tokenizer has no eos token: sampling could never stop")
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's embedding only {rows} rows")
    if tokenizer.decode(tokenizer.encode(TAG_TEXT, add_special_tokens=False)) != TAG_TEXT:
        raise ValueError(f"the tokenizer does not decode {TAG_TEXT!r} back unchanged; the rewards read those tags")
    from .sampling import FAST_ARCHITECTURES

    stops = stop_token_ids(model, tokenizer)
    return {
        **models.describe(model),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "tokenizer_len": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "stop_token_ids": stops,
        "stop_tokens": tokenizer.convert_ids_to_tokens(stops),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "fast_sampler": type(model).__name__ in FAST_ARCHITECTURES,  # else HF forward with a DynamicCache
        "prompt_example": prompt(tokenizer, "3 5 7 -> 22"),
    }


def load_checkpoint(path: str | os.PathLike, *, dtype: str = "float32", device: str | None = None) -> Checkpoint:
    """Load a local Hugging Face checkpoint folder for GRPO and evaluation; never downloads.

    ``dtype``: ``"float32"`` (default: GRPO's AdamW wants fp32 weights), ``"bfloat16"`` or
    ``"float16"``. The tokenizer pads on the left (and pads with eos when it has no pad token);
    every stop id (:func:`stop_token_ids`) goes into ``model.generation_config.eos_token_id``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}; got {dtype!r}")
    folder = Path(path).expanduser().resolve()  # absolute: never read as a preset name
    if not str(path).strip() or not folder.is_dir():
        raise FileNotFoundError(f"checkpoint must be a local Hugging Face checkpoint folder; got {str(path)!r}")
    model, tok = models.load(folder, dtype=DTYPES[dtype], device=device)  # local_files_only, no remote code
    stops = stop_token_ids(model, tok)
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    return Checkpoint(model=model, tokenizer=tok, path=str(folder), info=check_checkpoint(model, tok))


def prompt(tokenizer, question: str, system: str | None = None) -> str:
    """``question`` as a user turn in the tokenizer's chat template (the book's compact one when it has none).

    GRPO and the evaluation render the same prompt with ``template="chat"`` (no ``system``: the
    template's default).
    """
    return chat_prompt(tokenizer, question, system=system)
