"Skill-It's parts: the LEGO generator, the encoder, the schedules, the Skill-It rule, training and the ordered-skills test."
import numpy as np
import pytest
import torch

from minirepro.papers.skill_it import (NAMES, Curriculum, LegoEncoder, SkillIt, Stratified, chain_graph, estimate_graph,
                                      eval_sets, examples_to_accuracy, graph_from_estimate, lego_examples, lego_text,
                                      skill_metrics, skillit_weights, train_schedule)

torch.set_num_threads(1)


def resolve(ex, i):
    "Follow the clauses of example `i` by hand: the value and the depth of every name."
    clauses = {int(n): (int(o), int(a)) for n, o, a in zip(ex["name"][i], ex["op"][i], ex["arg"][i])}
    def value(n, depth=0):
        o, a = clauses[n]
        if a >= len(NAMES): return (a - len(NAMES)) ^ o, depth
        v, d = value(a, depth + 1)
        return v ^ o, d
    return {n: value(n) for n in clauses}


def test_lego_examples_are_consistent_chains():
    g = torch.Generator().manual_seed(0)
    skills = torch.arange(5).repeat(40)
    ex = lego_examples(skills, 5, g)
    assert ex["name"].shape == ex["op"].shape == ex["arg"].shape == (200, 5)
    for i in range(200):
        names = ex["name"][i].tolist()
        assert len(set(names)) == 5                                       # distinct variables
        solved = resolve(ex, i)
        asked = names[int(ex["pos"][i])]
        v, links = solved[asked]
        assert v == int(ex["y"][i]) and links == int(skills[i])           # skill i = depth i, answer = its value
        assert sorted(d for _, d in solved.values()) == list(range(5))    # one chain
    assert 0.4 < ex["y"].float().mean() < 0.6
    first = [int(torch.nonzero(ex["arg"][i] >= len(NAMES))[0]) for i in range(200)]
    assert len(set(first)) == 5                                           # the clauses are shuffled


def test_lego_examples_are_deterministic_and_text_reads_like_the_paper():
    a = lego_examples(torch.tensor([2, 4]), 5, torch.Generator().manual_seed(3))
    b = lego_examples(torch.tensor([2, 4]), 5, torch.Generator().manual_seed(3))
    assert all(torch.equal(a[key], b[key]) for key in a)
    text = lego_text(a, 0)
    assert text.startswith("Input: ") and " . Output: " in text and text.count(" , ") == 4
    assert text.endswith(f"= val {int(a['y'][0])}") and ("val 0" in text.split(" . ")[0] or "val 1" in text.split(" . ")[0])


def test_encoder_answers_at_the_asked_clause_whatever_the_clause_order():
    torch.manual_seed(0)
    model = LegoEncoder(d=32, layers=2, heads=2).eval()
    ex = lego_examples(torch.arange(5), 5, torch.Generator().manual_seed(1))
    out = model(ex)
    assert out.shape == (5, 2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    inv = torch.argsort(perm)
    shuffled = {**ex, **{key: ex[key][:, perm] for key in ("name", "op", "arg")}, "pos": inv[ex["pos"]]}
    assert torch.allclose(model(shuffled), out, atol=1e-5)


def test_skillit_weights_follow_the_rule():
    A = chain_graph(3)
    assert np.allclose(A, [[1, 0.5, 0], [0, 1, 0.5], [0, 0, 1]])
    assert np.allclose(skillit_weights([np.ones(3)], np.eye(3)), 1 / 3)
    losses = [np.array([9.0, 9.0, 9.0]), np.array([0.1, 0.5, 0.7]), np.array([0.1, 0.4, 0.6]), np.array([0.0, 0.3, 0.6])]
    p = skillit_weights(losses, A, eta=0.5, window=3)          # the first entry falls out of the window
    recent = losses[1] + losses[2] + losses[3]
    expected = np.exp(0.5 * A.dot(recent))
    assert np.allclose(p, expected / expected.sum()) and np.isclose(p.sum(), 1)
    assert p[1] > p[0]                                         # skill 2 still has a high loss and feeds skill 3
    q = skillit_weights([np.array([0.7, 0.7, 0.0])], A)
    assert q[1] > q[2]                                         # a learned skill that feeds an unlearned one keeps weight
    assert np.isfinite(skillit_weights([np.full(3, 1e4)], A)).all()


def test_static_schedules():
    assert np.allclose(Stratified(4)(17, []), 0.25)
    cur, anti = Curriculum(5, 100), Curriculum(5, 100, reverse=True)
    assert [int(cur(s, []).argmax()) for s in (0, 19, 20, 99)] == [0, 0, 1, 4]
    assert [int(anti(s, []).argmax()) for s in (0, 19, 20, 99)] == [4, 4, 3, 0]
    assert all(cur(s, []).sum() == 1 for s in range(100))


def test_skillit_updates_once_per_round_from_unit_losses():
    sched = SkillIt(chain_graph(3), every=10)
    p0 = sched(0, [])
    assert np.allclose(p0, skillit_weights([np.ones(3)], chain_graph(3)))
    losses = [np.array([0.0, 0.7, 0.7])]
    assert np.allclose(sched(5, losses), p0)                   # no update inside a round
    p1 = sched(10, losses)
    assert p1[0] < p0[0] and [s for s, _ in sched.history] == [0, 10]


def test_train_schedule_learns_the_first_skill_and_records_checkpoints():
    sets = eval_sets(3, 128, torch.Generator().manual_seed(5))
    res = train_schedule(Curriculum(3, 600), 3, 200, 32, 3e-3, 0, sets, checkpoints=4, d=32, layers=1, heads=2)
    assert [s for s, _ in res["curve"]] == [50, 100, 150, 200]
    assert np.isclose(res["shares"].sum(), 1) and res["shares"][0] == 1    # 200 of 600 steps: the first segment only
    loss, acc = skill_metrics(res["model"], sets)
    assert acc[0] > 0.95 and loss[0] < 0.2                     # copying the given value is learned


def test_examples_to_accuracy_counts_examples_and_reports_the_cap():
    test = eval_sets(2, 128, torch.Generator().manual_seed(2))[0]
    n, ok = examples_to_accuracy([0], 0, 2, 32, 3e-3, 0, test, cap=200, every=10, d=32, layers=1, heads=2)
    assert ok and n % (32 * 10) == 0 and n <= 200 * 32
    n, ok = examples_to_accuracy([0], 0, 2, 32, 3e-3, 0, test, threshold=1.01, cap=20, every=10, d=32, layers=1, heads=2)
    assert (n, ok) == (20 * 32, False)


def test_graph_estimate_and_its_binarisation():
    sets = eval_sets(3, 128, torch.Generator().manual_seed(4))
    A = estimate_graph(3, 60, 32, 3e-3, 0, sets, d=32, layers=1, heads=2)
    assert A.shape == (3, 3) and A[0, 0] > 0.5                 # training on skill 1 lowers its own loss
    B = graph_from_estimate(np.array([[0.9, 0.2, -1.0], [0.05, 0.3, 0.1], [0.0, 0.0, 0.0]]))
    assert np.allclose(B, [[1, 0.5, 0], [0, 1, 0.5], [0, 0, 1]])
