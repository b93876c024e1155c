"The DCO chapter's parts: pass@N estimators, the DCO loss and its gradient, the teacher-student problem."
import math

import pytest
import torch
import torch.nn.functional as F

from minirepro.core.train import mlp
from minirepro.papers.dco import (dco_loss, dco_weight, evaluate, pass_at_k, pass_at_n, teacher_student,
                                  train_arm)


def test_pass_at_n_exact_and_sampled_estimators_agree():
    p = torch.tensor([0.0, 0.1, 0.5, 1.0])
    assert pass_at_n(p, 1).tolist() == pytest.approx(p.tolist())
    assert pass_at_n(p, 3).tolist() == pytest.approx([0, 1 - 0.9 ** 3, 0.875, 1])
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3) and pass_at_k(10, 0, 5) == 0 and pass_at_k(10, 6, 5) == 1.0
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    with pytest.raises(ValueError, match="at least 4 samples"): pass_at_k(3, 1, 4)
    # the unbiased estimator averages to the exact value over many draws
    g = torch.Generator().manual_seed(0)
    draws = [pass_at_k(20, int((torch.rand(20, generator=g) < 0.1).sum()), 8) for _ in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(1 - 0.9 ** 8, abs=0.01)


def test_dco_loss_values_and_limits():
    logits = torch.log(torch.tensor([[0.2, 0.8], [0.5, 0.5]]))
    y = torch.tensor([0, 1])
    want = -(math.log(1 - 0.8 ** 4) + math.log(1 - 0.5 ** 4)) / 2
    assert dco_loss(logits, y, 4).item() == pytest.approx(want, rel=1e-5)
    assert dco_loss(logits, y, 1).item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    far = torch.tensor([[0.0, 60.0]])  # p(target) ~ e^-60: loss ~ 60 - log 64, not inf
    assert dco_loss(far, torch.tensor([0]), 64).item() == pytest.approx(60 - math.log(64), rel=1e-4)
    assert dco_loss(torch.tensor([[60.0, 0.0]]), torch.tensor([0]), 64).item() < 1e-12


def test_dco_gradient_is_ce_gradient_times_the_weight():
    z = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(2))
    g, = torch.autograd.grad(dco_loss(z, y, 16), z)
    gce, = torch.autograd.grad(F.cross_entropy(z, y), z)
    p = z.softmax(-1).gather(1, y[:, None])
    assert torch.allclose(g, dco_weight(p, 16) * gce, atol=1e-12)
    assert dco_weight(torch.tensor(1e-6, dtype=torch.float64), 64) == pytest.approx(1, abs=1e-3)
    assert dco_weight(torch.tensor(0.5, dtype=torch.float64), 64) < 1e-15


def test_teacher_student_is_deterministic_and_students_share_initial_weights():
    a, b = teacher_student(5, 8, 16, 50, 20, 3), teacher_student(5, 8, 16, 50, 20, 3)
    assert all(torch.equal(a[k], b[k]) for k in a) and a["x_test"].shape == (20, 5) and a["y_train"].max() < 8
    assert not torch.equal(a["y_train"], teacher_student(5, 8, 16, 50, 20, 4)["y_train"])
    s1, s2 = mlp(5, 16, 8, seed=0), mlp(5, 16, 8, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(s1.parameters(), s2.parameters()))
    m = evaluate(s1, a["x_test"], a["y_test"])
    assert 0 <= m["pass@1"] <= m["pass@4"] <= m["pass@16"] <= m["pass@64"] <= 1


def test_train_arm_runs_each_loss_and_rejects_unknown_ones():
    d = teacher_student(6, 10, 16, 200, 100, 0)
    ce = train_arm(d, "ce", 32, 10, epochs=30, lr=3e-3, seed=0, eval_every=10)
    dco = train_arm(d, "dco8", 32, 10, epochs=30, lr=3e-3, seed=0, eval_every=10)
    assert [e for e, _ in ce["curve"]] == [0, 10, 20, 30]
    assert ce["curve"][0][1] == dco["curve"][0][1]  # same initial student
    assert ce["final"]["acc"] > ce["curve"][0][1]["acc"]
    with pytest.raises(ValueError, match="valid: ce, dco<N>"): train_arm(d, "focal", 8, 10, 1, 1e-3, 0)
