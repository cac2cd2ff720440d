import pytest
import torch

from minir1 import models, sampling
from minir1.tokenizer import build_tokenizer, format_prompt

QUESTIONS = ["347+589", "12+3", "99999+1", "1 2 3 -> 6", "5"]


@pytest.fixture(scope="module")
def lm():
    tok = build_tokenizer()
    return models.build("nano", tok, seed=3), tok


def _hf_greedy(model, tok, prompts, n):
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    hf = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id)
    return hf[:, enc["input_ids"].shape[1]:]


@pytest.mark.parametrize("fast", [True, False])
def test_greedy_equals_hf_generate(lm, fast):
    model, tok = lm
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    ours = sampling.generate(model, tok, prompts, max_new_tokens=24, temperature=0, fast=fast)
    hf_comp = _hf_greedy(model, tok, prompts, 24)
    width = ours.completion_ids.shape[1]
    assert torch.equal(hf_comp[:, :width], ours.completion_ids)


def test_fast_path_qwen2_gqa_equals_hf():
    """The static-cache decoder also serves Qwen2 (q/k/v biases, grouped-query attention)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    ours = sampling.generate(model, tok, prompts, max_new_tokens=20, temperature=0)
    assert torch.equal(_hf_greedy(model, tok, prompts, 20)[:, :ours.completion_ids.shape[1]], ours.completion_ids)


def test_seeded_sampling_is_deterministic(lm):
    model, tok = lm
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    a = sampling.generate(model, tok, prompts, max_new_tokens=16, seed=7, num_return_sequences=3)
    b = sampling.generate(model, tok, prompts, max_new_tokens=16, seed=7, num_return_sequences=3)
    c = sampling.generate(model, tok, prompts, max_new_tokens=16, seed=8, num_return_sequences=3)
    assert a.texts == b.texts and a.texts != c.texts
    assert len(a) == 15 and a.completion_ids.shape[0] == 15


def test_greedy_ignores_seed(lm):
    model, tok = lm
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    a = sampling.generate(model, tok, prompts, max_new_tokens=16, temperature=0, seed=1)
    b = sampling.generate(model, tok, prompts, max_new_tokens=16, temperature=0, seed=2)
    assert a.texts == b.texts


@pytest.mark.parametrize("fast", [True, False])
def test_masks_stop_at_eos(fast):
    tok = build_tokenizer()
    model = models.build("pico", tok)
    bias = torch.zeros(len(tok))
    bias[tok.eos_token_id] = 100.0  # row 0 always ends at once; row 1 never gets the bias

    def hook(module, inputs, out):
        out = out.clone()
        out[0] += bias
        return out

    model.lm_head.register_forward_hook(hook)
    prompts = [format_prompt(tok, "1+1"), format_prompt(tok, "2+2")]
    out = sampling.generate(model, tok, prompts, max_new_tokens=5, temperature=0, fast=fast)
    assert out.finished[0] and out.n_tokens[0] == 1 and out.texts[0] == ""
    assert out.completion_ids[0, 0] == tok.eos_token_id
    assert (out.completion_ids[0, 1:] == tok.pad_token_id).all()
    assert out.n_tokens == out.completion_mask.sum(dim=1).tolist()


def test_top_p_keeps_top_token():
    logits = torch.tensor([[5.0, 1.0, 0.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    picks = {int(sampling._pick(logits, 1.0, 0.5, gen)) for _ in range(50)}
    assert picks == {0}


@pytest.mark.parametrize("kw,match", [({"max_new_tokens": 0}, "max_new_tokens"),
                                      ({"max_new_tokens": 4, "temperature": -1}, "temperature"),
                                      ({"max_new_tokens": 4, "top_p": 0}, "top_p")])
def test_bad_arguments(lm, kw, match):
    model, tok = lm
    with pytest.raises(ValueError, match=match):
        sampling.generate(model, tok, ["x"], **kw)
