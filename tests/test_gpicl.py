"The GPICL chapter's parts: features from the real digits, task pools, sequences and tokens, the learner."
import torch

from minirepro.papers.gpicl import (Tasks, digit_features, learner, meta_train, other_dataset, position_accuracy,
                                    sequences, tokens)


def test_digit_features_keep_the_fixed_split_and_are_standardised():
    d = digit_features(3, 8)
    assert d["x_train"].shape[1] == 8 and set(d["y_train"].tolist()) == {0, 1, 2}
    assert len(d["x_train"]) > 3 * len(d["x_test"]) > 0
    assert torch.allclose(d["x_train"].mean(0), torch.zeros(8), atol=1e-4)
    assert torch.allclose(d["x_train"].std(0), torch.ones(8), atol=1e-2)
    for name in ("iris", "wine"):
        o = other_dataset(name, 8)
        assert o["x"].shape[1] == 8 and set(o["y"].tolist()) == {0, 1, 2}


def test_task_pool_is_fixed_and_fresh_tasks_are_new():
    pool, again = Tasks(4, 3, 3, seed=1), Tasks(4, 3, 3, seed=1)
    assert torch.equal(pool.A, again.A) and torch.equal(pool.perm, again.perm)
    A, perm = pool.draw(50, torch.Generator().manual_seed(0))
    assert len({tuple(a.flatten().tolist()) for a in A}) <= 4
    assert all(sorted(p.tolist()) == [0, 1, 2] for p in perm)
    A2, _ = Tasks(0, 3, 3, 0).draw(50, torch.Generator().manual_seed(0))
    assert len({tuple(a.flatten().tolist()) for a in A2}) == 50


def test_sequences_apply_one_task_per_sequence_and_tokens_shift_labels():
    x = torch.eye(3); y = torch.tensor([0, 1, 2])
    pool = Tasks(1, 3, 3, seed=0)
    xs, ys = sequences(x, y, pool, 2, 5, torch.Generator().manual_seed(0))
    assert xs.shape == (2, 5, 3) and ys.shape == (2, 5)
    for b in range(2):
        for t in range(5):  # each input is a row of the task's projection, each label its permuted label
            i = int((xs[b, t] - pool.A[0]).abs().sum(-1).argmin())
            assert torch.allclose(xs[b, t], pool.A[0][i]) and ys[b, t] == pool.perm[0][i]
    tok = tokens(xs, ys, 3)
    assert tok.shape == (2, 5, 6) and (tok[:, 0, 3:] == 0).all()
    assert torch.equal(tok[:, 1:, 3:].argmax(-1), ys[:, :-1])


def test_a_learner_memorises_a_single_task():
    d = digit_features(3, 8)
    one = Tasks(1, 8, 3, seed=0)
    m = learner(8, 3, d=32, layers=1, heads=2, points=10, seed=0)
    before = position_accuracy(m, d["x_test"], d["y_test"], one, 256, 10, 0)[-3:].mean()
    meta_train(m, d, one, steps=150, batch=32, lr=3e-3, points=10, seed=0)
    after = position_accuracy(m, d["x_test"], d["y_test"], one, 256, 10, 0)
    assert after[0] > 0.8 and after.mean() > before + 0.3   # one fixed task: answered from the first position
