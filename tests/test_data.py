import pytest

from minirepro.core.data import (ARITH_FORMATS, Example, TASKS, arithmetic_example, exact_match, make_task,
                                 parse_arithmetic)
from minirepro.core.repro import UnknownName
from minirepro.papers.teaching_arithmetic import carries


def test_registry():
    assert {"addition", "multiplication"} <= set(TASKS)
    with pytest.raises(UnknownName, match="valid tasks: addition, multiplication"):
        make_task("subtraction")


@pytest.mark.parametrize("fmt", ARITH_FORMATS)
@pytest.mark.parametrize("op", ["+", "*"])
def test_every_format_states_the_right_result(fmt, op):
    for a, b in [(0, 0), (7, 8), (128, 367), (999, 999), (5, 120)]:
        e = arithmetic_example(a, b, op, fmt)
        assert e.prompt == f"${a}{op}{b}=" and e.answer.endswith("#") and e.text.startswith("$")
        assert parse_arithmetic(e.answer, fmt) == (a + b if op == "+" else a * b)


def test_formats_spelled_out():
    assert arithmetic_example(128, 367, "+", "reverse").answer == "594#"
    assert arithmetic_example(128, 367, "+", "scratchpad").answer == "5c1,9c0,4c0|495#"
    assert arithmetic_example(128, 367, "+", "detailed").answer == "8+7+0=15,2+6+1=9,1+3+0=4|495#"
    assert arithmetic_example(12, 34, "*", "detailed").answer == "12*4=48,12*30=360|408#"
    assert parse_arithmetic("12a", "plain") is None and parse_arithmetic("", "reverse") is None


def test_splits_are_disjoint_deterministic_and_shared_across_formats():
    a = make_task("addition", digits=2, n_train=300, n_test=100, fmt="plain", seed=3)
    b = make_task("addition", digits=2, n_train=300, n_test=100, fmt="reverse", seed=3)
    c = make_task("addition", digits=2, n_train=300, n_test=100, fmt="plain", seed=4)
    assert len(a.train) == 300 and len(a.test) == 100
    assert not {e.prompt for e in a.train} & {e.prompt for e in a.test}
    assert [e.prompt for e in a.train] == [e.prompt for e in b.train] and a.train == make_task("addition", digits=2, n_train=300, n_test=100, seed=3).train
    assert [e.prompt for e in a.train] != [e.prompt for e in c.train]
    with pytest.raises(ValueError, match="only 100 distinct"):
        make_task("addition", digits=1, n_train=100, n_test=1)


def test_scoring():
    t = make_task("addition", digits=2, n_train=10, n_test=4, fmt="reverse", seed=0)
    right = [e.answer.rstrip("#") for e in t.test]
    assert t.score(right)["acc"] == 1.0
    assert t.score(["x"] + right[1:])["acc"] == 0.75
    assert exact_match([1, None, 3], [1, None, 4]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError): exact_match([1], [1, 2])


def test_carries():
    assert carries(128, 367) == 1 and carries(999, 1) == 3 and carries(0, 0) == 0 and carries(55, 45) == 2
