"""The distillation core: teacher sampling, rejection sampling, SFT on outputs, logit KD."""

import math

import pytest
import torch

from minir1 import models
from minir1.distill import (
    TeacherPairs,
    check_same_tokenizer,
    logit_kd_loss,
    rejection_sample,
    sft_on_outputs,
    teacher_outputs,
    train_logit_kd,
)
from minir1.tokenizer import build_tokenizer, format_prompt
from minir1.train import TrainConfig, collate, encode_example

TOK = build_tokenizer()
PROMPTS = [format_prompt(TOK, q) for q in ("1+2", "3+4", "5+6")]
CFG = TrainConfig(steps=8, batch_size=4, lr=5e-3, warmup_steps=1, progress=False)


def test_logit_kd_zero_when_equal_and_matches_hand_computation():
    x = torch.randn(2, 5, 7)
    assert float(logit_kd_loss(x, x.clone(), torch.ones(2, 5))) == pytest.approx(0.0, abs=1e-6)
    # One position, two tokens: teacher p = softmax([0, ln 3]) = [1/4, 3/4], student q = [1/2, 1/2].
    t = torch.tensor([[[0.0, math.log(3.0)]]])
    s = torch.zeros(1, 1, 2)
    hand = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(logit_kd_loss(s, t, torch.ones(1, 1))) == pytest.approx(hand, rel=1e-5)
    # Temperature 2 halves the logits: teacher becomes softmax([0, ln 3 / 2]).
    p1 = 1 / (1 + math.sqrt(3.0))
    hand_t2 = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    assert float(logit_kd_loss(s, t, torch.ones(1, 1), temperature=2.0)) == pytest.approx(hand_t2, rel=1e-5)


def test_logit_kd_averages_only_masked_positions():
    t = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])
    s = torch.zeros(1, 2, 2)
    only_first = logit_kd_loss(s, t, torch.tensor([[1, 0]]))
    assert float(only_first) == pytest.approx(float(logit_kd_loss(s[:, :1], t[:, :1], torch.ones(1, 1))))
    with pytest.raises(ValueError, match="mask"):
        logit_kd_loss(s, t, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="shape"):
        logit_kd_loss(s, t[:, :1], torch.ones(1, 1))
    with pytest.raises(ValueError, match="temperature"):
        logit_kd_loss(s, t, torch.ones(1, 2), temperature=0)


def test_teacher_outputs_rows_and_accounting():
    teacher = models.build("pico", TOK, seed=0)
    pairs = teacher_outputs(teacher, TOK, PROMPTS, n_samples=2, temperature=1.0, max_new_tokens=6, seed=3)
    assert isinstance(pairs, TeacherPairs) and isinstance(pairs, list) and len(pairs) == 6
    assert [p for p, _ in pairs] == [p for p in PROMPTS for _ in range(2)]
    n_prompt = sum(len(TOK.encode(p)) for p in PROMPTS) * 2
    assert pairs.prompt_tokens == n_prompt and 6 <= pairs.generated_tokens <= 36
    assert pairs.flops == 2.0 * models.n_params(teacher) * (pairs.prompt_tokens + pairs.generated_tokens)
    again = teacher_outputs(teacher, TOK, PROMPTS, n_samples=2, temperature=1.0, max_new_tokens=6, seed=3)
    assert list(again) == list(pairs)  # same seed, same samples
    with pytest.raises(ValueError, match="prompts"):
        teacher_outputs(teacher, TOK, [], max_new_tokens=4)


def test_rejection_sample_keeps_verified_and_raises_on_empty():
    teacher = models.build("pico", TOK, seed=0)
    kept = rejection_sample(teacher, TOK, PROMPTS, verify=lambda p, c: "3+4" in p, n_samples=3, max_new_tokens=4)
    assert len(kept) == 3 and all("3+4" in p for p, _ in kept)
    assert kept.sampled == 9 and kept.accounting()["acceptance_rate"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="accepted none"):
        rejection_sample(teacher, TOK, PROMPTS, verify=lambda p, c: False, n_samples=2, max_new_tokens=4)


def test_sft_on_outputs_moves_every_parameter():
    student = models.build("pico", TOK, seed=1)
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    pairs = [(p, "<think>x</think> <answer>3</answer>") for p in PROMPTS]
    res = sft_on_outputs(student, TOK, pairs, CFG)
    assert res.tokens > 0 and len(res.history) >= 1
    assert all(not torch.equal(before[n], p) for n, p in student.named_parameters())
    with pytest.raises(ValueError, match="pairs"):
        sft_on_outputs(student, TOK, [], CFG)


def _kd_to_teacher(student, teacher, pairs):
    ids, mask, labels = collate([encode_example(TOK, p, c) for p, c in pairs], TOK.pad_token_id)
    with torch.no_grad():
        return float(
            logit_kd_loss(
                student(input_ids=ids, attention_mask=mask).logits[:, :-1],
                teacher(input_ids=ids, attention_mask=mask).logits[:, :-1],
                labels[:, 1:] != -100,
            )
        )


def test_train_logit_kd_brings_student_to_teacher():
    teacher, student = models.build("pico", TOK, seed=0), models.build("pico", TOK, seed=1)
    with torch.no_grad():  # a peaked teacher, so that there is something to learn
        teacher.lm_head.weight.mul_(20.0)
    pairs = [(p, "<think>7</think> <answer>3</answer>") for p in PROMPTS]
    before = _kd_to_teacher(student, teacher, pairs)
    res = train_logit_kd(
        student,
        teacher,
        TOK,
        pairs,
        TrainConfig(steps=30, batch_size=4, lr=1e-2, warmup_steps=1, progress=False),
        teacher_tokenizer=TOK,
    )
    assert _kd_to_teacher(student, teacher, pairs) < 0.5 * before
    assert res.flops > 0 and res.tokens > 0


def test_different_tokenizers_are_refused_clearly():
    other = build_tokenizer()
    other.add_tokens(["<tool>"])
    with pytest.raises(ValueError, match="tokenizers differ"):
        check_same_tokenizer(TOK, other)
    teacher, student = models.build("pico", TOK, seed=0), models.build("pico", TOK, seed=1)
    with pytest.raises(ValueError, match="tokenizers differ"):
        train_logit_kd(student, teacher, TOK, [(PROMPTS[0], "3")], CFG, teacher_tokenizer=other)
    big = models.build("pico", other, seed=0)
    with pytest.raises(ValueError, match="vocab_size"):
        train_logit_kd(student, big, TOK, [(PROMPTS[0], "3")], CFG)
