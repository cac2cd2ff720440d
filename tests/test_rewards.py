"""Rule-based rewards on hand-written completions."""

import pytest

from minir1.rewards import (
    accuracy_reward,
    accuracy_reward_lenient,
    extract_answer,
    format_reward,
    format_reward_lenient,
)

GOOD = "<think>7+9=16 4+8+1=13 3+5+1=9 =936</think> <answer>936</answer>"
CASES = [
    # completion,                                               strict acc, lenient acc, strict fmt, lenient fmt
    (GOOD, 1, 1, 1, 1),
    (" " + GOOD + "\n", 1, 1, 1, 1),
    ("<think>a</think>\n\n<answer> 936 </answer>", 1, 1, 1, 1),
    ("<think>a</think><answer>936</answer>", 1, 1, 1, 1),
    ("<think>a</think> <answer>935</answer>", 0, 0, 1, 1),
    ("<answer>936</answer>", 1, 1, 0, 1),
    ("<think>a</think> <answer>936</answer> extra", 1, 1, 0, 1),
    ("<think>a <answer>1</answer></think> <answer>936</answer>", 1, 1, 0, 0),
    ("<think>a</think> <answer>1</answer> <answer>936</answer>", 1, 1, 0, 0),
    ("<think>a</think> <answer>936</answer> <answer>1</answer>", 0, 0, 0, 0),
    ("7+9=16 4+8+1=13 3+5+1=9 =936", 0, 1, 0, 0),
    ("<think>7+9=16 =936</think> <answer>936", 0, 1, 0, 0),  # unterminated
    ("<think>=936</think> <answer>nine hundred</answer>", 0, 0, 1, 1),  # block wins in lenient
    ("<think></think><answer></answer>", 0, 0, 1, 1),
    ("", 0, 0, 0, 0),
    ("<think>x</think> <answer>９３６</answer>", 0, 0, 1, 1),
    ("</answer>936<answer>", 0, 1, 0, 0),
]


@pytest.mark.parametrize("text,acc,acc_len,fmt,fmt_len", CASES)
def test_rewards_addition(text, acc, acc_len, fmt, fmt_len):
    kw = {"task": ["addition"], "key": ["936"]}
    assert accuracy_reward([text], **kw) == [float(acc)]
    assert accuracy_reward_lenient([text], **kw) == [float(acc_len)]
    assert format_reward([text]) == [float(fmt)]
    assert format_reward_lenient([text]) == [float(fmt_len)]


def test_rewards_countdown_and_mixed_batch():
    comps = [
        "<think>5*3=15 15+7=22 ok =5*3+7</think> <answer>5*3+7</answer>",
        "<think>5*3=15 15+7=22 ok =5*3+7</think> <answer>5*3+7=22</answer>",
        "so 5*3+7=22",  # lenient: last expression with an operator is 5*3+7
        "<answer>__import__('os').system('x')</answer>",
        "<think>.</think> <answer>936</answer>",
    ]
    tasks = ["countdown"] * 4 + ["addition"]
    keys = ["3,5,7=22"] * 4 + ["936"]
    assert accuracy_reward(comps, task=tasks, key=keys) == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert accuracy_reward_lenient(comps, task=tasks, key=keys) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_conversational_completions_and_extra_kwargs():
    conv = [[{"role": "assistant", "content": GOOD}]]
    assert accuracy_reward(conv, task=["addition"], key=["936"], prompts=["x"]) == [1.0]
    assert format_reward(conv, task=["addition"]) == [1.0]


def test_length_mismatch_and_missing_columns():
    with pytest.raises(ValueError, match="key must be a list with one entry per completion"):
        accuracy_reward([GOOD, GOOD], task=["addition"] * 2, key=["936"])
    with pytest.raises(ValueError, match="task"):
        accuracy_reward_lenient([GOOD], key=["936"])
    with pytest.raises(ValueError, match="task"):
        accuracy_reward([GOOD], task="addition", key=["936"])
    with pytest.raises(ValueError, match="completions"):
        format_reward([3])


def test_extract_answer():
    assert extract_answer(GOOD) == "936"
    assert extract_answer("no tags 12 then 5*3+7.") is None
    assert extract_answer("no tags 12 then 5*3+7.", strict=False) == "5*3+7"
    assert extract_answer("7+9=16 =16", strict=False) == "16"
    assert extract_answer("no digits", strict=False) is None
    assert extract_answer("<answer>1</answer> and 99", strict=False) == "1"
    assert extract_answer(None) is None
    long = "<think>" + "9" * 10_000 + "</think> <answer>" + "1+" * 5000 + "</answer>"
    assert accuracy_reward([long], task=["countdown"], key=["3,5,7=22"]) == [0.0]
    assert accuracy_reward_lenient([long], task=["addition"], key=["936"]) == [0.0]
