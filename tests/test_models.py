import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from minir1 import models
from minir1.tokenizer import build_tokenizer


def test_presets_sizes_ordered():
    tok = build_tokenizer()
    sizes = {p: models.n_params(models.build(p, tok)) for p in models.PRESETS}
    assert sizes["pico"] < sizes["nano"] < sizes["micro"] < sizes["mini"]
    assert 0.8e6 < sizes["micro"] < 1.3e6  # REFERENCE's feasibility size (~1.05M)
    # n_params counts tied embeddings once, like sum(p.numel()) over parameters().
    m = models.build("nano", tok)
    assert models.n_params(m) == sum(p.numel() for p in m.parameters())


def test_build_is_seeded():
    tok = build_tokenizer()
    a, b, c = (models.build("pico", tok, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_unknown_preset_error():
    with pytest.raises(FileNotFoundError, match="preset"):
        models.load("gigantic")
    with pytest.raises(ValueError, match="preset must be one of"):
        models.build("gigantic", build_tokenizer())


def test_missing_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        models.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        models.load(tmp_path / "empty")


def test_save_load_roundtrip(tmp_path):
    model, tok = models.load("pico")
    models.save(model, tok, tmp_path / "ckpt")
    assert list((tmp_path / "ckpt").glob("*.safetensors"))
    m2, t2 = models.load(tmp_path / "ckpt")
    ids = torch.tensor([tok.encode("12+34=46")])
    assert torch.allclose(model(ids).logits, m2(ids).logits)
    assert t2.chat_template == tok.chat_template


def test_load_real_hf_checkpoint_qwen2(tmp_path):
    """The gpu profile's route: a real Hugging Face checkpoint directory (here a tiny Qwen2)."""
    tok = build_tokenizer()
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(cfg)
    qwen.save_pretrained(tmp_path / "qwen", safe_serialization=True)
    tok.save_pretrained(tmp_path / "qwen")
    model, tok2 = models.load(tmp_path / "qwen")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    ids = torch.tensor([tok2.encode("7+8")])
    assert torch.allclose(model(ids).logits, qwen(ids).logits, atol=1e-6)
    assert tok2.padding_side == "left" and tok2.pad_token is not None
