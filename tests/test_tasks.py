"""Tasks: verifiers (incl. hostile input), splits, determinism, worked solutions."""

import random

import pytest

from minir1.tasks import TASKS, Problem, completion, final_answer, get_task, split_of, verify
from minir1.tasks.arithmetic import verify_int
from minir1.tasks.countdown import MAX_EXPRESSION_CHARS, parse_key
from minir1.tasks.countdown import verify as cd_verify

ALL = (
    [("addition", d) for d in range(1, 7)]
    + [("multiplication", d) for d in range(1, 6)]
    + [("countdown", d) for d in range(3, 6)]
)


def test_registry_and_bad_args():
    assert set(TASKS) == {"addition", "multiplication", "countdown"}
    with pytest.raises(ValueError, match="task must be one of"):
        get_task("division", 2)
    for name, bad in [
        ("addition", 0),
        ("addition", 7),
        ("multiplication", 6),
        ("countdown", 2),
        ("countdown", 6),
        ("addition", "3"),
        ("addition", True),
    ]:
        with pytest.raises(ValueError, match=r"difficulty.*\d\.\.\d"):
            get_task(name, bad)
    task = get_task("addition", 2)
    with pytest.raises(ValueError, match="split must be one of"):
        task.sample("valid", 3)
    with pytest.raises(ValueError, match="n must be"):
        task.sample("train", -1)
    with pytest.raises(ValueError, match="exceeds the .* distinct test problems"):
        get_task("addition", 1).sample("test", 1000)
    with pytest.raises(ValueError, match="error_rate"):
        task.worked_solution(task.sample("train", 1)[0], random.Random(0), 1.5)
    assert task.sample("train", 0) == []


# ----------------------------------------------------------------------------- arithmetic
def test_arithmetic_formats():
    add, mul = get_task("addition", 3), get_task("multiplication", 3)
    p = add.make(347, 589)
    assert (p.question, p.key, p.answer) == ("347+589", "936", "936")
    assert add.worked_solution(p, random.Random(0), 0.0) == "7+9=16 4+8+1=13 3+5+1=9 =936"
    assert add.worked_solution(add.make(347, 689), random.Random(0)) == "7+9=16 4+8+1=13 3+6+1=10 =1036"
    q = mul.make(347, 8)
    assert (q.question, q.key) == ("347*8", "2776")
    assert mul.worked_solution(q, random.Random(0)) == "7*8=56 4*8+5=37 3*8+3=27 =2776"
    assert add.completion(p, random.Random(0)) == "<think>7+9=16 4+8+1=13 3+5+1=9 =936</think> <answer>936</answer>"


@pytest.mark.parametrize(
    "text,ok",
    [
        ("936", True),
        (" 936\n", True),
        ("0936", True),
        ("937", False),
        ("936.0", False),
        ("+936", False),
        ("9 36", False),
        ("", False),
        ("nine", False),
        ("９３６", False),
        ("٩٣٦", False),
        ("936" * 5000, False),
        ("1e3", False),
        ("0x3a8", False),
        ("936=936", False),
    ],
)
def test_verify_int(text, ok):
    assert verify_int("936", text) is ok
    assert verify("addition", "936", text) is ok


def test_verify_int_non_string():
    assert verify_int("936", None) is False
    assert verify_int("936", 936) is False


# ----------------------------------------------------------------------------- countdown
NUMS, TARGET = [25, 3, 7, 2], 31


@pytest.mark.parametrize("expr", ["25+3*2", "25+7-3+2", " (25 + 7) - 3 + 2 ", "2*3+25", "((25))+(3*2)", "25+3*2\n"])
def test_countdown_accepts(expr):
    assert cd_verify(NUMS, TARGET, expr)


def test_countdown_fractions_and_subsets():
    assert cd_verify([3, 4, 6], 8, "(3+6)*4/(3+6)") is False  # 3 and 6 reused
    assert cd_verify([1, 3, 4, 6], 24, "6/(1-3/4)")  # intermediate fractions allowed
    assert cd_verify([3, 5, 7, 11], 15, "3*5")  # not all numbers need be used


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "__import__('os').system('echo hi')",
        "9**9**9",
        "25**2",
        "(1).__class__",
        "25+3+3",
        "25+6",
        "31",
        "1/0",
        "25/(3-3)",
        "7/(2-2)*25",
        "x",
        "abs(25)",
        "25 // 3",
        "25 % 3",
        "-3+25+7+2",
        "+25+3+3",
        "25+3*2=31",
        "25.0+6",
        "1_0",
        "0x19+6",
        "２５+3*2",
        "25+3*٢",
        "",
        "   ",
        "(" * 150 + "25" + ")" * 150,
        "25+" * 3000 + "6",
        "lambda: 25",
        "[25, 6]",
        "25,6",
        "25 3 2",
        "True+30",
        "25+3*2 #",
        "'25'+'6'",
        "25 if 1 else 3",
        "(25+3)*2*0+31",
    ],
)
def test_countdown_rejects_hostile(expr):
    assert cd_verify(NUMS, TARGET, expr) is False


