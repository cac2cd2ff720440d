"""The rule-based behaviour detector on hand-made (and hostile) strings."""

import time

import pytest

from minir1.behaviours import BEHAVIOURS, detect, rates

CASES = [
    # text,                                                     verification, backtracking
    ("check: 632-285=347 \u2713", True, False),
    ("=936 check: 936-589=347 ok =936", True, False),
    ("CHECK 3*4 = 12", True, False),
    ("checking: 2776/8=347", True, False),
    ("verify 12+5=17", True, False),
    ("936-589=347 \u2713", True, False),
    ("936-589=347\u2713", True, False),
    ("7+9=16 4+8=12 wait 4+8+1=13 3+5+1=9 =936", False, True),
    ("4+8=12 Wait, 4+8+1=13", False, True),
    ("4+8=12 oops 4+8+1=13", False, True),
    ("=926 check: 926-589=337 no wait 7+9=16 =936", True, True),
    ("<think>7+9=16 4+8=12 wait 4+8+1=13 =936 check: 936-589=347 ok =936</think> <answer>936</answer>", True, True),
    # not behaviours
    ("7+9=16 4+8+1=13 3+5+1=9 =936", False, False),  # a plain scratchpad
    ("7*3=21 21+5=26 no 5*3=15 15+7=22 ok =5*3+7", False, False),  # Countdown's native search
    ("check", False, False),
    ("check: =5", False, False),
    ("check: 936", False, False),
    ("check: 936=936", False, False),  # no operation: not an equation
    ("checked 1+1=2", False, False),  # whole words only
    ("recheck 1+1=2", False, False),
    ("wait", False, False),
    ("wait, that was wrong", False, False),  # a marker with no redo
    ("<think>4+8=12 wait</think>", False, False),
    ("await 1+1=2", False, False),
    ("waiting 1+1=2", False, False),
    ("4+8+1=13 wait", False, False),  # the equation must come after the marker
    ("wait 1+1", False, False),  # no result
    ("wait " + "x" * 60 + " 1+1=2", False, False),  # the redo is too far from the marker
    ("\u2713 1+1=2", False, False),  # tick before the equation
    ("", False, False),
    ("<answer>936</answer>", False, False),
    ("check: \u0669\u0661+\u0662=\u0663", False, False),  # non-ASCII digits are not numbers here
    ("\x00check:\x001+1=2", False, False),
    ("__import__('os').system('true') check: 1+1=2", True, False),  # matched, never evaluated
]


@pytest.mark.parametrize("text, verification, backtracking", CASES)
def test_detect(text, verification, backtracking):
    assert detect(text) == {"verification": verification, "backtracking": backtracking}


def test_keys_are_the_behaviours():
    assert tuple(detect("x")) == BEHAVIOURS == ("verification", "backtracking")


def test_rates():
    texts = ["check: 1+1=2", "wait 2+2=4", "check: 1+1=2 wait 1+2=3", "nothing"]
    assert rates(texts) == {"verification": 0.5, "backtracking": 0.5}
    assert rates([]) == {"verification": 0.0, "backtracking": 0.0}
    assert rates(("wait 1+1=2",)) == {"verification": 0.0, "backtracking": 1.0}


@pytest.mark.parametrize("bad", [None, 3, b"check: 1+1=2", ["check: 1+1=2"]])
def test_detect_rejects_non_strings(bad):
    with pytest.raises(ValueError, match="text must be a string"):
        detect(bad)


def test_rates_rejects_bad_input():
    with pytest.raises(ValueError, match="texts must be a sequence"):
        rates("check: 1+1=2")
    with pytest.raises(ValueError, match="texts must be a sequence"):
        rates(5)
    with pytest.raises(ValueError, match=r"texts\[1\] must be a string"):
        rates(["ok", None])


@pytest.mark.parametrize(
    "text",
    ["1" * 100_000, "1+" * 50_000, "wait " * 20_000, "check " + "1-" * 30_000 + "=", ("wait " + "1+2" * 20) * 2000],
)
def test_hostile_long_inputs_are_fast(text):
    t0 = time.perf_counter()
    detect(text)
    assert time.perf_counter() - t0 < 5.0
