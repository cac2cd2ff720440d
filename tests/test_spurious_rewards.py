"""Spurious-reward controls (Shao et al. 2025) on hand-written completions."""

import pytest

from minir1.rewards import accuracy_reward, format_reward, incorrect_reward, make_random_reward

RIGHT = "<think>7+9=16 4+8+1=13 3+5+1=9 =936</think> <answer>936</answer>"
WRONG = "<think>7+9=16 4+8=12 3+5+1=9 =926</think> <answer>926</answer>"


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_random_reward_rate(p):
    r = make_random_reward(p, seed=3)
    out = r(["x"] * 20_000)
    assert set(out) <= {0.0, 1.0}
    assert abs(sum(out) / len(out) - p) < 0.02
    if p in (0.0, 1.0):
        assert out == [p] * len(out)


def test_random_reward_ignores_completions_and_columns():
    a = make_random_reward(0.5, seed=1)(["", "<answer>1</answer>", [{"content": "x"}]], task=["t"] * 3, key=["k"] * 3)
    b = make_random_reward(0.5, seed=1)(["zzz", "abc", "q"])
    assert a == b


def test_random_reward_deterministic_in_seed_and_call_order():
    r1, r2 = make_random_reward(0.5, seed=7), make_random_reward(0.5, seed=7)
    calls1 = [r1(["a"] * 8) for _ in range(5)]
    calls2 = [r2(["b"] * 8) for _ in range(5)]
    assert calls1 == calls2
    assert calls1[0] != calls1[1] or calls1[1] != calls1[2]  # not one fixed vector per call
    flat = make_random_reward(0.5, seed=7)(["c"] * 40)
    assert flat == [x for c in calls1 for x in c]  # only the order of draws matters
    assert make_random_reward(0.5, seed=8)(["a"] * 40) != flat


def test_random_reward_name_and_signature():
    r = make_random_reward()
    assert r.__name__ == "random_reward"
    assert r([]) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p": -0.1}, "p must"),
        ({"p": 1.5}, "p must"),
        ({"p": "0.5"}, "p must"),
        ({"p": True}, "p must"),
        ({"seed": 1.5}, "seed must"),
        ({"seed": None}, "seed must"),
    ],
)
def test_random_reward_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_random_reward(**kwargs)


def test_random_reward_rejects_bad_completions():
    r = make_random_reward()
    with pytest.raises(ValueError, match="completions"):
        r("not a list")
    with pytest.raises(ValueError, match="completions"):
        r([3])


def test_format_only_control_is_format_reward():
    # the format-only control is format_reward alone: a wrong answer in format earns 1.0
    assert format_reward([RIGHT, WRONG, "926"]) == [1.0, 1.0, 0.0]


CASES = [
    # completion, incorrect_reward
    (RIGHT, 0.0),  # correct
    (WRONG, 1.0),  # wrong, in format
    ("<answer>926</answer>", 1.0),  # wrong, no think block: strict answer present
    ("<answer> 936 </answer>", 0.0),  # correct with spaces
    ("7+9=16 =926", 0.0),  # no answer block: missing answer
    ("<think>=926</think> <answer>", 0.0),  # unterminated
    ("<answer></answer>", 0.0),  # empty
    ("<answer>  \n </answer>", 0.0),  # blank
    ("<answer>nine hundred</answer>", 1.0),  # present and wrong
    ("<answer>936</answer> <answer>935</answer>", 1.0),  # the last block counts
    ("<answer>935</answer> <answer>936</answer>", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("completion, want", CASES)
def test_incorrect_reward(completion, want):
    got = incorrect_reward([completion], task=["addition"], key=["936"])
    assert got == [want]
    # never rewards what the accuracy reward rewards
    if accuracy_reward([completion], task=["addition"], key=["936"]) == [1.0]:
        assert got == [0.0]


def test_incorrect_reward_columns_and_messages():
    msgs = [[{"role": "assistant", "content": WRONG}], [{"role": "assistant", "content": RIGHT}]]
    assert incorrect_reward(msgs, task=["addition"] * 2, key=["936"] * 2) == [1.0, 0.0]
    assert incorrect_reward(
        ["<answer>5*3+7</answer>", "<answer>7+3</answer>"], task=["countdown"] * 2, key=["3,5,7=22"] * 2
    ) == [0.0, 1.0]
    with pytest.raises(ValueError, match="key must be a list"):
        incorrect_reward([WRONG], task=["addition"])
    with pytest.raises(ValueError, match="task must be a list"):
        incorrect_reward([WRONG, WRONG], task=["addition"], key=["1", "2"])
