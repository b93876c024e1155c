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


def test_ewc_fisher_and_penalty(tasks):
    m = mlp(12, 8, 3, seed=0)
    reg = EWC(5.0)
    assert float(reg.penalty(m).detach()) == 0.0
    reg.consolidate(m, tasks[0]["x_train"], tasks[0]["y_train"], chunk=7)
    fisher, weights = reg.terms[0]
    # the Fisher is the mean of squared per-example gradients: check one parameter by hand
    g2 = torch.zeros_like(next(m.parameters()))
    for xi, yi in zip(tasks[0]["x_train"], tasks[0]["y_train"]):
        m.zero_grad(); torch.nn.functional.cross_entropy(m(xi[None]), yi[None]).backward(); g2 += next(m.parameters()).grad ** 2
    assert torch.allclose(fisher[0], g2 / 90, atol=1e-6)
    assert float(reg.penalty(m).detach()) == 0.0   # at the consolidated weights
    with torch.no_grad(): next(m.parameters()).add_(0.1)
    assert float(reg.penalty(m).detach()) == pytest.approx(5.0 / 2 * 0.01 * float(fisher[0].sum()), rel=1e-4)


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
