import dataclasses

import pytest

from minir1 import stats
from minir1.corpus import CorpusConfig
from minir1.experiments import lab, rl, rl_hard_task, rules
from minir1.experiments.recipes import base as lab_base
from minir1.experiments.recipes import lab_grpo
from minir1.rules import rule_of
from minir1.grpo import GRPOConfig
from minir1.results import write_record
from minir1.train import TrainConfig


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    base = lab_base.LabConfig(
        preset="pico",
        corpus=CorpusConfig(n_docs=300),
        train=TrainConfig(steps=3, batch_size=4, pack=True, seq_len=64, progress=False),
        n_eval=3,
        n_samples=4,
        max_new_tokens=12,
    )
    hard = rl_hard_task.PROFILES["smoke"].base
    easy = lab_grpo.LabGRPOConfig(
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
    )
    return rl.RLConfig(
        easy=easy,
        hard=rl_hard_task.dry_run(
            dataclasses.replace(
                rl_hard_task.PROFILES["smoke"], start=base, base=dataclasses.replace(hard, preset="pico")
            )
        ),
    )


def test_run_pairs_rl_with_the_labs_base(tiny, tmp_path):
    res = rl.run(tiny, seeds=(0, 1))
    m = res.metrics
    # The base's numbers are the lab chapter's (same cached evaluation, same problems and seeds).
    lab_m = lab.run(tiny.easy.base, seeds=(0, 1)).metrics
    assert m["base_pass_at_1_r1"] == lab_m["base_pass_at_1_r1"]["addition"]
    assert m["base_pass_at_1_greedy"] == lab_m["base_greedy_acc"]["addition"]
    for key in (
        "rl_vs_base_pass_at_1_r1",
        "rl_vs_base_pass_at_1_lenient_r1",
        "plain_rl_vs_base_pass_at_1_t1",
        "plain_rl_vs_base_pass_at_1_r1",
        "plain_rl_vs_best_baseline_pass_at_1_r1",
        "plain_true_vs_random_pass_at_1_r1",
        "primed_rl_vs_base_pass_at_1_r1",
        "passk_rl_vs_base_at_4",
        "clip_vs_noclip_random_pass_at_1_r1",
        "clip_random_vs_base_pass_at_1_r1",
    ):
        assert m[key].method == "paired-bootstrap" and m[key].unit == "diff", key
    for v in list(m["passk_rl"].values()) + list(m["passk_base"].values()):
        assert 0 <= v.lo <= v.hi <= 1
    assert set(m["passk_rl"]) == {"1", "2", "4"}
    assert len(m["rl_pass_at_1_r1"].per_seed) == 2 and len(m["pass_at_1_r1"]["random"].per_seed) == 2
    assert set(m["final_pass_at_1_curve"]) == {c.name for c in rl_hard_task.CONDITIONS}
    assert set(m["final_pass_at_1_curve"]) == {
        *("true", "random", "format", "incorrect", "dr_grpo", "primed_true"),
        *rl_hard_task.CLIP_MODELS,
    }
    # The clip binds only in the μ > 1 control (with μ = 1 the ratio is exactly 1 when the loss is computed).
    assert m["clip_frac"]["true"].mean == 0 and m["clip_frac"]["random"].mean == 0
    assert m["clip_frac"]["random_mu"].mean >= 0
    assert {r["sampling"]["temperature"] for r in res.evals.values()} == {0.0, 0.6, 1.0}
    assert set(rl.findings(m)) == {"room", "rewards", "clip", "passk", "priming", "length"}
    out = rl.verdicts(m, tiny)[0]
    assert out["id"] == "rl-vanilla-to-reasoner" and "planted" in out["evidence"]
    write_record(
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


def test_dry_run_gpu_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    cfg = rl.dry_run(rl.config("gpu"))
    assert cfg.easy.base.preset == rl.config("gpu").easy.base.preset and cfg.easy.grpo.steps == 2
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
            "plain_base_pass_at_1_r1",
            "primed_base_pass_at_1_r1",
            "passk_rl_vs_base_at_256",
        )
    }
    m = {
        **filler,
        "valid_pass_at_1_r1": {"plain": r},
        "valid_pass_at_kmax_r1": {"plain": r},
        "valid_kmax": 256,
        "pass_at_1_r1": {k: r for k in ("true", "random", "rft", "sft_worked", "primed_true")},
        "passk_n": 256,
        "hard_base_params": 6e4,
        "best_baseline": 1,
        "plain_rl_vs_base_pass_at_1_r1": d,
        **rule_of("rl-vanilla-to-reasoner")["examples"][verdict],
    }
    assert rl.verdicts(m, rl.config("cpu"))[0]["verdict"] == verdict


