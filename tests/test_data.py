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


from minirepro.core.data import (BlendSource, BracketSource, CountingSource, FactSource, MarkovSource,  # noqa: E402
                                 MultiDomain, dirichlet_mixtures, markov_domains)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _g(seed=0): return torch.Generator().manual_seed(seed)


def test_markov_source_follows_its_table():
    src = MarkovSource(range(10, 14), order=1, alpha=0.05, seed=0)
    assert torch.equal(src.sample(5, 20, _g()), src.sample(5, 20, _g()))   # deterministic from the generator
    x = src.sample(4000, 2, _g(1)) - 10
    for a in range(4):
        nxt = x[x[:, 0] == a, 1]
        freq = torch.bincount(nxt, minlength=4).float() / len(nxt)
        assert torch.allclose(freq, src.probs[a], atol=0.06)
    assert set(MarkovSource(range(5), order=2, seed=1).sample(3, 30, _g()).flatten().tolist()) <= set(range(5))
    assert MarkovSource(range(6), order=0, alpha=1e3).probs.std() < 0.01   # order 0, large alpha: uniform noise


def test_bracket_source_is_balanced_prefixes():
    src = BracketSource([0, 1, 2, 3], p_open=0.5, max_depth=3)   # opens 0, 1; closes 2, 3
    for row in src.sample(50, 40, _g()).tolist():
        stack = []
        for t in row:
            if t < 2: stack.append(t); assert len(stack) <= 3
            else: assert stack and stack.pop() == t - 2
    with pytest.raises(ValueError, match="as many closing"): BracketSource([0, 1, 2])


def test_counting_and_fact_sources_are_determined_after_their_first_tokens():
    c = CountingSource(range(20, 27), max_step=2).sample(30, 12, _g()) - 20
    steps = (c[:, 1:] - c[:, :-1]) % 7
    assert bool((steps == steps[:, :1]).all()) and set(steps[:, 0].tolist()) <= {1, 2}
    f = FactSource(range(5), range(5, 9), seed=3)
    x = f.sample(40, 9, _g())
    assert x.shape == (40, 9)
    assert all(f.table[k] == v for k, v in zip(x[:, 0:8:2].flatten().tolist(), x[:, 1:8:2].flatten().tolist()))


def test_blends_and_mixtures_draw_their_domains_by_weight():
    a, b = MarkovSource(range(0, 4), 0, 1.0), MarkovSource(range(4, 8), 0, 1.0)
    x = BlendSource([a, b], [3, 1]).sample(4000, 3, _g())
    share_a = float((x[:, 0] < 4).float().mean())
    assert 0.72 < share_a < 0.78 and bool(((x < 4).all(1) | (x >= 4).all(1)).all())   # one source per sequence
    md = MultiDomain({"a": a, "b": b}, vocab_size=8)
    ids, which = md.sample({"b": 1.0}, 10, 5, _g())
    assert bool((which == 1).all()) and bool((ids >= 4).all())
    ids, which = md.sample([1, 1], 2000, 4, _g())
    assert 0.45 < float(which.float().mean()) < 0.55
    assert torch.equal(md.weights({"a": 2, "b": 6}), torch.tensor([0.25, 0.75]))
    with pytest.raises(UnknownName, match="valid domains: a, b"): md.sample({"c": 1}, 2, 2, _g())
    with pytest.raises(UnknownName, match="valid domains: a, b"): md.batch("c", 2, 2, _g())
    with pytest.raises(ValueError, match="non-negative"): md.weights([0, 0])
    m = dirichlet_mixtures(100, [0.5, 0.5, 2.0], seed=0)
    assert m.shape == (100, 3) and np.allclose(m.sum(1), 1) and m[:, 2].mean() > m[:, 0].mean()
    assert np.array_equal(m, dirichlet_mixtures(100, [0.5, 0.5, 2.0], seed=0))


def test_markov_domains_share_a_vocabulary_and_keep_private_tokens():
    md = markov_domains(3, shared=10, private=2, order=1, seed=0)
    assert md.names == ["d1", "d2", "d3"] and md.vocab_size == 16
    d2 = md.batch("d2", 300, 10, _g()).flatten().tolist()
    assert set(d2) <= set(range(10)) | {12, 13} and {12, 13} & set(d2)
    assert not torch.equal(md.domains["d1"].probs, md.domains["d2"].probs)


def test_a_fixed_corpus_is_sampled_by_mixture():
    a, b = MarkovSource(range(0, 4), 0, 1.0), MarkovSource(range(4, 8), 0, 1.0)
    md = MultiDomain({"a": a, "b": b}, vocab_size=8)
    corpus = md.corpus(50, 6, _g())
    assert corpus.shape == (2, 50, 6) and bool((corpus[0] < 4).all()) and bool((corpus[1] >= 4).all())
    ids, which = md.sample_corpus(corpus, {"a": 1, "b": 3}, 4000, _g(1))
    assert 0.72 < float(which.float().mean()) < 0.78
    rows = {tuple(r) for r in corpus.reshape(100, 6).tolist()}
    assert all(tuple(r) in rows for r in ids.tolist()) and all((r[0] >= 4) == bool(w) for r, w in zip(ids.tolist(), which.tolist()))


def test_padded_operands_fix_positions_and_keep_answers():
    assert arithmetic_example(7, 35, "+", "plain", pad=3).prompt == "$007+035="
    assert arithmetic_example(7, 35, "+", "reverse", pad=3).answer == "24#"
    padded = make_task("addition", digits=3, n_train=200, n_test=50, fmt="reverse", seed=1, pad=True)
    plain = make_task("addition", digits=3, n_train=200, n_test=50, fmt="reverse", seed=1)
    assert {len(e.prompt) for e in padded.train + padded.test} == {9}
    assert [e.answer for e in padded.test] == [e.answer for e in plain.test]
    assert [int(e.prompt[1:4]) + int(e.prompt[5:8]) for e in padded.test] == [padded.parse(e.answer) for e in padded.test]


def test_teaching_arithmetic_names_its_architectures():
    from minirepro.papers.teaching_arithmetic import train_arm
    task = make_task("addition", n_train=10, n_test=5, pad=True)
    with pytest.raises(ValueError, match="rnn.*gpt, llama"):
        train_arm(task, 16, 1, 2, 1, 4, 1e-3, 0, arch="rnn")
    r = train_arm(task, 16, 1, 2, 2, 4, 1e-3, 0, eval_every=1, eval_n=2, arch="gpt")
    assert len(r["correct"]) == 5 and len(r["curve"]) == 2 and r["params"] > 0
