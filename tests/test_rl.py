import dataclasses

import pytest

from minir1 import rules, stats
from minir1.corpus import CorpusConfig
from minir1.experiments import lab, rl, rl_hard_task, rl_hard_task_baselines
from minir1.experiments.recipes import base as lab_base
from minir1.experiments.recipes import lab_grpo
from minir1.grpo import GRPOConfig
from minir1.results import write_record
from minir1.rules import rule_of
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
    for key in ("rl_vs_base_pass_at_1_r1", "rl_vs_base_pass_at_1_lenient_r1", "clip_vs_noclip_random_pass_at_1_r1"):
        assert m[key].method == "paired-bootstrap" and m[key].unit == "diff", key
    # The deciding comparisons: over bases, seeds and problems, by the reporting rule, in every setting.
    for setting in ("r1", "greedy", "t1"):
        for score in ("pass_at_1", "pass_at_1_lenient"):
            for comp in ("plain_rl_vs_base", "plain_rl_vs_best_baseline", "plain_true_vs_random", "primed_rl_vs_base"):
                key = f"{comp}_{score}_{setting}"
                assert m[key].method == "conservative" and m[key].unit == "diff", key
                assert m[key].lo <= m[key].mean <= m[key].hi
        for name in ("base", "primed_base", "true", "random", "rft", "sft_worked", "primed_true"):
            assert 0 <= m[f"format_rate_{setting}"][name].mean <= 1  # the tag rate beside every accuracy
    cells = res.extra["hard"]["cells"]
    assert len({b for b, _ in cells}) == tiny.hard.n_bases >= 2
    assert len(cells) == tiny.hard.n_bases * min(2, tiny.hard.seeds_per_base)
    assert len(m["pass_at_1_lenient_r1"]["true"].per_seed) == len(cells)
    assert m["bootstrap_only"]["plain_rl_vs_base_pass_at_1_lenient_r1"].method == "paired-hierarchical-bootstrap"
    assert m["passk_rl_vs_base_at_4"].method == "conservative" and m["passk_bases"] == tiny.hard.n_bases
    for v in list(m["passk_rl"].values()) + list(m["passk_base"].values()):
        assert 0 <= v.lo <= v.hi <= 1
    assert set(m["passk_rl"]) == {"1", "2", "4"}
    assert len(m["rl_pass_at_1_r1"].per_seed) == 2
    # Equal FLOPs (issue 24): every baseline within 5% of the same cell's GRPO run, as the results record it.
    rft_trained = all(k > 0 for k in m["rft_kept"].per_seed)
    assert res.extra["equal_flops"] == [["grpo", "sft_worked"]] + ([["grpo", "rft"]] if rft_trained else [])
    assert res.extra["hard"]["unequal_flops"] == ([] if rft_trained else ["rft"])
    for a, b in res.extra["equal_flops"]:
        pa, pb = m["flops_spent"][a].per_seed, m["flops_spent"][b].per_seed
        assert len(pa) == len(pb) == len(cells)
        assert all(max(x, y) / min(x, y) <= 1.05 for x, y in zip(pa, pb)), (a, b, pa, pb)
    # Reward components (accuracy, format) logged at every step of every GRPO run, whatever is optimised.
    for name, runs in res.extra["hard"]["curves"].items():
        for run in runs:
            for h in run["history"]:
                assert 0 <= h["acc_strict"] <= 1 and 0 <= h["acc_format"] <= 1 and 0 <= h["acc_lenient"] <= 1, name
    assert set(m["reward_component_format_last"]) == {c.name for c in rl_hard_task.CONDITIONS}
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
    assert [v["name"] for v in out["variants"]] and "variants agree" in out["evidence"]
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


VERDICTS = ["supported", "partly supported", "inconclusive", "not supported"]