def test_gain_only_on_the_primed_base_is_partly_supported():
    lo, hi = {"mean": 0.0, "lo": -0.05, "hi": 0.05}, {"mean": 0.3, "lo": 0.2, "hi": 0.4}
    m = {
        "plain_rl_vs_base_pass_at_1_r1": lo,
        "plain_rl_vs_best_baseline_pass_at_1_r1": lo,
        "plain_true_vs_random_pass_at_1_r1": lo,
        "primed_rl_vs_base_pass_at_1_r1": hi,
    }
    assert rules.outcome(rule_of("rl-vanilla-to-reasoner"), m) == "partly supported"
    # A gain the random reward also reaches is not support.
    m.update(
        plain_rl_vs_base_pass_at_1_r1=hi, plain_rl_vs_best_baseline_pass_at_1_r1=hi, primed_rl_vs_base_pass_at_1_r1=lo
    )
    assert rules.outcome(rule_of("rl-vanilla-to-reasoner"), m) == "not supported"


def test_controls_validate_names():
    cfg = rl_hard_task.PROFILES["smoke"]
    with pytest.raises(ValueError, match="reward"):
        rl_hard_task.reward_funcs("bogus", 0)
    with pytest.raises(ValueError, match="base kind"):
        rl_hard_task.base_cfg(cfg, "bogus")
    with pytest.raises(ValueError, match="kind"):
        rl_hard_task.baseline_path(cfg, "bogus", 0, 1.0)
    assert rl_hard_task.base_cfg(cfg, "primed").corpus.behaviour_rate == cfg.primed_behaviour_rate
    assert rl_hard_task.base_cfg(cfg, "plain").corpus.behaviour_rate == 0.0
    # Validation problems come from the train split, held-out ones from the test split: disjoint.
    v, h = rl_hard_task.valid_set(cfg).problems(), rl_hard_task.heldout_set(cfg).problems()
    assert not {p.question for p in v} & {p.question for p in h}


def test_clip_control_conditions(tmp_path, monkeypatch):
    cfg = rl_hard_task.PROFILES["smoke"]
    names = [c.name for c in rl_hard_task.CONDITIONS]
    assert len(set(names)) == len(names) and names[0] == "true"
    clip, noclip = (c for c in rl_hard_task.CONDITIONS if c.clip_control)
    assert (clip.name, noclip.name) == rl_hard_task.CLIP_MODELS and clip.reward == noclip.reward == "random"
    with pytest.raises(ValueError, match="clip_mu"):
        dataclasses.replace(cfg, clip_mu=1)
    # The two clip-control runs differ from the μ = 1 random run in μ, and from each other only in ε.
    seen = {}
    monkeypatch.setattr(rl_hard_task, "hard_base_path", lambda cfg, kind: tmp_path)
    monkeypatch.setattr(rl_hard_task.artifacts, "load_meta", lambda p: {"key": "k"})
    monkeypatch.setattr(rl_hard_task.artifacts, "cached", lambda kind, conf, build: seen.setdefault(len(seen), conf))
    for c in (rl_hard_task.Condition(reward="random"), clip, noclip):
        c.path(cfg, 0)
    g0, g1, g2 = (seen[i]["grpo"] for i in range(3))
    assert g0["num_iterations"] == 1 and g1["num_iterations"] == g2["num_iterations"] == cfg.clip_mu
    assert g1["clip_eps_low"] == cfg.grpo.clip_eps_low and g2["clip_eps_low"] == rl_hard_task.NO_CLIP
    assert {k for k in g1 if g1[k] != g2[k]} == {"clip_eps_low"}


@pytest.mark.parametrize(
    "on_off, on_base, says",
    [
        ((0.01, 0.02), (0.01, 0.03), "pay"),
        ((0.01, 0.02), (-0.06, -0.03), "direction"),
        ((-0.03, -0.01), (-0.06, -0.03), "opposite"),
        ((-0.01, 0.02), (-0.06, -0.03), "no difference"),
    ],
)
def test_clip_finding_can_come_out_each_way(on_off, on_base, says):
    d = lambda lo, hi: {"mean": (lo + hi) / 2, "lo": lo, "hi": hi}  # noqa: E731
    m = {"clip_vs_noclip_random_pass_at_1_r1": d(*on_off), "clip_random_vs_base_pass_at_1_r1": d(*on_base)}
    assert says in rl._clip_verdict(m)


def test_profiles():
    assert rl.config("smoke").easy.grpo.steps < rl.config("cpu").easy.grpo.steps
    assert rl.config("cpu").easy.base == lab.config("cpu")
    with pytest.raises(ValueError, match="profile"):
        rl.config("bogus")


def test_engine_choice_lives_in_the_experiment():
    from minir1.grpo import train_grpo
    from minir1.grpo_trl import train_grpo_trl

    assert lab_grpo.trainer("minir1") is train_grpo and lab_grpo.trainer("trl") is train_grpo_trl
    with pytest.raises(ValueError, match="engine"):
        lab_grpo.trainer("vllm")
