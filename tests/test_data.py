import random

import pytest

from minirepro.core.data import (ARITH_FORMATS, Example, TASKS, arithmetic_example, exact_match, make_task,
                                 parse_arithmetic)
from minirepro.core.repro import UnknownName
from minirepro.papers.teaching_arithmetic import carries


def test_registry():
    assert {"addition", "multiplication"} <= set(TASKS)
    with pytest.raises(UnknownName, match="valid tasks: addition, maze, multiplication"):
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


# --- mazes ---------------------------------------------------------------------------------------------------------

from minirepro.core.data import Maze, dfs_maze_edges, is_valid_path, maze_path, parse_path, random_maze  # noqa: E402


@pytest.mark.parametrize("n", [2, 4, 7])
def test_dfs_maze_is_a_spanning_tree_of_the_grid(n):
    import random
    edges = dfs_maze_edges(n, random.Random(n))
    assert len(edges) == n * n - 1
    for a, b in edges:  # only neighbouring cells are joined
        assert abs(a - b) == n or (abs(a - b) == 1 and a // n == b // n)
    assert all(maze_path(edges, 0, c) is not None for c in range(n * n))  # connected, so a tree


def test_maze_path_is_the_unique_walk_and_the_verifier_rejects_walls():
    import random
    m = random_maze(5, random.Random(0))
    assert is_valid_path(m, list(m.path)) and m.path[0] == m.start and m.path[-1] == m.goal
    assert len(set(m.path)) == len(m.path)  # no cell twice
    walls = [(a, b) for a in range(25) for b in (a + 1, a + 5) if b < 25 and (b != a + 1 or b % 5)
             and frozenset((a, b)) not in {frozenset(e) for e in m.edges}]
    a, b = walls[0]
    assert not is_valid_path(Maze(5, m.edges, a, b, (a, b)), [a, b])
    assert not is_valid_path(m, list(m.path[:-1])) and not is_valid_path(m, [])
    assert maze_path([(0, 1)], 0, 2) is None


def test_maze_task_text_format_split_and_scoring():
    t = make_task("maze", n=3, n_train=300, n_test=50, seed=1)
    assert not {e.prompt for e in t.train} & {e.prompt for e in t.test}
    assert t.test == make_task("maze", n=3, n_train=300, n_test=50, seed=1).test
    assert t.test != make_task("maze", n=3, n_train=300, n_test=50, seed=2).test
    e, m = t.test[0], t.params["mazes_test"][0]
    words = e.prompt.split()
    assert len(words) == 2 * 8 + 5 and words[-5:] == ["S", f"c{m.start}", "G", f"c{m.goal}", "P"]
    assert len(e.answer.split()) == 10 and parse_path(e.answer) == list(m.path)
    assert set(e.prompt.split() + e.answer.split()) <= set(t.params["vocab"])
    assert t.score([x.answer for x in t.test])["acc"] == 1.0
    assert parse_path("c1 c2 x E") is None and parse_path("E c1") == []


# --- grid mazes and A* ---------------------------------------------------------------------------------------------

from minirepro.core.data import GridMaze, astar, astar_text, grid_maze, is_optimal_plan, parse_plan  # noqa: E402


def _bfs_len(m):
    from collections import deque
    seen, q = {m.start: 0}, deque([m.start])
    while q:
        p = q.popleft()
        for r in m.neighbours(p):
            if r not in seen: seen[r] = seen[p] + 1; q.append(r)
    return seen.get(m.goal)


def test_astar_finds_shortest_plans_on_random_grids():
    import random
    rng = random.Random(0)
    for _ in range(200):
        m = grid_maze(6, rng, wall_p=0.3)
        trace, plan = astar(m)
        assert len(plan) - 1 == _bfs_len(m) and is_optimal_plan(m, plan)
        closes = [e for e in trace if e[0] == "close"]
        assert closes[-1][1] == m.goal and trace[0] == ("create", m.start, 0, abs(m.start[0] - m.goal[0]) + abs(m.start[1] - m.goal[1]))
        assert all(c + h >= closes[0][2] + closes[0][3] for _, _, c, h in closes)  # f never below the start's (consistent h)
    assert astar(GridMaze(3, frozenset({(0, 1), (1, 0), (1, 1)}), (0, 0), (2, 2)))[1] is None


def test_astar_text_and_plan_checker():
    import random
    m = grid_maze(5, random.Random(3), min_plan=3)
    prompt, trace, plan = astar_text(m)
    assert prompt.startswith(f"start {m.start[0]} {m.start[1]} goal {m.goal[0]} {m.goal[1]}")
    assert prompt.count("wall") == len(m.walls) and trace.split()[0] == "create" and plan.count("plan") >= 4
    cells = parse_plan(plan)
    assert is_optimal_plan(m, cells)
    detour = cells[:1] + [c for c in m.neighbours(cells[0]) if c != cells[1]][:1] + cells[:1] + cells[1:]
    assert not is_optimal_plan(m, detour)                       # valid moves but longer
    assert not is_optimal_plan(m, [m.start, m.goal]) or len(cells) == 2
    assert parse_plan("plan 1 x") is None and parse_plan("no route found") == []


def test_compact_cells_write_one_token_per_cell_and_parse_back():
    import random
    m = grid_maze(5, random.Random(4), min_plan=3)
    wide, compact = astar_text(m), astar_text(m, compact=True)
    for a, b in zip(wide, compact):   # every cell loses one token: two coordinates become one word
        assert len(a.split()) - len(b.split()) == sum(w.isdigit() for w in a.split()) // 2
    assert compact[0].startswith(f"start r{m.start[0]}c{m.start[1]} goal r{m.goal[0]}c{m.goal[1]}")
    assert parse_plan(compact[2]) == parse_plan(wide[2]) == astar(m)[1]
    assert parse_plan("plan r1cx") is None and parse_plan("plan r1c2 plan") is None


from minirepro.core.data import PCFG, TOY_ENGLISH  # noqa: E402


def test_pcfg_sentences_are_deterministic_grammatical_and_of_the_asked_length():
    a, b = TOY_ENGLISH.sentences(50, random.Random(3)), TOY_ENGLISH.sentences(50, random.Random(3))
    assert a == b and a != TOY_ENGLISH.sentences(50, random.Random(4))
    words = set(TOY_ENGLISH.words())
    assert len(words) > 90 and "NP" not in words and "the" in words
    first = {w for (w,), _ in TOY_ENGLISH.rules["DET"] + TOY_ENGLISH.rules["NAME"]}
    for s in a:
        assert set(s.split()) <= words and s.split()[0] in first   # every sentence opens with a noun phrase
    assert all(len(s.split()) == 10 for s in TOY_ENGLISH.sentences(20, random.Random(0), length=10))
    with pytest.raises(ValueError, match="rarely makes sentences of 1 words"):
        TOY_ENGLISH.sentences(1, random.Random(0), length=1, max_tries=50)
    tiny = PCFG({"S": [(("x", "S"), 0.9), (("y",), 0.1)]})   # recursion is capped at max_depth
    assert len(tiny.sample(random.Random(0), max_depth=5)) <= 6