@pytest.mark.parametrize("verdict", VERDICTS)
def test_verdict_follows_the_rule(verdict):
    r = stats.rate([[0.5, 0.5]])
    filler = {
        k: r for k in ("base_pass_at_1_r1", "rl_pass_at_1_r1", "base_pass_at_1_lenient_r1", "passk_rl_vs_base_at_256")
    }
    models = ("base", "primed_base", "true", "random", "rft", "sft_worked", "primed_true")
    ex = rule_of("rl-vanilla-to-reasoner")["examples"][verdict]
    m = {
        **filler,
        "valid_pass_at_1_r1": {"plain": r},
        "valid_pass_at_kmax_r1": {"plain": r},
        "valid_kmax": 256,
        "pass_at_1_lenient_r1": {k: r for k in models},
        "format_rate_r1": {k: r for k in models},
        "passk_n": 256,
        "n_bases": 3,
        "seeds_per_base": 2,
        "hard_base_params": 6e4,
        "best_baseline": 1,
        "bootstrap_only": ex,
        **ex,
    }
    # Every variant the rule declares reads a metric: here each variant sees the same numbers.
    for setting in ("r1", "greedy", "t1"):
        for score in ("pass_at_1", "pass_at_1_lenient"):
            for name, v in ex.items():
                m.setdefault(name.replace("pass_at_1_lenient_r1", f"{score}_{setting}"), v)
    out = rl.verdicts(m, rl.config("cpu"))[0]
    assert out["verdict"] == verdict
    assert all(v["verdict"] == verdict for v in out["variants"]) and "4 of 4 variants agree" in out["evidence"]


def test_verdict_rests_on_answers_not_tags():
    """The second edition's numbers: strict +3.3 pp [0.4, 6.4] (tags), answer-level +0.3 pp [-2.7, +3.1]."""
    rule = rule_of("rl-vanilla-to-reasoner")
    tags, answers = {"mean": 0.033, "lo": 0.004, "hi": 0.064}, {"mean": 0.003, "lo": -0.027, "hi": 0.031}
    far, primed = {"mean": 0.1, "lo": 0.05, "hi": 0.15}, {"mean": 0.0, "lo": -0.02, "hi": 0.02}
    m = {
        "plain_rl_vs_base_pass_at_1_lenient_r1": answers,
        "plain_rl_vs_best_baseline_pass_at_1_lenient_r1": far,
        "plain_true_vs_random_pass_at_1_lenient_r1": far,
        "primed_rl_vs_base_pass_at_1_lenient_r1": primed,
    }
    assert rules.outcome(rule, m) == "inconclusive"
    assert rules.outcome(rule, {**m, "plain_rl_vs_base_pass_at_1_lenient_r1": tags}) == "supported"


def test_gain_only_on_the_primed_base_is_partly_supported():
    lo, hi = {"mean": 0.0, "lo": -0.05, "hi": 0.05}, {"mean": 0.3, "lo": 0.2, "hi": 0.4}
    m = {
        "plain_rl_vs_base_pass_at_1_lenient_r1": lo,
        "plain_rl_vs_best_baseline_pass_at_1_lenient_r1": lo,
        "plain_true_vs_random_pass_at_1_lenient_r1": lo,
        "primed_rl_vs_base_pass_at_1_lenient_r1": hi,
    }
    assert rules.outcome(rule_of("rl-vanilla-to-reasoner"), m) == "partly supported"
    # A gain the random reward also reaches is not support.
    m.update(
        plain_rl_vs_base_pass_at_1_lenient_r1=hi,
        plain_rl_vs_best_baseline_pass_at_1_lenient_r1=hi,
        primed_rl_vs_base_pass_at_1_lenient_r1=lo,
    )
    assert rules.outcome(rule_of("rl-vanilla-to-reasoner"), m) == "not supported"


