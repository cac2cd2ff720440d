"""GRPO maths on hand-made tensors, a tiny model that learns, determinism and error messages."""

import math
import statistics

import pytest
import torch

from minir1.grpo import (
    LOSS_TYPES,
    GRPOConfig,
    aggregate,
    group_advantages,
    grpo_loss,
    k3_kl,
    score,
    token_logprobs,
    train_grpo,
)
from minir1.grpo_trl import seven_reward
from minir1.models import build
from minir1.tokenizer import build_tokenizer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster when the two cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- advantages -----------------------------------------------------------------------------


def test_group_advantages_by_hand():
    r = [1.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    # group 1: mean 0.75, unbiased std sqrt((3 * 0.25^2 + 0.75^2) / 3) = 0.5; group 2: all equal -> 0
    adv = group_advantages(r, 4, "group")
    expect = [0.25 / 0.5001, -0.75 / 0.5001, 0.25 / 0.5001, 0.25 / 0.5001, 0, 0, 0, 0]
    torch.testing.assert_close(adv, torch.tensor(expect))
    none = group_advantages(r, 4, "none")  # Dr. GRPO: no division
    torch.testing.assert_close(none, torch.tensor([0.25, -0.75, 0.25, 0.25, 0, 0, 0, 0]))
    batch = group_advantages(r, 4, "batch")  # group mean, batch std
    torch.testing.assert_close(batch, none / (statistics.stdev(r) + 1e-4))


def test_all_equal_groups_have_zero_advantage():
    for scale in ("group", "batch", "none"):
        assert torch.equal(group_advantages([0.3] * 6, 3, scale), torch.zeros(6))


# ---- KL ---------------------------------------------------------------------------------


def test_k3_by_hand_and_unbiased():
    logp, ref = torch.log(torch.tensor([0.5, 0.2])), torch.log(torch.tensor([0.25, 0.2]))
    # Δ = log(0.25/0.5): k3 = 0.5 - log(0.5) - 1 = 0.19315; equal probabilities give 0
    torch.testing.assert_close(k3_kl(logp, ref), torch.tensor([0.5 + math.log(2) - 1, 0.0]))
    # E_{x~p}[k3(x)] = KL(p || q) exactly, which is why GRPO uses it on sampled tokens
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])
    torch.testing.assert_close((p * k3_kl(p.log(), q.log())).sum(), (p * (p / q).log()).sum())
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


# ---- loss -------------------------------------------------------------------------------


def test_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per_token, mask, "grpo").item() == pytest.approx((2 + 4) / 2)  # mean of sequence means
    assert aggregate(per_token, mask, "dapo").item() == pytest.approx((6 + 4) / 4)  # token mean
    assert aggregate(per_token, mask, "dr_grpo", 5).item() == pytest.approx(10 / (2 * 5))  # / (B × L)


def test_clipped_surrogate_by_hand():
    # ratios 1.5 and 0.5 for a positive (A=+1) and a negative (A=-1) sequence, ε = 0.2
    old = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5], [1.5, 0.5]]))
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 2)
    loss, stats = grpo_loss(logp, old, adv, mask, loss_type="dapo")
    # A=+1: -min(1.5, 1.2) = -1.2, -min(0.5, 0.8) = -0.5; A=-1: -min(-1.5, -1.2) = 1.5, -min(-0.5, -0.8) = 0.8
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4)
    assert stats["clip_frac"] == pytest.approx(2 / 4)  # (1.5, A>0) and (0.5, A<0) are clipped
    loss_hi, _ = grpo_loss(logp, old, adv, mask, loss_type="dapo", clip_eps_high=0.6)  # 1.5 < 1.6: unclipped
    assert loss_hi.item() == pytest.approx((-1.5 - 0.5 + 1.5 + 0.8) / 4)
    ref = old.clone()  # β adds β · k3 per token
    loss_kl, stats_kl = grpo_loss(logp, old, adv, mask, ref_logp=ref, kl_coef=0.1, loss_type="dapo")
    assert loss_kl.item() == pytest.approx(loss.item() + 0.1 * k3_kl(logp, ref).mean().item())
    assert stats_kl["kl"] == pytest.approx(k3_kl(logp, ref).mean().item())


