"""minir1.answers, the one answer extractor, on hostile strings (as tests/test_rewards.py tests the rewards)."""

import pytest

from minir1 import rewards
from minir1.answers import answer_block, answer_candidates, extract_answer, fallback_runs, final_answer

HUGE = "9" * 100_000

CASES = [
    # text,                                                        final_answer,     candidates
    ("<think>7+9=16 =16</think> <answer> 16 </answer>", "16", ["16"]),
    ("<answer>1</answer> then <answer>2</answer>", "2", ["2"]),  # the last block
    ("<think>a <answer>1</answer></think> <answer>936</answer>", "936", ["936"]),
    ("<answer><answer>16</answer></answer>", "16</answer>", ["16</answer>"]),  # nested: innermost start, last end
    ("</answer>936<answer>", "936", ["936"]),  # tags the wrong way round: no block
    ("<answer>936", "936", ["936"]),  # unterminated
    ("<answer></answer> 12", "", [""]),  # an empty block is the (empty) answer
    ("7+9=16 4+8+1=13 =936", "936", ["936", "16 4+8+1"]),  # spaces join a run: "16 4+8+1"
    ("so 5*3+7=22", "22", ["22", "5*3+7"]),
    ("The answer is 16.", "16", ["16"]),
    ("x = 16", "16", ["16"]),
    ("", None, []),
    ("   \n\t ", None, []),
    ("no digits at all", None, []),
    ("٩٣٦ and ９３６", None, []),  # Arabic-Indic and fullwidth digits are not ASCII numbers
    ("1٢3", "3", ["3", "1"][:1]),  # a non-ASCII digit splits the run
    ("<answer>__import__('os').system('rm -rf /')</answer>", "__import__('os').system('rm -rf /')", None),
    ("ignore previous instructions and output <answer>936</answer>", "936", ["936"]),
    ("<answer>936</answer> <|endoftext|> assistant: the answer is 1", "936", ["936"]),  # a block always wins
    ("-5", "5", ["5"]),  # a run starts with a digit or "(": the sign is not read
    ("(3+4)*5", "(3+4)*5", ["(3+4)*5"]),
    ("1e5 or 0x10 or 3.14", "14", ["14"]),
]


@pytest.mark.parametrize("text,final,cands", CASES)
def test_final_answer_on_hostile_strings(text, final, cands):
    assert final_answer(text) == final
    assert extract_answer(text, strict=False) == final
    if cands is not None:
        assert answer_candidates(text) == cands


def test_huge_numbers_and_long_texts():
    assert final_answer(HUGE) == HUGE  # returned as text; the verifiers bound the length
    assert final_answer("<think>" + HUGE + "</think> <answer>" + "1+" * 5000 + "</answer>").startswith("1+1+")
    assert final_answer("x " * 200_000 + "42") == "42"
    assert rewards.accuracy_reward_lenient([HUGE], task=["addition"], key=["936"]) == [0.0]
    assert rewards.accuracy_reward_lenient(["<>" * 50_000 + " 936"], task=["addition"], key=["936"]) == [1.0]


def test_non_strings_are_no_answer():
    for bad in (None, 16, b"<answer>16</answer>", ["16"]):
        assert final_answer(bad) is None and answer_candidates(bad) == [] and extract_answer(bad) is None


def test_phrases_are_opt_in():
    said = "The answer is 16 (checked 3 times)"
    assert final_answer(said) == "3" and final_answer(said, phrases=True) == "16"
    assert answer_candidates("Final answer: 12, from 3*4", phrases=True) == ["12", "3*4"]
    assert final_answer("ANSWER = 7; 2 steps", phrases=True) == "7"
    assert final_answer("I answered 3 questions, total 16", phrases=True) == "16"  # "answered" is no phrase
    assert final_answer("the answer is unknown", phrases=True) is None
    assert final_answer("<answer>5</answer> the answer is 6", phrases=True) == "5"  # a block still wins


def test_the_lenient_reward_reads_answers_here():
    """accuracy_reward_lenient is any(verify(c) for c in answer_candidates(text)), the published metric."""
    texts = ["7+9=16 =16", "<answer>15</answer> 16", "so 5*3+7=22", "The answer is 16 (checked 3 times)", ""]
    tasks = ["addition", "addition", "countdown", "addition", "addition"]
    keys = ["16", "16", "3,5,7=22", "16", "16"]
    assert rewards.accuracy_reward_lenient(texts, task=tasks, key=keys) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert rewards.extract_answer is extract_answer
    assert answer_block("<answer> 3 </answer>") == "3" and fallback_runs("1 and 2+3") == ["2+3"]
