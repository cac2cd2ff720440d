import dataclasses

import pytest
import torch

from minir1 import stats
from minir1.corpus import CorpusConfig, build_corpus
from minir1.experiments import lab
from minir1.experiments.recipes import base as lab_base
from minir1.rules import example_metrics
from minir1.tasks import get_task
from minir1.train import TrainConfig


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    return lab_base.LabConfig(
        preset="pico",
        corpus=CorpusConfig(n_docs=300),
        train=TrainConfig(steps=3, batch_size=4, pack=True, seq_len=64, progress=False),
        n_eval=3,
        n_samples=4,
        max_new_tokens=16,
    )


def test_corpus_uses_train_split_only():
    docs = build_corpus(CorpusConfig(n_docs=500, tasks=(("addition", 1, 1.0),)))
    test_qs = {p.question for p in get_task("addition", 1).sample("test", 27, seed=0)}
    assert not any(d.split("=")[0].split(":")[0].replace("User: ", "").split("\n")[0] in test_qs for d in docs)


def test_base_model_trains_once_then_reuses(tiny, tmp_path):
    model, tok, meta = lab_base.pretrained_model(tiny)
    assert meta["params"] == sum(p.numel() for p in model.parameters())
    again = lab_base.pretrained_model(dataclasses.replace(tiny, n_eval=5))[2]  # eval sizes do not shape the model
    assert again["created"] == meta["created"]  # loaded from the cache, not retrained
    assert len(list((tmp_path / "base").iterdir())) == 1


def test_run_metrics_evals_and_cache(tiny, tmp_path):
    res = lab.run(tiny, seeds=(0, 1))
    m = res.metrics
    assert set(m["base_pass_at_1_r1"]) == {"addition", "countdown"}
    for key in ("base_pass_at_1_r1", "base_pass_at_4_t1", "base_greedy_acc", "base_pass_at_4_lenient_r1"):
        for v in m[key].values():
            assert isinstance(v, stats.Metric) and 0 <= v.lo <= v.mean <= v.hi <= 1
    room = m["base_room_r1"]["addition"]
    assert room.method == "conservative"  # the reporting rule: never narrower than the seed-level t interval
    t = stats.seed_t_interval(room.per_seed)
    assert room.lo <= t.lo + 1e-12 and room.hi >= t.hi - 1e-12
    assert set(m["base_room_lenient_r1"]) == {"addition", "countdown"}
    assert len(res.evals) == 2 * 3  # tasks x settings
    assert {r["sampling"]["temperature"] for r in res.evals.values()} == {0.0, 0.6, 1.0}
    assert res.flops > 0 and res.config is tiny
    n_cached = len(list((tmp_path / "evals").iterdir()))
    assert lab.run(tiny, seeds=(0, 1)).metrics["base_pass_at_1_r1"] == m["base_pass_at_1_r1"]
    assert len(list((tmp_path / "evals").iterdir())) == n_cached  # computed once
    assert res.claims == lab.verdicts(m, tiny) and res.wall_seconds > 0
    assert lab.verdicts(m)[0]["verdict"] in ("supported", "partly supported", "not supported")


def test_dry_run_gpu_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    cfg = lab.dry_run(lab.config("gpu"))
    assert cfg.preset == lab.config("gpu").preset and cfg.train.steps == 2
    res = lab.run(cfg, seeds=(0,))
    assert res.metrics["base_train_tokens"] > 0 and "base_pass_at_1_r1" in res.metrics


@pytest.mark.parametrize("verdict", ["supported", "partly supported", "not supported"])
def test_verdicts_follow_the_rule(verdict):
    ex = example_metrics("lab-room-for-rl", verdict)
    m = {**ex, "base_pass_at_16_r1": ex["base_pass_at_1_r1"]}
    out = lab.verdicts(m)[0]
    assert out["id"] == "lab-room-for-rl" and out["verdict"] == verdict and "addition" in out["evidence"]


def test_bad_profile_and_preset():
    with pytest.raises(ValueError, match="profile must be one of"):
        lab.config("bogus")
    with pytest.raises(ValueError, match="preset must be one of"):
        lab_base.variant(lab.config("cpu"), preset="giant")
    with pytest.raises(ValueError, match="n_eval"):
        lab_base.LabConfig(n_eval=0)


def test_variant_seed_follows_corpus_and_batches():
    v = lab_base.variant(lab.config("cpu"), seed=3)
    assert v.seed == v.train.seed == v.corpus.seed == 3


def test_mfu_left_out_when_peak_is_implausible(monkeypatch):
    meta = {
        "params": 10,
        "tokens": 100,
        "flops": 6000.0,
        "wall_seconds": 1.0,
        "threads": torch.get_num_threads(),
        "history": [{"loss": 1.0}],
    }
    monkeypatch.setattr(lab, "capability_metrics", lambda cap: {})
    assert lab.lab_metrics(meta, {}, peak_flops_per_s=1e4)["base_train_mfu"] == 0.6
    assert "base_train_mfu" not in lab.lab_metrics(meta, {}, peak_flops_per_s=1e3)  # "MFU" 600%: no number
    assert "base_train_mfu" not in lab.lab_metrics({**meta, "threads": 99}, {}, peak_flops_per_s=1e4)
