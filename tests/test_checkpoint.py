"""GRPO and evaluation from a real local checkpoint (minir1.checkpoint, experiments.rl_checkpoint), with nothing
downloaded: a tiny random Qwen2 saved to a temp folder with a byte-level BPE tokenizer built here, shaped like
Qwen2.5's (eos = pad = <|endoftext|>, a ChatML template closing turns with <|im_end|>, more embedding rows than
tokens)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from minir1 import checkpoint as ckpt
from minir1.experiments import rl_checkpoint
from minir1.sampling import generate, stop_ids
from minir1.tokenizer import build_tokenizer, format_prompt

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT = [
    rl_checkpoint.COUNTDOWN_INSTRUCTION.format(numbers=[3, 5, 7], target=22),
    "<think> 5 * 3 = 15, 15 + 7 = 22 </think> <answer> 5 * 3 + 7 </answer>",
    "You are a helpful assistant. system user assistant 0123456789 + - * / ( )",
]


def _tokenizer(chat_template: str | None = CHATML) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, initial_alphabet=alphabet)
    core.train_from_iterator(TEXT * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = chat_template
    return tok


def _save(folder, chat_template: str | None = CHATML):
    tok = _tokenizer(chat_template)
    cfg = Qwen2Config(
        vocab_size=len(tok) + 16,  # more rows than tokens, as Qwen2.5 has
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("qwen2-tiny"))


def test_load_checks_and_finds_the_chat_turns_stop_token(folder):
    ck = ckpt.load_checkpoint(folder)
    tok, info = ck.tokenizer, ck.info
    eos, im_end = tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")
    assert info["architecture"] == "Qwen2ForCausalLM" and info["fast_sampler"] and info["chat_template"]
    assert info["stop_token_ids"] == sorted([eos, im_end]) == ck.model.generation_config.eos_token_id
    assert tok.padding_side == "left" and tok.pad_token_id == eos
    p = ckpt.prompt(tok, "3 5 7 -> 22")
    assert p == format_prompt(tok, "3 5 7 -> 22", "chat")  # what GRPO and the evaluation render
    assert p == "<|im_start|>user\n3 5 7 -> 22<|im_end|>\n<|im_start|>assistant\n"
    assert ckpt.prompt(tok, "q", system="s").startswith("<|im_start|>system\ns<|im_end|>")
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(folder / "missing")
    with pytest.raises(ValueError, match="dtype"):
        ckpt.load_checkpoint(folder, dtype="int8")


def test_no_chat_template_falls_back_to_the_books(tmp_path):
    ck = ckpt.load_checkpoint(_save(tmp_path, chat_template=None))
    assert ckpt.prompt(ck.tokenizer, "3 5 7 -> 22") == "User: 3 5 7 -> 22\nAssistant:"  # no bos token: none rendered
    assert ck.info["stop_token_ids"] == [ck.tokenizer.eos_token_id] and not ck.info["chat_template"]


def test_sampling_stops_at_every_stop_token_even_when_pad_is_eos(folder):
    ck = ckpt.load_checkpoint(folder)
    model, tok = ck.model, ck.tokenizer
    stops = stop_ids(model, tok)
    assert torch.is_tensor(stops) and sorted(stops.tolist()) == ck.info["stop_token_ids"]
    prompts = [ckpt.prompt(tok, q) for q in ("3 5 7 -> 22", "1 2 -> 3")]
    ends = set()
    # Both stop tokens likely (about 1 in 5 per step): rows end at different steps, some not at all; then
    # eos (= pad) alone very likely: every row ends, the last of them on the pad token.
    for boost, ids, max_new in ((4.0, stops, 12), (6.0, tok.eos_token_id, 32)):
        bias = torch.zeros(model.config.vocab_size)
        bias[ids] = boost
        hook = model.lm_head.register_forward_hook(lambda mod, args, out: out + bias)  # the fast decoder calls it
        for fast in (True, False):
            g = generate(model, tok, prompts, max_new_tokens=max_new, num_return_sequences=4, seed=1, fast=fast)
            for row, m, done in zip(g.completion_ids, g.completion_mask, g.finished):
                n = int(m.sum())
                hit = torch.isin(row[:n], stops)
                assert not bool(hit[:-1].any())  # nothing after the first stop is in the completion
                assert bool(hit[-1]) == done  # a finished row's last kept token is its stop token (pad = eos too)
                ends.add(int(row[n - 1]) if done else None)
            assert not any(s in t for t in g.texts for s in ("<|im_end|>", "<|endoftext|>"))
            assert 1 < len(set(g.n_tokens)) and any(g.finished) and (all(g.finished) == (boost == 6.0))
        hook.remove()
    assert ends == {*stops.tolist(), None}  # rows ended at eos (= pad), at <|im_end|>, and unfinished


def test_the_books_tokenizer_keeps_one_eos_id():
    from minir1 import models as book_models

    model, tok = book_models.load("pico")
    assert stop_ids(model, tok) == tok.eos_token_id and isinstance(stop_ids(model, tok), int)


def test_reward_follows_tinyzero():
    r = rl_checkpoint.make_tinyzero_reward(0.1)
    texts = ["<think>.</think> <answer> 5 * 3 + 7 </answer>", "<answer>5+3</answer>", "22"]
    assert r(texts, task=["countdown"] * 3, key=["3,5,7=22"] * 3) == [1.0, 0.1, 0.0]


def test_grpo_and_evaluation_from_a_checkpoint_on_countdown(folder):
    cfg = rl_checkpoint.dry_run(rl_checkpoint.CheckpointRLConfig(checkpoint=str(folder), device="cpu"))
    out = rl_checkpoint.run_from_checkpoint(cfg)
    assert len(out["history"]) == 2 and all(h["tokens"] > 0 for h in out["history"])
    for k in ("base", "rl"):
        assert {"acc", "format_rate", "acc_lenient", "finished_rate", "mean_len"} <= set(out[k])
        assert 0 <= out[k]["acc"] <= 1 and 0 <= out[k]["format_rate"] <= 1
    assert out["info"]["stop_token_ids"] and out["config"]["grpo"]["template"] == "chat"
    assert "Using the numbers [" in out["base"]["samples"][0]["question"]
    # the same seed gives the same run, bit for bit
    again = rl_checkpoint.run_from_checkpoint(cfg)
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in out["history"]]
    assert dataclasses.asdict(cfg.grpo) == out["config"]["grpo"]


def test_the_books_prompts_are_unchanged():
    tok = build_tokenizer()
    assert format_prompt(tok, "347+589") == "<bos>User: 347+589\nAssistant:"
    with pytest.raises(ValueError, match="template"):
        format_prompt(tok, "1+1", "qwen")


def test_command_line_writes_a_record(folder, tmp_path, capsys):
    args = [str(folder), "--steps", "1", "--n-eval", "2", "--max-new-tokens", "8", "--out", str(tmp_path / "run.json")]
    out = rl_checkpoint.main(args)
    assert len(out["history"]) == 1 and (tmp_path / "run.json").exists()
    assert "accuracy" in capsys.readouterr().out
