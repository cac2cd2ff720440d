"""Our GRPO maths against TRL 1.16's GRPOTrainer, and the TRL engine (``train_grpo_trl``).

The cross-check feeds one fixed batch (left-padded prompts of different lengths, completions of
different lengths, one all-equal reward group) to both sides:

* TRL: ``trainer._generate_and_score_completions(rows)`` with a ``rollout_func`` that returns our
  token ids and a reward function that returns our rewards, so TRL computes its own advantages,
  old log-probs (num_iterations = 2) and reference log-probs (β > 0); then the policy moves and
  ``trainer._compute_loss(model, inputs)`` gives TRL's loss, whose gradients we compare.
* ours: ``group_advantages``, ``token_logprobs`` and ``grpo_loss`` on the same tensors.
"""

import copy

import pytest
import torch

trl = pytest.importorskip("trl")
# transformers deprecations raised inside TRL, and TRL's note that rollout_func is experimental
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:You are using 'rollout_func':UserWarning"),
]
from datasets import Dataset  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from minir1.grpo import LOSS_TYPES, SCALES, GRPOConfig, group_advantages, grpo_loss, token_logprobs  # noqa: E402
from minir1.grpo_trl import benchmark_grpo, seven_reward, to_trl_config, train_grpo_trl  # noqa: E402
from minir1.tokenizer import build_tokenizer  # noqa: E402

