import dataclasses

import pytest

from minir1.experiments import lab
from minir1.corpus import CorpusConfig, build_corpus
from minir1.results import metric
from minir1.tasks import get_task
from minir1.train import TrainConfig


@pytest.fixture()
def tiny_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    tiny = lab.LabConfig(preset="pico", corpus=CorpusConfig(n_docs=300),
                         train=TrainConfig(steps=3, batch_size=4, pack=True, seq_len=64, progress=False))
    monkeypatch.setitem(lab.LAB_PROFILES, "smoke", tiny)
    monkeypatch.setitem(lab.EVAL_SIZES, "smoke", (3, 4))
    return tmp_path


def test_corpus_uses_train_split_only():
    docs = build_corpus(CorpusConfig(n_docs=500, tasks=(("addition", 1, 1.0),)))
    test_qs = {p.question for p in get_task("addition", 1).sample("test", 27, seed=0)}
    assert not any(d.split("=")[0].split(":")[0].replace("User: ", "").split("\n")[0] in test_qs for d in docs)


def test_base_model_trains_once_then_reuses(tiny_lab):
    model, tok, meta = lab.base_model("smoke")
    assert meta["params"] == sum(p.numel() for p in model.parameters())
    again = lab.base_model("smoke")[2]
    assert again["created"] == meta["created"]  # loaded from the cache, not retrained
    assert len(list((tiny_lab / "base").iterdir())) == 1


def test_capability_and_metrics_shapes(tiny_lab):
    model, tok, meta = lab.base_model("smoke")
    cap = lab.capability(model, tok, "smoke", seeds=(0, 1))
    m = lab.lab_metrics(meta, cap, peak_flops_per_s=1e10)
    assert set(m["base_pass_at_1"]) == {"addition", "countdown"}
    assert all(0 <= v["mean"] <= 1 for v in m["base_pass_at_1"].values())
    assert len(m["base_pass_at_1"]["addition"]["per_seed"]) == 2


def test_verdicts_room_for_rl():
    low = metric([0.05, 0.06, 0.04], ci95=(0.03, 0.07))
    high = metric([0.4, 0.5, 0.45], ci95=(0.35, 0.55))
    zero = metric([0.0, 0.0, 0.0])
    m = {"base_pass_at_1": {"a": low, "b": zero}, "base_pass_at_16": {"a": high, "b": zero}}
    assert lab.verdicts(m)[0]["verdict"] == "partly supported"
    m = {"base_pass_at_1": {"a": low}, "base_pass_at_16": {"a": high}}
    assert lab.verdicts(m)[0]["verdict"] == "supported"
    assert "5.0%" in lab.verdicts(m)[0]["evidence"]


def test_bad_profile_and_preset():
    with pytest.raises(ValueError, match="profile must be one of"):
        lab.lab_config("bogus")
    with pytest.raises(ValueError, match="preset must be one of"):
        lab.lab_config("cpu", preset="giant")


def test_mfu_left_out_when_peak_is_implausible(monkeypatch):
    import torch

    meta = {"params": 10, "tokens": 100, "flops": 6000.0, "wall_seconds": 1.0, "threads": torch.get_num_threads(),
            "history": [{"loss": 1.0}]}
    monkeypatch.setattr(lab, "capability_metrics", lambda cap: {})
    assert lab.lab_metrics(meta, {}, peak_flops_per_s=1e4)["base_train_mfu"] == 0.6
    assert "base_train_mfu" not in lab.lab_metrics(meta, {}, peak_flops_per_s=1e3)  # "MFU" 600%: no number
    assert "base_train_mfu" not in lab.lab_metrics({**meta, "threads": 99}, {}, peak_flops_per_s=1e4)
