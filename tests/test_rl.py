import dataclasses

import pytest

from minir1 import stats
from minir1.corpus import CorpusConfig
from minir1.experiments import lab, rl
from minir1.experiments.rules import rule_of
from minir1.grpo import GRPOConfig
from minir1.results import write_results
from minir1.train import TrainConfig


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    base = lab.LabConfig(
        preset="pico",
        corpus=CorpusConfig(n_docs=300),
        train=TrainConfig(steps=3, batch_size=4, pack=True, seq_len=64, progress=False),
        n_eval=3,
        n_samples=4,
        max_new_tokens=12,
    )
    return rl.RLConfig(
        base=base,
        grpo=GRPOConfig(
            group_size=2,
            batch_size=4,
            steps=2,
            max_completion_length=12,
            eval_every=1,
            log_every=0,
            reward_weights=(1.0, 1.0),
        ),
        n_train=16,
        n_eval=2,
        eval_samples=2,
        n_passk=3,
        passk_samples=4,
    )


def test_run_pairs_rl_with_the_labs_base(tiny, tmp_path):
    res = rl.run(tiny, seeds=(0, 1))
    m = res.metrics
    # The base's numbers are the lab chapter's (same cached evaluation, same problems and seeds).
    lab_m = lab.run(tiny.base, seeds=(0, 1)).metrics
    assert m["base_pass_at_1_r1"] == lab_m["base_pass_at_1_r1"]["addition"]
    assert m["base_pass_at_1_greedy"] == lab_m["base_greedy_acc"]["addition"]
    for key in (
        "rl_vs_base_pass_at_1_r1",
        "rl_vs_best_baseline_pass_at_1_r1",
        "rl_vs_base_pass_at_1_lenient_t1",
        "rl_vs_sft_worked_pass_at_1_r1",
        "rl_vs_base_pass_at_4_lenient",
    ):
        assert m[key].method == "paired-bootstrap" and m[key].unit == "diff", key
    for k, v in m["rl_pass_at_k"].items():
        assert 0 <= v.lo <= v.hi <= 1
    assert len(m["rl_pass_at_1_r1"].per_seed) == 2
    assert {r["sampling"]["temperature"] for r in res.evals.values()} == {0.0, 0.6, 1.0}
    out = rl.verdicts(m, tiny)[0]
    assert out["id"] == "rl-vanilla-to-reasoner" and "planted" in out["evidence"]
    write_results(
        "rl",
        profile="smoke",
        seeds=(0, 1),
        config=res.config,
        metrics=m,
        claims=[out],
        wall_seconds=1.0,
        flops=res.flops,
        evals=res.evals,
        extra=res.extra,
        out_dir=tmp_path / "res",
    )


def test_sft_pairs_formats():
    from minir1.tokenizer import build_tokenizer

    tok, cfg = build_tokenizer(), dataclasses.replace(rl.config("smoke"), n_train=4)
    ans = rl.sft_pairs(cfg, "answers", tok, 0)
    worked = rl.sft_pairs(cfg, "worked", tok, 0)
    assert ans[0][1].startswith(" <think></think> <answer>")
    assert worked[0][1].startswith(" <think>") and len(worked[0][1]) > len(ans[0][1])
    assert worked[0][1].endswith(ans[0][1].split("</think>")[1])  # the same (correct) answer
    with pytest.raises(ValueError, match="kind"):
        rl.sft_pairs(cfg, "bogus", tok, 0)


def test_dry_run_gpu_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    cfg = rl.dry_run(rl.config("gpu"))
    assert cfg.base.preset == rl.config("gpu").base.preset and cfg.grpo.steps == 2
    res = rl.run(cfg, seeds=(0,))
    assert "rl_vs_base_pass_at_1_r1" in res.metrics


@pytest.mark.parametrize("verdict", ["supported", "partly supported", "not supported"])
def test_verdict_follows_the_rule(verdict):
    r, d = stats.rate([[0.5, 0.5]]), stats.paired_diff([[0.5, 0.5]], [[0.1, 0.1]])
    filler = {
        k: r
        for k in (
            "base_pass_at_1_r1",
            "rl_pass_at_1_r1",
            "base_pass_at_1_lenient_r1",
            "rl_pass_at_1_lenient_r1",
            "base_pass_at_1_greedy",
            "rl_pass_at_1_greedy",
            "base_pass_at_1_t1",
            "rl_pass_at_1_t1",
            "sft_answers_pass_at_1_r1",
            "sft_worked_pass_at_1_r1",
        )
    }
    m = {
        **filler,
        "base_pass_at_k_lenient": {"1": r, "64": r},
        "rl_vs_base_pass_at_64_lenient": d,
        "base_params": 1e6,
        "best_baseline": 1,
        **rule_of("rl-vanilla-to-reasoner")["examples"][verdict],
    }
    assert rl.verdicts(m, rl.config("cpu"))[0]["verdict"] == verdict


def test_profiles():
    assert rl.config("smoke").grpo.steps < rl.config("cpu").grpo.steps
    assert rl.config("cpu").base == lab.config("cpu")
    with pytest.raises(ValueError, match="profile"):
        rl.config("bogus")


def test_engine_choice_lives_in_the_experiment():
    from minir1.grpo import train_grpo
    from minir1.grpo_trl import train_grpo_trl

    assert rl.trainer("minir1") is train_grpo and rl.trainer("trl") is train_grpo_trl
    with pytest.raises(ValueError, match="engine"):
        rl.trainer("vllm")