def test_controls_validate_names():
    cfg = rl_hard_task.PROFILES["smoke"]
    with pytest.raises(ValueError, match="reward"):
        rl_hard_task.reward_funcs("bogus", 0)
    with pytest.raises(ValueError, match="base kind"):
        rl_hard_task.base_cfg(cfg, "bogus")
    with pytest.raises(ValueError, match="kind"):
        rl_hard_task_baselines.baseline_path(cfg, "bogus", 0, 1.0)
    with pytest.raises(ValueError, match="base index"):
        rl_hard_task.base_cfg(cfg, "plain", -1)
    # Hard bases: index 0 is the second edition's base; others redraw the corpus and the batch order only.
    b0, b2 = rl_hard_task.base_cfg(cfg, "plain", 0), rl_hard_task.base_cfg(cfg, "primed", 2)
    assert b0 == rl_hard_task.base_cfg(cfg, "plain") and b2.corpus.seed == b2.train.seed == b2.seed == 2
    assert dataclasses.replace(b2, seed=0, train=b0.train, corpus=dataclasses.replace(b2.corpus, seed=0)) == (
        rl_hard_task.base_cfg(cfg, "primed", 0)
    )
    cpu = rl_hard_task.PROFILES["cpu"]
    cells = rl_hard_task.deciding_cells(cpu, (0, 1, 2))
    assert len({b for b, _ in cells}) >= 3 and len(cells) >= 5  # issue 24: >= 3 bases, >= 5 runs per arm
    for arm in ("true", "random", "primed_true", "rft", "sft_worked", "base", "primed_base"):
        assert set(cells) <= set(rl_hard_task.cells(cpu, arm, (0, 1, 2))), arm
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
    monkeypatch.setattr(rl_hard_task, "hard_base_path", lambda cfg, kind, index=0: tmp_path)
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


def test_baselines_stop_within_5_percent_of_the_grpo_flops():
    """steps_for_budget reads the exact batches the loop draws: the chosen (batch, steps) spend the budget
    within 2% when a batch size allows it, and the ledger counts prompt AND completion tokens."""
    from minir1 import flops
    from minir1.experiments.rl_hard_task_baselines import steps_for_budget
    from minir1.tokenizer import build_tokenizer
    from minir1.train import encode_example

    tok = build_tokenizer()
    pairs = [(f"What is {i} * 7?", f" <think>{i}*7</think> <answer>{i * 7}</answer>") for i in range(40)]
    lens = [len(encode_example(tok, p, c)[0]) for p, c in pairs]
    budget = flops.forward_backward(1000, 11.3 * sum(lens) / len(lens) * 32)  # ~11 batches of 32
    batch, steps = steps_for_budget(tok, pairs, 1000, budget, 32, seed=0)
    assert 1 <= batch <= 32 and steps >= 1
    # Replay the same batches: what training would spend.
    import torch

    from minir1.train import TrainConfig, _batches

    idx = list(
        _batches(len(pairs), TrainConfig(steps=steps, batch_size=batch, seed=0), torch.Generator().manual_seed(0))
    )
    spent = flops.forward_backward(1000, sum(lens[i] for b in idx for i in b.tolist()))
    assert flops.within(spent, budget, 0.05) and abs(spent - budget) <= 0.02 * budget
    assert steps_for_budget(tok, pairs, 1000, 0.0, 32, seed=0) == (32, 0)


def test_grpo_ledger_counts_prompt_and_completion():
    from minir1 import flops

    hist = [{"prompt_tokens": 100, "tokens": 300}, {"prompt_tokens": 100, "tokens": 200}]
    g = GRPOConfig(log_kl=False, kl_coef=0.0)
    led = rl_hard_task.grpo_ledger(hist, 10, g)
    assert led.total == (2 + 6) * 10 * (400 + 300)  # sampling with prefill + forward/backward over both
    g2 = dataclasses.replace(g, num_iterations=2)
    assert rl_hard_task.grpo_ledger(hist, 10, g2).total == (2 + 12 + 2) * 10 * 700
    assert flops.within(led.total, led.total * 1.04)
