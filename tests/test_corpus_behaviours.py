"""Behaviour priming of the pretraining corpus (CorpusConfig.behaviour_rate)."""

import hashlib
import json
import random
import re

import pytest

from minir1.behaviours import detect, rates
from minir1.corpus import CorpusConfig, build_corpus, prime_behaviours
from minir1.tasks import final_answer, get_task
from minir1.tokenizer import build_tokenizer

MIXED = dict(
    n_docs=1500,
    tasks=(("addition", 2, 0.5), ("multiplication", 3, 0.3), ("countdown", 3, 0.2)),
    mix=(0.1, 0.3, 0.1, 0.3, 0.2),
    seed=7,
)
ARITH = dict(n_docs=600, tasks=(("addition", 3, 0.5), ("multiplication", 3, 0.5)), mix=(0.1, 0.3, 0.1, 0.3, 0.2))


def _sha(docs):
    return hashlib.sha256(json.dumps(docs).encode()).hexdigest()


@pytest.mark.parametrize(
    "kwargs, digest",
    [  # computed on main (20ffeb3) before behaviour_rate existed
        ({"n_docs": 2000}, "2f93501032407cad26a3ecceeaf0b3d55551479fa87fc842c0344cce19b6fd23"),
        (MIXED, "dbbb33a5d0207eb11342dd7940d3e8f671cc4a2c81b77f71a343040c60771708"),
    ],
)
def test_default_corpus_is_unchanged(kwargs, digest):
    assert _sha(build_corpus(CorpusConfig(**kwargs))) == digest
    assert _sha(build_corpus(CorpusConfig(**kwargs, behaviour_rate=0.0))) == digest


def _scratchpad(doc: str) -> str | None:
    """The scratchpad of an arithmetic document, or None (plain and chat_plain docs have none)."""
    body = doc.split("Assistant: ", 1)[-1] if doc.startswith("User: ") else doc.split(": ", 1)[-1]
    body = body.removeprefix("<think>").split("</think>")[0]
    return body if " =" in body else None


def test_rate_one_primes_every_arithmetic_scratchpad():
    plain, primed = build_corpus(CorpusConfig(**ARITH)), build_corpus(CorpusConfig(**ARITH, behaviour_rate=1.0))
    assert len(plain) == len(primed)
    n_pads = 0
    for before, after in zip(plain, primed):
        if _scratchpad(before) is None:
            assert after == before  # documents without a scratchpad are untouched
            continue
        n_pads += 1
        assert detect(after)["verification"], after
        assert " check: " in after
        # the same problem, same kind: only the scratchpad grew
        assert after.split(":", 1)[0] == before.split(":", 1)[0]
        assert len(after) > len(before)
    kinds = {"worked": 0, "chat_worked": 0, "chat_tagged": 0}
    for d in primed:
        if _scratchpad(d) is not None:
            kinds["chat_tagged" if "<think>" in d else "chat_worked" if d.startswith("User: ") else "worked"] += 1
    assert all(n > 0 for n in kinds.values()), kinds  # all three scratchpad kinds are primed
    assert n_pads > 200


def test_primed_corpus_shows_every_shape_and_the_detector_finds_them():
    docs = build_corpus(CorpusConfig(**ARITH, behaviour_rate=1.0))
    pads = [p for p in map(_scratchpad, docs) if p is not None]
    r = rates(pads)
    assert r["verification"] == 1.0
    assert 0.2 < r["backtracking"] < 0.8  # half of the correct ones, plus caught mistakes
    assert any(" no wait " in p for p in pads)  # a caught mistake, redone
    assert any("*" in p and " wait " in p for p in pads)  # multiplication is primed too
    assert rates([p for p in map(_scratchpad, build_corpus(CorpusConfig(**ARITH))) if p]) == {
        "verification": 0.0,
        "backtracking": 0.0,
    }


_CHECK = re.compile(r"check: (\d+)([-/])(\d+)=(-?\d+)(?: r(\d+))? (ok|no)")


def test_checks_are_honest_arithmetic_and_answers_follow_the_last_sum():
    docs = build_corpus(CorpusConfig(**ARITH, behaviour_rate=1.0, error_rate=0.5))
    n_wrong_final = 0
    for d in docs:
        pad = _scratchpad(d)
        if pad is None:
            continue
        question = d.removeprefix("User: ").split("\n")[0].split(":")[0]
        op = "+" if "+" in question else "*"
        a, b = (int(x) for x in question.split(op))
        checks = _CHECK.findall(pad)
        assert checks, pad
        for x, sym, y, z, r, verdict in checks:
            x, y, z, r = int(x), int(y), int(z), int(r or 0)
            assert y == b
            assert (x - y == z) if sym == "-" else (divmod(x, y) == (z, r))
        answer = final_answer(pad)
        if "<answer>" in d:
            assert d.endswith(f"<answer>{answer}</answer>")
        right = str(a + b if op == "+" else a * b)
        n_wrong_final += answer != right
        if answer == right:
            assert checks[-1][-1] == "ok"
    assert n_wrong_final > 0  # some traces keep a wrong answer (missed mistakes)


def test_rate_is_a_share_and_countdown_is_never_primed():
    cfg = dict(MIXED, n_docs=3000)
    plain, primed = build_corpus(CorpusConfig(**cfg)), build_corpus(CorpusConfig(**cfg, behaviour_rate=0.3))
    pads = [(b, a) for b, a in zip(plain, primed) if _scratchpad(b) is not None and "->" not in b]
    share = sum(a != b for b, a in pads) / len(pads)
    assert 0.24 < share < 0.36
    countdown = [(b, a) for b, a in zip(plain, primed) if "->" in b]
    assert countdown and all(a == b for b, a in countdown)


def test_tokenizer_encodes_every_primed_character():
    tok = build_tokenizer()
    docs = build_corpus(CorpusConfig(**ARITH, behaviour_rate=1.0))
    text = "\n".join(docs)
    assert tok.unk_token_id not in tok.encode(text)
    assert tok.decode(tok.encode(text)) == text


def test_priming_is_deterministic_in_seed():
    a = build_corpus(CorpusConfig(**ARITH, behaviour_rate=0.5, seed=3))
    assert a == build_corpus(CorpusConfig(**ARITH, behaviour_rate=0.5, seed=3))
    assert a != build_corpus(CorpusConfig(**ARITH, behaviour_rate=0.5, seed=4))


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5", None])
def test_behaviour_rate_is_checked(bad):
    with pytest.raises(ValueError, match="behaviour_rate must be a number in \\[0, 1\\]"):
        CorpusConfig(behaviour_rate=bad)


def test_prime_behaviours_shapes_and_errors():
    add = get_task("addition", 3)
    p = add.make(347, 589)
    out = prime_behaviours(p, "7+9=16 4+8=12 3+5+1=9 =926", add, random.Random(0))
    assert out.startswith("7+9=16 4+8=12 3+5+1=9 =926 check: 926-589=337 ")
    assert out.endswith("=926") or out.endswith("check: 936-589=347 ok =936")
    mul = get_task("multiplication", 3)
    assert prime_behaviours(mul.make(347, 8), "7*8=56 4*8+5=37 3*8+3=27 =2776", mul, random.Random(1)).endswith(
        "check: 2776/8=347 ok =2776"
    )
    cd = get_task("countdown", 3)
    q = cd.sample("train", 1)[0]
    with pytest.raises(ValueError, match="task must be one of"):
        prime_behaviours(q, cd.worked_solution(q, random.Random(0)), cd, random.Random(0))
