"""Rejection-sampling fine-tuning on a pico model and two problems."""

import dataclasses
import random

import pytest
import torch

from minir1.models import build
from minir1.rewards import accuracy_reward
from minir1.rft import RFTConfig, RFTResult, rft
from minir1.tasks import get_task
from minir1.tokenizer import build_tokenizer, format_prompt
from minir1.train import TrainConfig, train

TASK = get_task("addition", 1)
PROBLEMS = TASK.sample("train", 2, seed=0)
SFT = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=1, progress=False, log_every=1)
CFG = RFTConfig(samples_per_problem=8, temperature=1.0, max_new_tokens=24, rounds=2, sft=SFT)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def warm(tokenizer):
    """A pico model taught (briefly) to answer the two problems, right often but not always."""
    torch.manual_seed(0)
    model = build("pico", tokenizer, seed=0)
    rng = random.Random(0)
    pairs = [
        (format_prompt(tokenizer, p.question), " " + TASK.completion(p, rng, error_rate=0.3))
        for p in PROBLEMS
        for _ in range(8)
    ]
    train(model, tokenizer, pairs, TrainConfig(steps=60, batch_size=8, lr=1e-2, warmup_steps=5, progress=False))
    return model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_keeps_only_verified_traces_and_trains(warm, tokenizer):
    before = _state(warm)
    res = rft(warm, tokenizer, PROBLEMS, accuracy_reward, CFG, seed=0)
    assert isinstance(res, RFTResult)
    assert res.n_kept > 0, "the warmed-up model should solve some samples"
    assert res.n_kept == len(res.traces) == sum(r["kept"] for r in res.rounds)
    assert res.n_sampled == CFG.rounds * CFG.samples_per_problem * len(PROBLEMS)
    by_prompt = {format_prompt(tokenizer, p.question): p for p in PROBLEMS}
    for prompt, completion in res.traces:
        p = by_prompt[prompt]
        assert accuracy_reward([completion], task=[p.task], key=[p.key]) == [1.0]
    for r in res.rounds:  # deduplicated, at most one kept per verified sample
        assert r["kept"] <= r["verified"] <= r["sampled"]
        assert 0 <= r["problems_solved"] <= len(PROBLEMS)
    # the costs add up; training ran, and only on rounds that kept something
    assert res.sampling_flops > 0 and res.training_flops > 0
    assert res.flops == pytest.approx(res.sampling_flops + res.training_flops)
    assert res.training_flops == pytest.approx(sum(r["training_flops"] for r in res.rounds))
    assert all((r["training_flops"] > 0) == (r["kept"] > 0) for r in res.rounds)
    # a fine-tuned copy; the model passed in is untouched
    after = res.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(before[k], v) for k, v in warm.state_dict().items())


def test_deterministic_in_seed(warm, tokenizer):
    cfg = dataclasses.replace(CFG, rounds=1)
    a = rft(warm, tokenizer, PROBLEMS, accuracy_reward, cfg, seed=3)
    b = rft(warm, tokenizer, PROBLEMS, accuracy_reward, cfg, seed=3)
    assert a.traces == b.traces and a.rounds == b.rounds
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    c = rft(warm, tokenizer, PROBLEMS, accuracy_reward, cfg, seed=4)
    assert c.traces != a.traces or c.rounds != a.rounds


def test_nothing_verified_means_nothing_trained(warm, tokenizer):
    res = rft(warm, tokenizer, PROBLEMS, lambda completions, **kw: [0.0] * len(completions), CFG, seed=0)
    assert res.n_kept == 0 and res.traces == [] and res.training_flops == 0.0
    assert res.flops == res.sampling_flops > 0
    assert all(torch.equal(v, warm.state_dict()[k]) for k, v in res.model.state_dict().items())


def test_filter_follows_the_reward_and_dedupes(warm, tokenizer):
    calls = []

    def even_length(completions, task, key, **kw):
        calls.append((list(task), list(key)))
        return [float(len(c) % 2 == 0) for c in completions]

    cfg = dataclasses.replace(CFG, rounds=1, dedupe=False)
    res = rft(warm, tokenizer, PROBLEMS, even_length, cfg, seed=1)
    assert all(len(c) % 2 == 0 for _, c in res.traces)
    assert calls[0][0] == ["addition"] * 16 and calls[0][1][:8] == [PROBLEMS[0].key] * 8
    deduped = rft(warm, tokenizer, PROBLEMS, even_length, dataclasses.replace(cfg, dedupe=True), seed=1)
    assert deduped.traces == list(dict.fromkeys(res.traces))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"samples_per_problem": 0}, "samples_per_problem must be an int >= 1"),
        ({"rounds": 0}, "rounds must be"),
        ({"max_new_tokens": 1.5}, "max_new_tokens must be"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"top_p": 0.0}, "top_p must be in"),
        ({"sft": {"steps": 3}}, "sft must be a minir1.train.TrainConfig"),
        ({"sft": TrainConfig(pack=True)}, "sft.pack must be False"),
        ({"template": "chatml"}, "template must be one of"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RFTConfig(**kwargs)


def test_input_errors(warm, tokenizer):
    with pytest.raises(ValueError, match="problems must be a non-empty"):
        rft(warm, tokenizer, [], accuracy_reward, CFG, seed=0)
    with pytest.raises(ValueError, match=r"problems\[1\] is not one"):
        rft(warm, tokenizer, [PROBLEMS[0], "1+2"], accuracy_reward, CFG, seed=0)
    with pytest.raises(ValueError, match="reward_fn must be a reward function"):
        rft(warm, tokenizer, PROBLEMS, None, CFG, seed=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        rft(warm, tokenizer, PROBLEMS, accuracy_reward, CFG, seed=-1)
    with pytest.raises(ValueError, match="cfg must be an RFTConfig"):
        rft(warm, tokenizer, PROBLEMS, accuracy_reward, SFT, seed=0)
    one = dataclasses.replace(CFG, rounds=1)
    with pytest.raises(ValueError, match="one reward per completion"):
        rft(warm, tokenizer, PROBLEMS, lambda completions, **kw: [1.0], one, seed=0)
    with pytest.raises(ValueError, match="finite numbers"):
        rft(warm, tokenizer, PROBLEMS, lambda completions, **kw: [float("nan")] * len(completions), one, seed=0)
