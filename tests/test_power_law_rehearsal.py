"Power-law rehearsal's parts: permuted tasks, the schedules, the rehearsal draw, EWC and the continual-learning run."
import numpy as np
import pytest
import torch

from minirepro.core.train import mlp
from minirepro.papers.power_law_rehearsal import (EWC, permuted_tasks, rehearsal_set, rehearsal_weights,
                                                  run_environment, summarize)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tasks():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 12, generator=g) * 2
    y = torch.arange(3).repeat(40)
    x = centers[y] + 0.3 * torch.randn(120, 12, generator=g)
    return permuted_tasks(x[:90], y[:90], x[90:], y[90:], n_tasks=4, seed=0)


def test_tasks_share_images_under_their_own_permutation(tasks):
    assert len(tasks) == 4 and torch.equal(tasks[0]["perm"], torch.arange(12))
    for t in tasks[1:]:
        assert sorted(t["perm"].tolist()) == list(range(12)) and not torch.equal(t["perm"], torch.arange(12))
        assert torch.equal(t["x_train"], tasks[0]["x_train"][:, t["perm"]]) and torch.equal(t["y_train"], tasks[0]["y_train"])


def test_schedules():
    assert rehearsal_weights("none", 5).sum() == 0 and len(rehearsal_weights("uniform", 0)) == 0
    assert np.allclose(rehearsal_weights("uniform", 4), 0.25)
    p = rehearsal_weights("power", 4, alpha=1.0)          # ages 4, 3, 2, 1
    assert np.allclose(p, np.array([1 / 4, 1 / 3, 1 / 2, 1]) / (1 / 4 + 1 / 3 + 1 / 2 + 1))
    e = rehearsal_weights("exponential", 4, tau=1.0)
    assert np.allclose(e / e[-1], np.exp(-np.array([3, 2, 1, 0])))
    assert e[0] < p[0] < 0.25   # the exponential forgets old tasks fastest, uniform not at all
    with pytest.raises(ValueError, match="valid schedules are none, uniform, exponential, power"): rehearsal_weights("zipf", 3)


def test_rehearsal_set_draws_from_earlier_tasks_only(tasks):
    g = torch.Generator().manual_seed(0)
    x, y = rehearsal_set(tasks, 3, "power", 400, g)
    assert x.shape == (400, 12) and y.shape == (400,)
    rows = {k: {tuple(r) for r in tasks[k]["x_train"].tolist()} for k in range(4)}
    origin = [next(k for k in range(4) if tuple(r) in rows[k]) for r in x.tolist()]
    assert 3 not in origin and origin.count(2) > origin.count(1) > origin.count(0)   # recent tasks more often
    assert len(rehearsal_set(tasks, 3, "none", 400, g)[0]) == 0 and len(rehearsal_set(tasks, 0, "uniform", 400, g)[0]) == 0


def test_ewc_fisher_is_the_mean_squared_per_example_gradient(tasks):
    m = mlp(12, 8, 3, seed=0)
    x, y = tasks[0]["x_train"], tasks[0]["y_train"]
    fisher = EWC.fisher(m, x, y, chunk=7)
    sq = [torch.zeros_like(p) for p in m.parameters()]
    for xi, yi in zip(x, y):   # one example at a time, by hand
        m.zero_grad(); torch.nn.functional.cross_entropy(m(xi[None]), yi[None]).backward()
        for s, p in zip(sq, m.parameters()): s += p.grad ** 2
    assert len(fisher) == len(sq) == 6
    for f, s in zip(fisher, sq): assert f.shape == s.shape and torch.allclose(f, s / 90, rtol=1e-5, atol=1e-9)
    assert all(float(f.sum()) > 0 for f in fisher)
    with pytest.raises(ValueError, match="nn.Linear"): EWC.fisher(torch.nn.Sequential(torch.nn.Linear(12, 3), torch.nn.LayerNorm(3)), x, y)


def test_ewc_penalty_is_the_sum_of_the_tasks_quadratics(tasks):
    m = mlp(12, 8, 3, seed=0)
    reg = EWC(5.0)
    assert float(reg.penalty(m).detach()) == 0.0
    reg.consolidate(m, tasks[0]["x_train"], tasks[0]["y_train"], chunk=7)
    assert float(reg.penalty(m).detach()) == pytest.approx(0.0, abs=1e-9)   # at the consolidated weights
    terms = [(EWC.fisher(m, tasks[0]["x_train"], tasks[0]["y_train"]), [p.detach().clone() for p in m.parameters()])]
    for t in (1, 2):   # move the weights, consolidate on the next task
        with torch.no_grad():
            for p in m.parameters(): p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(t)))
        terms.append((EWC.fisher(m, tasks[t]["x_train"], tasks[t]["y_train"]), [p.detach().clone() for p in m.parameters()]))
        reg.consolidate(m, tasks[t]["x_train"], tasks[t]["y_train"])
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.1)
    p_now = [p.detach().clone().requires_grad_() for p in m.parameters()]
    direct = 5.0 / 2 * sum((f * (p - w) ** 2).sum() for fisher, weights in terms for f, p, w in zip(fisher, p_now, weights))
    assert reg.tasks == 3 and float(reg.penalty(m).detach()) == pytest.approx(float(direct.detach()), rel=1e-4)
    # the same gradients as the sum over tasks
    g_direct = torch.autograd.grad(direct, p_now)
    g_reg = torch.autograd.grad(reg.penalty(m), list(m.parameters()))
    for a, b in zip(g_reg, g_direct): assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_rehearsal_reduces_forgetting(tasks):
    kw = dict(epochs=3, R=60, lr=0.05, batch=16, hidden=32, seed=0)
    naive, uniform = run_environment(tasks, "none", **kw), run_environment(tasks, "uniform", **kw)
    assert np.array(naive["acc"]).shape == (4, 4) and len(naive["first_epoch"]) == 4
    s_naive, s_uniform = summarize(naive), summarize(uniform)
    assert s_uniform["final_acc"] > s_naive["final_acc"] and s_uniform["forgetting"] < s_naive["forgetting"]
    s = summarize({"acc": [[1.0, 0.0], [0.5, 1.0]], "first_epoch": [0.2, 0.6]})
    assert s == {"final_acc": 0.75, "forgetting": 0.5, "first_epoch_acc": 0.6}
    ewc = run_environment(tasks, "none", **{**kw, "R": 0}, ewc=10.0)
    assert 0.0 <= summarize(ewc)["final_acc"] <= 1.0
