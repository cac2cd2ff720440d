import pytest
import torch

from minir1 import models
from minir1.tokenizer import build_tokenizer
from minir1.train import TrainConfig, encode_example, eval_loss, lr_at, train

EXAMPLES = [(f"<bos>User: {a}+{b}\nAssistant:", f" {a + b}") for a in range(10) for b in range(10)]


def test_every_parameter_moves_and_loss_falls():
    tok = build_tokenizer()
    model = models.build("pico", tok, seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss0 = eval_loss(model, tok, EXAMPLES)
    train(model, tok, EXAMPLES, TrainConfig(steps=40, batch_size=16, lr=5e-3, warmup_steps=5, progress=False))
    moved = {n: not torch.equal(before[n], p) for n, p in model.named_parameters()}
    assert all(moved.values()), [n for n, m in moved.items() if not m]
    assert eval_loss(model, tok, EXAMPLES) < loss0


def test_prompt_tokens_are_masked():
    tok = build_tokenizer()
    ids, labels = encode_example(tok, "<bos>User: 1+2\nAssistant:", " 3")
    n_prompt = len(tok.encode("<bos>User: 1+2\nAssistant:", add_special_tokens=False))
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tok.eos_token_id


def test_loss_ignores_prompt_content():
    """Changing only the prompt tokens' *targets* cannot change the loss: they are masked."""
    tok = build_tokenizer()
    model = models.build("pico", tok)
    a = eval_loss(model, tok, [("<bos>User: 11\nAssistant:", " 5")])
    ids, labels = encode_example(tok, "<bos>User: 11\nAssistant:", " 5")
    logits = model(torch.tensor([ids])).logits[0, :-1]
    tgt = torch.tensor(labels[1:])
    keep = tgt != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], tgt[keep])
    assert abs(a - manual.item()) < 1e-5


def test_deterministic_under_seed():
    tok = build_tokenizer()
    runs = []
    for _ in range(2):
        model = models.build("pico", tok, seed=0)
        train(model, tok, EXAMPLES, TrainConfig(steps=10, batch_size=8, progress=False, seed=3))
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_schedule_and_config_errors():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_frac=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=-1)
    with pytest.raises(ValueError, match="examples"):
        train(models.build("pico", build_tokenizer()), build_tokenizer(), [], TrainConfig(progress=False))