def test_first_inner_step_ratio_one_loss_zero_gradient_not_zero():
    torch.manual_seed(0)
    theta = torch.randn(4, 3, 5, requires_grad=True)  # logits of a toy policy (B, C, V)
    tokens = torch.randint(0, 5, (4, 3))
    logp = torch.log_softmax(theta, -1).gather(-1, tokens[..., None])[..., 0]  # (B, C)
    adv = group_advantages([1.0, 0.0, 0.0, 1.0], 2)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    loss, stats = grpo_loss(logp, logp.detach(), adv, mask, loss_type="grpo")
    assert stats["ratio"] == 1.0 and stats["clip_frac"] == 0.0
    # With ratio = 1 the "grpo" loss is -mean_i(A_i), and advantages sum to zero in every group, so it is 0.
    assert abs(loss.item()) < 1e-6
    # The gradient is not zero: ∇(ρ·A) = A·ρ·∇log π = A·∇log π at ρ = 1, the policy gradient.
    pg = -(adv[:, None] * logp * mask).sum(-1) / mask.sum(-1)
    expected = torch.autograd.grad(pg.mean(), theta, retain_graph=True)[0]
    loss.backward()
    assert theta.grad.abs().sum() > 0
    torch.testing.assert_close(theta.grad, expected)


# ---- log-probs ----------------------------------------------------------------------------


def test_token_logprobs_temperature_and_left_padding():
    tok = build_tokenizer()
    model = build("pico", tok, seed=0)
    ids = torch.tensor([[0, 0, 1, 20, 21, 22, 23], [1, 30, 31, 32, 20, 21, 2]])  # row 0 left-padded
    mask = (ids != 0).long()
    lp = token_logprobs(model, ids, mask, 3, temperature=0.5)  # (B, 3)
    logits = model(input_ids=ids[1:]).logits[:, -4:-1] / 0.5
    manual = torch.log_softmax(logits, -1).gather(-1, ids[1:, -3:, None])[..., 0]
    torch.testing.assert_close(lp[1:], manual, atol=1e-5, rtol=1e-5)
    alone = token_logprobs(model, ids[:1, 2:], mask[:1, 2:], 3, temperature=0.5)  # same row, no padding
    torch.testing.assert_close(lp[:1], alone, atol=1e-5, rtol=1e-5)


# ---- training ---------------------------------------------------------------------------


class Toy:
    task, key = "toy", "7"

    def __init__(self, i):
        self.question = f"q{i}"


seven = seven_reward  # reward 1 when a completion starts with "7" (minir1.grpo_trl)


def toy_run(seed=0, steps=12, **kw):
    tok = build_tokenizer()
    model = build("pico", tok, seed=0)
    cfg = GRPOConfig(
        **{
            **dict(
                group_size=8, batch_size=64, steps=steps, max_completion_length=2, lr=3e-2, log_every=0, eval_every=4
            ),
            **kw,
        }
    )
    evals = []
    res = train_grpo(
        model,
        tok,
        [Toy(i) for i in range(8)],
        [seven],
        cfg,
        accuracy_funcs={"seven": seven},
        eval_fn=lambda m: evals.append(1) or {"calls": len(evals)},
        seed=seed,
    )
    return model, res


def test_tiny_model_learns_to_say_seven():
    init = build("pico", build_tokenizer(), seed=0).state_dict()
    model, res = toy_run(steps=15)
    first, last = res.history[0], res.history[-1]
    assert first["reward"] < 0.1 and last["reward"] > 0.7  # 1/104 at random, most samples after 15 steps
    for name, p in model.state_dict().items():
        assert not torch.equal(p, init[name]), f"{name} did not move"
    assert last["acc_seven"] == last["reward"] and last["kl"] > 0
    assert [e["step"] for e in res.evals] == [0, 4, 8, 12, 15]
    for r in res.history:
        assert all(math.isfinite(r[k]) for k in ("loss", "reward", "kl", "clip_frac", "tok_per_s", "wall_s"))
        assert 0 <= r["frac_zero_std"] <= 1 and r["len"] <= 2


def test_inner_iterations_use_old_logprobs():
    _, res = toy_run(steps=3, num_iterations=2, kl_coef=0.04, loss_type="dapo", scale_rewards="none")
    assert len(res.history) == 3 and all(math.isfinite(r["loss"]) for r in res.history)


def test_same_seed_same_numbers():
    timing = {"tok_per_s", "sample_s", "step_s", "wall_s"}
    runs = [toy_run(seed=3, steps=4) for _ in range(2)]
    other = toy_run(seed=4, steps=4)
    strip = [[{k: v for k, v in r.items() if k not in timing} for r in res.history] for _, res in runs]
    assert strip[0] == strip[1]
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(runs[0][0].parameters(), other[0].parameters()))