G, T, C_MAX = 4, 0.7, 6
REWARDS = [1.0, 0.0, 0.5, 1.0, 0.2, 0.2, 0.2, 0.2, 0.0, 1.0, 0.0, 0.0]  # group 2 has zero spread
KL_VARIANTS = [(0.0, False), (0.04, False), (0.04, True)]  # (β, KL × ratio as in DeepSeek-V3.2)
PROMPTS = ["<bos>User: 12+3\nAssistant:", "<bos>User: 7\nAssistant:", "<bos>User: 345+67\nAssistant:"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster when the two cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_llama(vocab: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(cfg)


def perturbed(model, seed: int, std: float):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return m


def fixed_batch(tok):
    """Prompt ids per row (prompt-major, G rows each) and completion ids of lengths 1..C_MAX."""
    g = torch.Generator().manual_seed(1)
    prompt_ids, completion_ids = [], []
    for i, p in enumerate(PROMPTS):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        for j in range(G):
            n = 1 + (i * G + j) % C_MAX
            comp = torch.randint(8, len(tok), (n,), generator=g).tolist()
            if j % 2 == 0:  # half of the rows end with eos
                comp[-1] = tok.eos_token_id
            prompt_ids.append(ids)
            completion_ids.append(comp)
    return prompt_ids, completion_ids


def padded(rows, pad_id, side):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, sl], mask[i, sl] = torch.tensor(r), 1
    return ids, mask


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = build_tokenizer()
    ref = tiny_llama(len(tok), seed=0)
    policy0 = perturbed(ref, seed=1, std=0.05)  # the rollout policy (≠ reference, so KL > 0)
    policy1 = perturbed(policy0, seed=2, std=0.05)  # after some updates: 26% of ratios leave [1-ε, 1+ε]
    p_ids, c_ids = fixed_batch(tok)
    refdir = str(tmp_path_factory.mktemp("ref"))
    ref.save_pretrained(refdir)
    trainers = {}
    for beta, corr in KL_VARIANTS:
        trl_model = copy.deepcopy(policy0)
        trl_model.config._name_or_path = refdir  # TRL loads its reference from here when β > 0
        args = trl.GRPOConfig(
            output_dir=str(tmp_path_factory.mktemp("trl")),
            report_to="none",
            use_cpu=True,
            per_device_train_batch_size=len(REWARDS),
            num_generations=G,
            max_completion_length=C_MAX,
            temperature=T,
            beta=beta,
            num_iterations=2,
            use_bias_correction_kl=corr,
            epsilon=0.2,
            epsilon_high=0.28,
            disable_tqdm=True,
            seed=0,
            bf16=False,
        )  # TRL 1.16 defaults to bf16 autocast, even on CPU
        trainers[beta, corr] = trl.GRPOTrainer(
            model=trl_model,
            args=args,
            processing_class=tok,
            reward_funcs=[lambda completions, idx, **kw: [REWARDS[i] for i in idx]],
            train_dataset=Dataset.from_dict({"prompt": PROMPTS, "idx": [0, 1, 2]}),
            rollout_func=lambda prompts, trainer: {"prompt_ids": p_ids, "completion_ids": c_ids, "logprobs": None},
        )
    return tok, ref, policy0, policy1, p_ids, c_ids, trainers


def trl_loss_and_grads(trainer, policy0, policy1, loss_type, scale):
    trainer.loss_type, trainer.scale_rewards = loss_type, scale
    trainer.current_gradient_accumulation_steps = 1
    model = trainer.model
    model.load_state_dict(policy0.state_dict())
    model.train()
    rows = [{"prompt": PROMPTS[i // G], "idx": i} for i in range(len(REWARDS))]
    inputs = trainer._generate_and_score_completions(rows)
    model.load_state_dict(policy1.state_dict())
    model.zero_grad(set_to_none=True)
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    return inputs, loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("beta,corr", KL_VARIANTS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_and_grads_match_trl(setup, loss_type, scale, beta, corr):
    tok, ref, policy0, policy1, p_ids, c_ids, trainers = setup
    inputs, trl_loss, trl_grads = trl_loss_and_grads(trainers[beta, corr], policy0, policy1, loss_type, scale)

    adv = group_advantages(REWARDS, G, scale)
    torch.testing.assert_close(inputs["advantages"], adv, atol=1e-6, rtol=1e-6)

    pi, pm = padded(p_ids, tok.pad_token_id, "left")
    ci, cm = padded(c_ids, tok.pad_token_id, "right")
    torch.testing.assert_close(inputs["completion_ids"], ci)
    ids, mask = torch.cat([pi, ci], 1), torch.cat([pm, cm], 1)
    with torch.no_grad():
        old = token_logprobs(policy0, ids, mask, ci.shape[1], T)
        ref_logp = token_logprobs(ref, ids, mask, ci.shape[1], T) if beta else None
    torch.testing.assert_close(old, inputs["old_per_token_logps"], atol=1e-5, rtol=1e-5)
    if beta:
        torch.testing.assert_close(ref_logp, inputs["ref_per_token_logps"], atol=1e-5, rtol=1e-5)

    for group in (None, G):  # full sequences; each prompt run once for its G rows (as train_grpo does)
        model = copy.deepcopy(policy1).train()
        logp = token_logprobs(model, ids, mask, ci.shape[1], T, group=group)
        loss, stats = grpo_loss(
            logp,
            old,
            adv,
            cm,
            ref_logp=ref_logp,
            kl_coef=beta,
            clip_eps_low=0.2,
            clip_eps_high=0.28,
            loss_type=loss_type,
            max_completion_length=C_MAX,
            kl_ratio_correction=corr,
        )
        loss.backward()
        assert stats["clip_frac"] > 0  # the batch really exercises the clipped branch
        torch.testing.assert_close(loss.detach(), trl_loss, atol=1e-5, rtol=1e-5)
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.grad, trl_grads[n], atol=1e-5, rtol=1e-4, msg=lambda m: f"{n}: {m}")


def test_trl_config_mapping():
    cfg = GRPOConfig(
        group_size=4,
        batch_size=8,
        steps=3,
        num_iterations=2,
        kl_coef=0.04,
        clip_eps_low=0.2,
        clip_eps_high=0.28,
        loss_type="dr_grpo",
        scale_rewards="none",
        lr=1e-4,
        temperature=0.7,
    )
    args = to_trl_config(cfg, output_dir="/tmp/unused-minir1", seed=3, reward_weights=[1.0])
    assert (args.num_generations, args.per_device_train_batch_size, args.max_steps) == (4, 8, 6)
    assert (args.beta, args.epsilon, args.epsilon_high) == (0.04, 0.2, 0.28)
    assert (args.loss_type, args.scale_rewards, args.num_iterations, args.temperature) == ("dr_grpo", "none", 2, 0.7)
    assert (args.learning_rate, args.report_to, args.lr_scheduler_type.value) == (1e-4, [], "constant")


class Toy:
    task, key = "toy", "7"

    def __init__(self, i):
        self.question = f"q{i}"


seven = seven_reward  # reward 1 when a completion starts with "7" (minir1.grpo_trl)


def spread(completions, **kw):  # varies between samples of a random model, so advantages are not all zero
    return [sum(map(ord, c)) % 5 / 4 for c in completions]


def test_trl_engine_runs_offline():
    tok = build_tokenizer()
    model = tiny_llama(len(tok), seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = GRPOConfig(
        group_size=2, batch_size=4, steps=2, max_completion_length=6, kl_coef=0.04, lr=1e-3, log_every=0, eval_every=1
    )
    res = train_grpo_trl(
        model,
        tok,
        [Toy(i) for i in range(4)],
        [spread],
        cfg,
        accuracy_funcs={"strict": seven},
        eval_fn=lambda m: {"one": 1.0},
        seed=0,
    )
    assert [r["step"] for r in res.history] == [1, 2]
    assert [e["step"] for e in res.evals] == [0, 1, 2]
    for r in res.history:
        assert 0 <= r["reward"] <= 1 and 0 <= r["acc_strict"] <= 1 and r["kl"] >= 0 and r["tokens"] > 0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert "forward" not in model.__dict__  # TRL's fused-head patch is removed


def test_benchmark_runs():
    tok = build_tokenizer()
    cfg = GRPOConfig(group_size=2, batch_size=4, max_completion_length=6, log_kl=False, log_every=0)
    out = benchmark_grpo(tiny_llama(len(tok), 0), tok, [Toy(i) for i in range(4)], [seven], cfg, steps=1)
    for engine in ("minir1", "trl"):
        assert out[engine]["steps_per_s"] > 0 and out[engine]["tok_per_s"] > 0
    assert out["speedup_steps"] > 0
