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
    hf = model.generate(
        **enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    return hf[:, enc["input_ids"].shape[1] :]


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
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    ours = sampling.generate(model, tok, prompts, max_new_tokens=20, temperature=0)
    assert torch.equal(_hf_greedy(model, tok, prompts, 20)[:, : ours.completion_ids.shape[1]], ours.completion_ids)


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
    picks = {int(sampling._pick(logits, 1.0, 0.5, torch.rand(1, generator=gen))) for _ in range(50)}
    assert picks == {0}
    # at u -> 1 the inverse CDF still lands inside the nucleus, and u -> 0 picks the top token
    assert int(sampling._pick(logits, 1.0, 0.5, torch.tensor([1 - 2**-24]))) == 0
    assert int(sampling._pick(logits, 1.0, 1.0, torch.tensor([0.0]))) == 0


def test_inverse_cdf_pick_follows_the_probabilities():
    logits = torch.tensor([[0.0, 1.0, 2.0, -30.0]]).expand(20000, 4)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(sampling._pick(logits, 1.0, 1.0, u), minlength=4).float() / 20000
    torch.testing.assert_close(counts, torch.softmax(logits[0], -1), atol=0.015, rtol=0)
    assert counts[3] == 0


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 4, "temperature": -1}, "temperature"),
        ({"max_new_tokens": 4, "top_p": 0}, "top_p"),
    ],
)
def test_bad_arguments(lm, kw, match):
    model, tok = lm
    with pytest.raises(ValueError, match=match):
        sampling.generate(model, tok, ["x"], **kw)


def _decoder_case(G: int = 3, steps: int = 6):
    """micro, left-padded prompts, G samples each and ``steps`` arbitrary new tokens per row (N, steps)."""
    tok = build_tokenizer()
    model = models.build("micro", tok, seed=1)
    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    new = torch.randint(8, len(tok), (len(prompts) * G, steps), generator=torch.Generator().manual_seed(0))
    return tok, model, prompts, enc["input_ids"], enc["attention_mask"], G, steps, new


def test_decoder_logits_match_hf_forward():
    """Prefill and every decode step of the hand-written decoder equal HF's forward in fp32 (allclose),
    with left padding and G samples sharing a prompt."""
    tok, model, prompts, ids, mask, G, steps, new = _decoder_case()
    with torch.inference_mode():
        dec = sampling._Decoder(model, len(prompts), G, ids.shape[1], steps)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        ours = [dec.prefill(ids, pos, mask).repeat_interleave(G, 0)]
        for j in range(steps - 1):
            ours.append(dec.step(new[:, j], (pos[:, -1] + 1 + j).repeat_interleave(G)))
        full_ids = torch.cat([ids.repeat_interleave(G, 0), new[:, : steps - 1]], 1)
        full_mask = torch.cat([mask.repeat_interleave(G, 0), torch.ones_like(new[:, : steps - 1])], 1)
        full_pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
        ref = model(input_ids=full_ids, attention_mask=full_mask, position_ids=full_pos).logits
    for j, lg in enumerate(ours):
        torch.testing.assert_close(lg, ref[:, ids.shape[1] - 1 + j], atol=1e-5, rtol=1e-5)


def test_decoder_logits_match_hf_forward_after_rows_leave():
    """Rows that leave the batch (a part of a group, and all of a prompt's group) do not change the others' logits."""
    tok, model, prompts, ids, mask, G, steps, new = _decoder_case()
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    full_ids = torch.cat([ids.repeat_interleave(G, 0), new[:, : steps - 1]], 1)
    full_mask = torch.cat([mask.repeat_interleave(G, 0), torch.ones_like(new[:, : steps - 1])], 1)
    with torch.inference_mode():
        ref = model(input_ids=full_ids, attention_mask=full_mask, position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0))
        dec = sampling._Decoder(model, len(prompts), G, ids.shape[1], steps)
        dec.prefill(ids, pos, mask)
        rows = torch.arange(len(prompts) * G)
        for j in range(steps - 1):
            if j == 2:  # keep samples 0 and 2 of prompt 0, all of prompt 2, sample 1 of prompt 4; drop 1 and 3
                keep = torch.tensor([0, 2, 6, 7, 8, 13])
                dec.select(keep)
                rows = rows[keep]
            if j == 4:  # then drop the middle of what is left
                keep = torch.tensor([0, 1, 4, 5])
                dec.select(keep)
                rows = rows[keep]
            lg = dec.step(new[rows, j], pos[rows // G, -1] + 1 + j)
            torch.testing.assert_close(lg, ref.logits[rows, ids.shape[1] + j], atol=1e-5, rtol=1e-5)


def test_greedy_groups_equal_hf_and_finished_groups_are_dropped():
    """num_return_sequences > 1 under greedy gives G copies of HF's greedy row, also after groups finish."""
    tok = build_tokenizer()
    model = models.build("nano", tok, seed=3)
    bias = torch.zeros(len(tok))
    bias[tok.eos_token_id] = 100.0

    def hook(module, inputs, out):  # at the prefill (one row per prompt), prompts 0 and 1 pick eos at once:
        out = out.clone()  # their rows finish and, 6 of 10 rows left (<= COMPACT_AT), leave the batch
        if out.shape[0] == len(QUESTIONS):
            out[:2] += bias
        return out

    prompts = [format_prompt(tok, q) for q in QUESTIONS]
    plain = sampling.generate(model, tok, prompts, max_new_tokens=12, temperature=0)
    hf = _hf_greedy(model, tok, prompts, 12)
    torch.testing.assert_close(plain.completion_ids, hf[:, : plain.completion_ids.shape[1]])
    two = sampling.generate(model, tok, prompts, max_new_tokens=12, temperature=0, num_return_sequences=2)
    assert torch.equal(two.completion_ids[::2], two.completion_ids[1::2])
    assert torch.equal(two.completion_ids[::2, : plain.completion_ids.shape[1]], plain.completion_ids)
    h = model.lm_head.register_forward_hook(hook)
    try:
        ended = sampling.generate(model, tok, prompts, max_new_tokens=12, temperature=0, num_return_sequences=2)
    finally:
        h.remove()
    assert ended.n_tokens[:4] == [1, 1, 1, 1] and ended.finished[:4] == [True] * 4
    assert torch.equal(ended.completion_ids[4:], two.completion_ids[4:, : ended.completion_ids.shape[1]])


def test_set_threads_checks_its_argument():
    n = torch.get_num_threads()
    assert sampling.set_threads(1) == 1 and torch.get_num_threads() == 1
    sampling.set_threads(n)
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        sampling.set_threads(0)
