"""minir1.flops: the per-arm FLOPs ledger, pure functions with hand-computed values (issue 24)."""

import pytest

from minir1 import flops


def test_forward_and_backward():
    assert flops.forward(1e6, 1000) == 2e9 and flops.forward_backward(1e6, 1000) == 6e9
    assert flops.forward(10, [1, 2, 3]) == 120.0
    for bad in (-1, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError):
            flops.forward(bad, 10)
        with pytest.raises(ValueError):
            flops.forward(10, bad)


def test_training_counts_prompt_and_completion_tokens():
    # The RL chapter's SFT baseline was budgeted on completion tokens only: the prompt costs too.
    only_completion = flops.forward_backward(1e6, 400)
    both = flops.train_tokens(1e6, prompt=200, completion=400)
    assert both == 6e6 * 600 and both / only_completion == pytest.approx(1.5)


def test_sampling_with_and_without_kv_cache():
    assert flops.sampling(10, prompt=4, completion=6) == 200.0
    assert flops.sampling(10, prompt=4, completion=6, samples=8) == 1600.0
    assert flops.sampling(10, prompt=[4, 2], completion=[6, 1]) == 260.0
    # Without a cache: tokens 1..c re-run prompt + c - 1 tokens each.
    assert flops.sampling(10, prompt=4, completion=3, kv_cache=False) == 2 * 10 * (4 + 5 + 6)
    assert flops.sampling(10, prompt=[4, 1], completion=[3, 2], kv_cache=False) == 2 * 10 * (15 + 3)
    with pytest.raises(ValueError, match="pair up"):
        flops.sampling(10, prompt=[4], completion=[3, 2], kv_cache=False)
    with pytest.raises(ValueError, match="samples"):
        flops.sampling(10, prompt=4, completion=3, samples=0)


def test_grpo_step_items():
    n, p, c, g = 1e6, 50, 100, 8
    seq = g * (p + c)
    base = 2 * n * seq + 6 * n * seq  # sampling the group + the policy's forward and backward
    assert flops.grpo_step(n, prompt=p, completion=c, group=g, reference=False) == base
    assert flops.grpo_step(n, prompt=p, completion=c, group=g) == base + 2 * n * seq  # + reference
    two = flops.grpo_step(n, prompt=p, completion=c, group=g, passes=2)
    assert two == 2 * n * seq + 2 * 6 * n * seq + 2 * n * seq + 2 * n * seq  # + reference + old policy
    with pytest.raises(ValueError, match="passes"):
        flops.grpo_step(n, prompt=p, completion=c, group=g, passes=0)


def test_teacher_traces_and_ledgers():
    traces = flops.teacher_traces(4e6, prompt=30, completion=70, samples=4)
    assert traces == 4 * 2 * 4e6 * 100
    distill = flops.Ledger("distill").add("teacher traces", traces).add("student SFT", 6e9)
    distill = distill.add("student SFT", 1e9)
    assert distill.total == traces + 7e9 and distill.by_item()["student SFT"] == 7e9
    assert distill.to_dict() == {"arm": "distill", "total": traces + 7e9, "items": distill.by_item()}
    grpo = flops.Ledger("grpo").add("grpo", 1.04 * distill.total)
    sft = flops.Ledger("sft").add("sft", 1.54 * distill.total)
    assert flops.unmatched([distill, grpo]) == []
    bad = flops.unmatched([distill, grpo, sft])
    assert [(a, b) for a, b, _ in bad] == [("distill", "sft"), ("grpo", "sft")]
    assert bad[0][2] == pytest.approx(1.54)
    with pytest.raises(ValueError):
        distill.add("", 1.0)
    with pytest.raises(ValueError):
        distill.add("x", -1.0)


def test_within():
    assert flops.within(100, 105) and flops.within(105, 100) and not flops.within(100, 106)
    assert flops.within(8.1e11, 5.25e11, tol=0.6) and not flops.within(8.1e11, 5.25e11)
    assert flops.within(0, 0) and not flops.within(0, 1)
    with pytest.raises(ValueError):
        flops.within(-1, 1)