def test_countdown_never_raises_on_long_or_odd_strings():
    for expr in ["9" * 10_000, "(" * 10_000, "1+" * 5000, "\x00", "\ud800", "é", "1" * MAX_EXPRESSION_CHARS]:
        assert cd_verify(NUMS, TARGET, expr) is False
    assert cd_verify(NUMS, TARGET, None) is False


def test_countdown_key_and_task_verify():
    assert parse_key("25,3,7,2=31") == ([25, 3, 7, 2], 31)
    with pytest.raises(ValueError, match="countdown key"):
        parse_key("25 3 -> 31")
    assert verify("countdown", "25,3,7,2=31", " 25+3*2 ")
    assert not verify("countdown", "25,3,7,2=31", "25+3*3")


def test_countdown_problem_format():
    task = get_task("countdown", 4)
    for p in task.sample("train", 50, seed=3):
        nums, target = p.meta["numbers"], p.meta["target"]
        assert p.question == " ".join(map(str, nums)) + f" -> {target}"
        assert p.key == ",".join(map(str, nums)) + f"={target}"
        assert len(nums) == 4 and all(1 <= x <= 25 for x in nums) and 1 <= target <= 100
        assert target not in nums and task.verify(p.key, p.answer)


# ----------------------------------------------------------------------------- splits, sampling
@pytest.mark.parametrize("name,d", ALL)
def test_sample_deterministic_disjoint_and_distinct(name, d):
    task = get_task(name, d)
    n = 5 if (task.n_test or 10**9) < 60 else 40
    for seed in (0, 1, 2):
        train, test = task.sample("train", 3 * n, seed), task.sample("test", n, seed)
        assert train == task.sample("train", 3 * n, seed)  # same seed, same problems
        assert len({p.question for p in train}) == len(train) and len({p.question for p in test}) == len(test)
        canon_train = {task.canonical(p) for p in train}
        assert canon_train.isdisjoint({task.canonical(p) for p in test})
        assert all(task.split(p) == "train" for p in train) and all(task.split(p) == "test" for p in test)
        assert all(p.task == name and task.verify(p.key, p.answer) for p in train + test)
    assert task.sample("test", n, 0) != task.sample("test", n, 1) or (task.n_test or 10**9) <= n


def test_split_sizes_exact_for_small_spaces():
    task = get_task("addition", 1)
    assert task.n_train + task.n_test == 100
    assert 0.1 < task.n_test / 100 < 0.35
    everything = task.sample("train", task.n_train) + task.sample("test", task.n_test)
    assert len({p.question for p in everything}) == 100
    assert get_task("addition", 5).n_train is None  # too large to enumerate
    assert split_of("addition", "3+4") == split_of("addition", "3+4")


def test_commuted_questions_share_a_split():
    task = get_task("addition", 2)
    for p in task.sample("train", 30, seed=0):
        swapped = task.make(p.meta["b"], p.meta["a"])
        assert task.split(swapped) == "train"


# ----------------------------------------------------------------------------- worked solutions
@pytest.mark.parametrize("name,d", ALL)
def test_worked_solutions(name, d):
    task, rng = get_task(name, d), random.Random(0)
    problems = task.sample("train", 20, seed=0)
    for p in problems:
        good = task.worked_solution(p, rng, 0.0)
        assert task.verify(p.key, final_answer(good)), (p.question, good)
        bad = task.worked_solution(p, rng, 1.0)
        assert not task.verify(p.key, final_answer(bad)), (p.question, bad)
        assert len(good) < 40 * d + 40  # compact
        tagged = task.completion(p, rng, 0.0)
        assert tagged.startswith("<think>") and tagged.endswith("</answer>")
    mixed = [task.verify(p.key, final_answer(task.worked_solution(p, rng, 0.5))) for p in problems * 5]
    assert 0 < sum(mixed) < len(mixed)


def test_worked_solution_deterministic():
    task = get_task("countdown", 5)
    p = task.sample("test", 1, seed=7)[0]
    assert task.worked_solution(p, random.Random(1), 0.3) == task.worked_solution(p, random.Random(1), 0.3)


def test_countdown_trace_format():
    task = get_task("countdown", 3)
    p = Problem("countdown", "3 5 7 -> 22", "3,5,7=22", "5*3+7", {})
    steps = task.worked_solution(p, random.Random(0), 0.0)
    assert steps.endswith("5*3=15 15+7=22 ok =5*3+7")
    assert completion(steps, final_answer(steps)).endswith("<answer>5*3+7</answer>")
