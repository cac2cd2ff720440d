"""The GPU edition, tested on the CPU: presets, bf16 autocast, time estimates, the device check."""

import importlib
import json

import pytest
import torch

from minir1 import gpu_check, gpu_estimate, models, train
from minir1.corpus import CorpusConfig, build_corpus
from minir1.experiments.recipes import gpu_stages
from minir1.tokenizer import build_tokenizer

CHAPTERS = gpu_check.CHAPTERS


def _docs(n=40):
    return [("", d) for d in build_corpus(CorpusConfig(n_docs=n))]


def _train(cfg, seed=0):
    tok = build_tokenizer()
    model = models.build("pico", tok, seed=seed)
    res = train.train(model, tok, _docs(), cfg)
    return model, res


# ----------------------------------------------------------------------------- presets
def test_gpu_presets_are_20_to_100m_and_the_old_ones_unchanged():
    tok = build_tokenizer()
    assert models.PRESETS["mini"] == models.ModelPreset(d_model=256, n_layer=5, n_head=8, d_ff=768)
    sizes = {}
    for name in ("small", "medium"):
        p = models.PRESETS[name]
        sizes[name] = gpu_estimate.llama_params(p.d_model, p.n_layer, p.d_ff, len(tok))
        assert 20e6 <= sizes[name] <= 100e6
    assert sizes["small"] == models.n_params(models.build("small", tok)) == 27_324_928
    assert len(tok) == gpu_stages.VOCAB


def test_gpu_base_trains_to_20_tokens_per_parameter():
    from minir1.experiments.recipes import base

    cfg = base.PROFILES["gpu"]
    n, _ = gpu_stages.preset_size(cfg.preset)
    assert cfg.train.pack and cfg.train.bf16
    assert cfg.train.steps * cfg.train.batch_size * cfg.train.seq_len / n >= 20
    assert cfg.train.seq_len <= models.PRESETS[cfg.preset].max_len


# ----------------------------------------------------------------------------- bf16
def test_bf16_is_off_by_default_and_off_is_the_old_autocast_bit_for_bit(monkeypatch):
    cfg = train.TrainConfig(steps=3, batch_size=4, pack=True, seq_len=32, warmup_steps=1, progress=False)
    assert cfg.bf16 is False
    m_new, r_new = _train(cfg)

    def old(dev, bf16):  # the loop's autocast before the bf16 field existed
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    monkeypatch.setattr(train, "_autocast", old)
    m_old, r_old = _train(cfg)
    assert [h["loss"] for h in r_new.history] == [h["loss"] for h in r_old.history]
    assert all(torch.equal(a, b) for a, b in zip(m_new.parameters(), m_old.parameters()))


def test_bf16_autocast_runs_on_cpu_and_changes_the_arithmetic():
    cfg = train.TrainConfig(steps=3, batch_size=4, pack=True, seq_len=32, warmup_steps=1, progress=False, log_every=1)
    _, r32 = _train(cfg)
    m16, r16 = _train(train.TrainConfig(**{**cfg.__dict__, "bf16": True}))
    losses = [h["loss"] for h in r16.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses != [h["loss"] for h in r32.history]
    assert all(p.dtype == torch.float32 for p in m16.parameters())  # autocast: fp32 master weights
    with train._autocast(torch.device("cpu"), True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16


# ----------------------------------------------------------------------------- estimates
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_estimates_its_gpu_run_within_the_budget(chapter):
    mod = importlib.import_module(f"minir1.experiments.{chapter}")
    est = mod.estimate_gpu(mod.PROFILES["gpu"])
    assert est["chapter"] == chapter and est["minutes"] <= gpu_estimate.BUDGET_MINUTES
    assert est["flops"] >= 0 and json.loads(json.dumps(est)) == est
    assert est["max_params"] <= 100e6


def test_the_training_chapters_use_a_20m_plus_base():
    est = {c: gpu_check.estimate(c) for c in ("lab", "rl", "distillation")}
    assert all(e["max_params"] >= 20e6 for e in est.values())
    assert est["lab"]["minutes"] > 1  # pretraining 550M tokens is real work even on an H100


def test_estimator_arithmetic():
    s = gpu_estimate.training("t", params=10**6, n_layer=2, steps=10, batch=4, seq_len=8)
    assert gpu_estimate.stage_flops(s) == 6e6 * 320
    fast = gpu_estimate.stage_seconds(s, peak=1e30)
    assert fast == pytest.approx(10 * 2 * gpu_estimate.TRAIN_LAYER_SECONDS)  # launch-bound floor
    g = gpu_estimate.generation("g", 10**6, 2, n_sequences=300, new_tokens=5, batch=256)
    assert g.gen_steps == 2 * 5 and gpu_estimate.stage_flops(g) == 2e6 * 1500
    assert gpu_estimate.bf16_peak("NVIDIA H100 80GB HBM3") == gpu_estimate.H100_BF16_DENSE_PEAK
    assert gpu_estimate.bf16_peak("a cpu") is None
    assert gpu_estimate.mfu(1e12, 2.0, 1e12) == 0.5
    assert "min by estimate" in gpu_estimate.format_estimate(gpu_estimate.estimate("x", [s, g]))
    with pytest.raises(ValueError):
        gpu_estimate.Stage("bad", -1, 1)


def test_estimate_cli_prints_json(capsys):
    assert gpu_check.main(["--estimate", "lab"]) == 0
    assert json.loads(capsys.readouterr().out)["chapter"] == "lab"
    assert gpu_check.main(["--estimate", "rl", "--line"]) == 0
    assert capsys.readouterr().out.startswith("rl: ~")
    with pytest.raises(ValueError, match="chapter"):
        gpu_check.estimate("nope")


# ----------------------------------------------------------------------------- the device check
def test_gpu_check_runs_tiny_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path / "art"))
    out = tmp_path / "gpu-check.json"
    assert gpu_check.main(["--tiny", "--chapters", "lab", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["tiny"] and rec["device_type"] in ("cpu", "cuda")
    assert rec["throughput"]["tokens_per_s"] > 0 and rec["throughput"]["bf16"]
    lab = rec["chapters"]["lab"]
    assert lab["bit_identical"] and lab["n_metrics"] > 0 and lab["estimate_minutes"] <= 60
    assert rec["bit_identical"] and rec["skipped"] == []
    assert not (tmp_path / "art").exists() or not any((tmp_path / "art").iterdir())  # fresh folders per run


def test_gpu_check_needs_no_notebook_or_test_tooling():
    import ast
    from pathlib import Path

    src = Path(gpu_check.__file__).read_text()
    names = {a.name.split(".")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"papermill", "nbformat", "jupyter", "pytest", "IPython"}
