"""pass@k, maj@k, bootstrap intervals and evaluate() (stub sampler and the real one)."""

import itertools
import json
from math import comb

import numpy as np
import pytest

from minir1.evaluation import EvalResult, evaluate, maj_at_k, pass_at_k, per_problem_scores, summarize
from minir1.tasks import get_task


@pytest.mark.parametrize("n", range(1, 7))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        samples = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_large_and_errors():
    assert pass_at_k(1000, 10, 100) == pytest.approx(1 - comb(990, 100) / comb(1000, 100), rel=1e-9)
    assert pass_at_k(64, 1, 1) == pytest.approx(1 / 64)
    with pytest.raises(ValueError, match="k must be <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        pass_at_k(4, 1, 0)


def test_maj_at_k():
    assert maj_at_k(["1", "2", "2"], [True, False, False], 1) == 1.0
    assert maj_at_k(["1", "2", "2"], [True, False, False], 3) == 0.0
    assert maj_at_k([None, None, "3"], [False, False, True], 3) == 1.0
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    assert maj_at_k(["a", "b"], [False, True], 2) == 0.0  # tie -> first seen
    with pytest.raises(ValueError, match="same length"):
        maj_at_k(["1"], [True, False], 1)
    with pytest.raises(ValueError, match="k must be <="):
        maj_at_k(["1"], [True], 2)


# ----------------------------------------------------------------------------- evaluate, stub sampler
class _Gen:
    def __init__(self, texts):
        self.texts = texts
        self.n_tokens = [len(t) + 1 for t in texts]
        self.finished = [True] * len(texts)


def _stub(monkeypatch, make_text):
    calls = {}

    def generate(
        model,
        tokenizer,
        prompts,
        *,
        max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        num_return_sequences=1,
        seed=0,
        batch_size=256,
    ):
        calls.update(prompts=prompts, g=num_return_sequences, temperature=temperature, seed=seed)
        return _Gen([make_text(i, j) for i in range(len(prompts)) for j in range(num_return_sequences)])

    monkeypatch.setattr("minir1.evaluation.generate", generate)
    return calls


def test_evaluate_with_stub(monkeypatch):
    from minir1.tokenizer import build_tokenizer

    problems = get_task("addition", 2).sample("test", 4, seed=0)

    # problem i: sample j is strictly correct when j < i; sample 3 is right but untagged.
    def make_text(i, j):
        ans = problems[i].answer
        if j == 3:
            return f"the sum is {ans}"
        return f"<think>x</think> <answer>{ans if j < i else 0}</answer>"

    calls = _stub(monkeypatch, make_text)
    res = evaluate(None, build_tokenizer(), problems, n_samples=4, ks=(1, 2, 16), seed=5)
    assert calls["g"] == 4 and calls["seed"] == 5
    assert calls["prompts"][0] == f"<bos>User: {problems[0].question}\nAssistant:"
    assert res.correct == [0, 1, 2, 3] and res.correct_lenient == [1, 2, 3, 4]
    assert res.format_ok == [3, 3, 3, 3] and res.format_rate == 0.75
    assert set(res.pass_at_k) == {1, 2}  # 16 > n_samples is skipped
    assert res.acc == pytest.approx(6 / 16) == res.pass_at_k[1]
    assert res.pass_at_k[2] == pytest.approx(np.mean([pass_at_k(4, c, 2) for c in (0, 1, 2, 3)]))
    assert res.pass_at_k_lenient[1] == pytest.approx(10 / 16)
    assert res.maj_at_k[1] == pytest.approx(0.75)
    assert res.tokens_generated == sum(len(make_text(i, j)) + 1 for i in range(4) for j in range(4))
    assert res.mean_len_correct is not None and res.mean_len_incorrect is not None
    assert len(res.samples) == 4 and res.samples[3]["correct"] is True
    json.dumps(res.to_dict())


def test_evaluate_greedy_and_errors(monkeypatch):
    from minir1.tokenizer import build_tokenizer

    tok = build_tokenizer()
    problems = get_task("countdown", 3).sample("test", 3, seed=0)
    calls = _stub(monkeypatch, lambda i, j: f"<answer>{problems[i].answer}</answer>")
    res = evaluate(None, tok, problems, n_samples=1, temperature=0, template="r1")
    assert calls["temperature"] == 0 and calls["prompts"][0].startswith("<bos>A conversation")
    assert res.acc == 1.0 and res.pass_at_k == {1: 1.0} and res.format_rate == 0.0
    assert res.mean_len_incorrect is None
    with pytest.raises(ValueError, match="template"):
        evaluate(None, tok, problems, template="chatml")
    with pytest.raises(ValueError, match="n_samples"):
        evaluate(None, tok, problems, n_samples=0)
    with pytest.raises(ValueError, match="problems"):
        evaluate(None, tok, [])


def _fake_result(correct, n=4):
    p = len(correct)
    return EvalResult(
        questions=[str(i) for i in range(p)],
        n_samples=n,
        correct=correct,
        correct_lenient=correct,
        format_ok=[n] * p,
        format_ok_lenient=[n] * p,
        acc=sum(correct) / (n * p),
        acc_lenient=0,
        format_rate=1,
        format_rate_lenient=1,
        pass_at_k={1: 0.0, 4: 0.0},
        pass_at_k_lenient={1: 0.0, 4: 0.0},
        maj_at_k={},
        mean_len_correct=None,
        mean_len_incorrect=None,
        finished_rate=1.0,
        tokens_generated=0,
    )


def test_summarize():
    runs = [_fake_result([0, 1, 2, 4]), _fake_result([1, 1, 3, 4])]
    out = summarize(runs)
    assert set(out) == {
        "acc",
        "acc_lenient",
        "format",
        "format_lenient",
        "pass@1",
        "pass@4",
        "pass@1_lenient",
        "pass@4_lenient",
    }
    assert out["acc"].per_seed == (7 / 16, 9 / 16) and out["acc"].method == "bootstrap"
    assert 0 <= out["acc"].lo <= out["acc"].mean <= out["acc"].hi <= 1
    assert out["format"].mean == 1.0
    assert per_problem_scores(runs, "pass@4").shape == (2, 4)
    with pytest.raises(ValueError, match="same problems"):
        summarize([runs[0], _fake_result([1, 1, 1])])


# ----------------------------------------------------------------------------- the real sampler
def test_evaluate_real_sampler_tiny_model():
    from minir1 import models
    from minir1.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = models.build("pico", tok, seed=0)
    problems = get_task("addition", 1).sample("test", 3, seed=0)
    a = evaluate(model, tok, problems, n_samples=2, max_new_tokens=8, ks=(1, 2), seed=3)
    b = evaluate(model, tok, problems, n_samples=2, max_new_tokens=8, ks=(1, 2), seed=3)
    assert a.to_dict() == b.to_dict()  # same seed, same numbers
    assert 0 < a.tokens_generated <= 3 * 2 * 8 and 0 <= a.acc <= 1


def test_evaluate_cached_once_per_model_set_sampling_seed(tmp_path, monkeypatch):
    from minir1 import artifacts, models
    from minir1.evaluation import EvalSet, Sampling, eval_record, evaluate_cached, evaluate_seeds
    from minir1.tokenizer import build_tokenizer

    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    tok = build_tokenizer()

    def build(folder):
        models.save(models.build("pico", tok, seed=0), tok, folder)

    path = artifacts.cached("model", {"preset": "pico", "test": 1}, build)
    es, sp = EvalSet(task="addition", difficulty=1, n=3), Sampling(n_samples=2, max_new_tokens=6, ks=(1, 2))
    a = evaluate_cached(path, es, sp, seed=1)
    calls = []
    monkeypatch.setattr("minir1.evaluation.evaluate", lambda *x, **k: calls.append(1))
    b = evaluate_cached(path, es, sp, seed=1)  # from the cache: evaluate is not called
    assert calls == [] and a.to_dict() == b.to_dict()
    runs = evaluate_seeds(path, es, sp, [1])
    eid, rec = eval_record(path, es, sp, runs, [1])
    assert rec["seeds"] == [1] and rec["metrics"]["acc"].mean == a.acc
    with pytest.raises(ValueError, match="EvalSet.n"):
        EvalSet(n=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