@pytest.mark.parametrize("log_kl", [False, True])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_zero_advantage_groups_skip_backward_exactly(monkeypatch, loss_type, log_kl):
    """Skipping the backward pass of all-equal-reward groups leaves the loss, stats and update unchanged."""
    from minir1 import grpo

    tok = build_tokenizer()
    cfg = GRPOConfig(group_size=4, batch_size=12, max_completion_length=5, loss_type=loss_type, lr=1e-2)
    problems = [Toy(i) for i in range(3)]
    policy = build("pico", tok, seed=0)
    ref = build("pico", tok, seed=1) if log_kl else None
    ro = grpo.make_rollout(policy, tok, problems, [seven], cfg, seed=0, ref_model=ref)
    ro.rewards = torch.tensor([1.0, 0.0, 0.0, 1.0] + [0.5] * 4 + [0.0, 0.0, 1.0, 0.0])  # group 1: no signal
    ro.adv = group_advantages(ro.rewards, 4)
    out = {}
    for skip in (False, True):
        monkeypatch.setattr(grpo, "SKIP_ZERO_ADVANTAGE_GROUPS", skip)
        model = build("pico", tok, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        out[skip] = grpo._update(model, opt, ro, cfg), [p.detach().clone() for p in model.parameters()]
    (a, pa), (b, pb) = out[False], out[True]
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6, nan_ok=True), k
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
    ro.adv = torch.zeros_like(ro.adv)  # no signal anywhere: no backward at all, AdamW still steps on zeros
    model = build("pico", tok, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    assert grpo._update(model, opt, ro, cfg)["loss"] == 0.0
    assert all(len(opt.state[p]) for p in model.parameters())


# ---- errors -----------------------------------------------------------------------------


def test_error_messages():
    with pytest.raises(ValueError, match="group_size must be an int >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="group_size must be an int >= 2"):
        group_advantages([1.0, 0.0], 1)
    with pytest.raises(ValueError, match=r"batch_size \(10\) must be a positive multiple of group_size \(4\)"):
        GRPOConfig(group_size=4, batch_size=10)
    with pytest.raises(ValueError, match=r"multiple of group_size \(4\)"):
        group_advantages([1.0] * 6, 4)
    with pytest.raises(ValueError, match="loss_type must be one of 'grpo', 'dapo', 'dr_grpo'; got 'ppo'"):
        GRPOConfig(loss_type="ppo")
    with pytest.raises(ValueError, match="loss_type must be one of"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "bnpo")
    with pytest.raises(ValueError, match="scale_rewards must be one of 'group', 'batch', 'none'"):
        GRPOConfig(scale_rewards=True)
    with pytest.raises(ValueError, match="scale must be one of 'group', 'batch', 'none'; got 'std'"):
        group_advantages([1.0, 0.0], 2, "std")
    with pytest.raises(ValueError, match="returned 1 rewards for 2 completions"):
        score([lambda completions, **kw: [1.0]], ["a", "b"], ["t", "t"], ["k", "k"])
    with pytest.raises(ValueError, match="needs max_completion_length"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "dr_grpo")
    tok = build_tokenizer()
    with pytest.raises(ValueError, match="reward_weights has 2 entries but there are 1 reward functions"):
        train_grpo(None, tok, [Toy(0)], [seven], GRPOConfig(reward_weights=(1.0, 0.5)))
    bad = lambda completions, **kw: [1.0]  # noqa: E731
    with pytest.raises(ValueError, match="returned 1 rewards for 16 completions"):
        train_grpo(
            build("pico", tok),
            tok,
            [Toy(i) for i in range(8)],
            [bad],
            GRPOConfig(group_size=8, batch_size=16, max_completion_length=2, log_every=0),
            accuracy_funcs={},
        )


def test_grpo_does_not_import_its_trl_peer():
    """grpo_trl is a peer of grpo (it imports grpo's config and types); grpo never imports grpo_trl."""
    import ast
    import inspect

    import minir1.grpo as grpo

    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(grpo))):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
    assert not any("grpo_trl" in m for m in imported), imported
    with pytest.raises(TypeError):
        train_grpo(None, build_tokenizer(), [Toy(0)], [seven], GRPOConfig(), engine="trl")


def test_real_task_default_accuracy_and_eval():
    from minir1.rewards import accuracy_reward, format_reward
    from minir1.tasks import get_task

    task = get_task("addition", 1)
    tok = build_tokenizer()
    cfg = GRPOConfig(
        group_size=4,
        batch_size=8,
        steps=2,
        max_completion_length=8,
        log_every=0,
        eval_every=0,
        reward_weights=(1.0, 0.5),
    )
    res = train_grpo(
        build("pico", tok),
        tok,
        task.sample("train", 8, seed=0),
        [accuracy_reward, format_reward],
        cfg,
        eval_problems=task.sample("test", 4, seed=0),
        seed=0,
    )
    r = res.history[-1]
    assert {"acc_strict", "acc_lenient", "acc_format", "reward_accuracy_reward", "reward_format_reward"} <= set(r)
    assert r["acc_format"] == pytest.approx(r["reward_format_reward"])  # the component, logged whatever is optimised
    assert r["prompt_tokens"] > 0
    assert r["reward"] == pytest.approx(r["reward_accuracy_reward"] + 0.5 * r["reward_format_reward"])
    assert [e["step"] for e in res.evals] == [0, 2]
    assert set(res.evals[0]) == {"step", "acc_strict", "acc_lenient", "acc_format", "len"}
