"The Boolean in-context chapter's parts: prompt generators, teaching sequences and the classical learners."
import pytest
import torch

from minirepro.papers.icl_boolean import (ICLTransformer, LSTMLearner, boolean_prompts, elimination, majority,
                                          nearest_neighbour, predict, train_icl)


def test_conjunction_prompts_are_conjunctions_with_common_positives():
    g = torch.Generator().manual_seed(0)
    x, y, pre = boolean_prompts("conjunction", 500, 8, 30, g, force=0.2)
    assert x.shape == (500, 30, 8) and set(x.unique().tolist()) == {-1.0, 1.0} and pre is None
    assert 0.25 < (y > 0).float().mean() < 0.6
    # consistency: within a prompt, every positive example agrees on the variables of the conjunction, so the
    # elimination algorithm never predicts positive on a negative example
    pred = elimination(x, y)
    assert not ((pred > 0) & (y < 0)).any()


def test_parity_prompts_are_balanced_and_consistent():
    g = torch.Generator().manual_seed(1)
    x, y, _ = boolean_prompts("parity", 400, 6, 20, g)
    assert abs((y > 0).float().mean().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match="valid: conjunction, parity"):
        boolean_prompts("majority", 1, 4, 4, g)


def test_teaching_sequence_identifies_the_conjunction():
    g = torch.Generator().manual_seed(2)
    x, y, pre = boolean_prompts("conjunction", 300, 8, 24, g, teaching=True)
    pred = elimination(x, y)
    rows = torch.arange(300)
    assert (y[rows, 0] > 0).all() and (y[rows, 1] > 0).all()          # two positives first
    for b in range(20):
        assert (y[b, 2:int(pre[b])] < 0).all()                        # then one negative per literal
    # after the prefix, elimination is exact on every later point
    later = torch.arange(24)[None, :] >= pre[:, None]
    assert (pred[later] == y[later]).all()


def test_classical_learners_on_a_hand_made_prompt():
    x = torch.tensor([[[1., 1.], [1., -1.], [1., 1.], [-1., 1.]]])
    y = torch.tensor([[1., -1., 1., -1.]])   # the function x1 AND x2
    assert elimination(x, y).tolist() == [[-1., -1., 1., -1.]]
    assert nearest_neighbour(x, y).tolist() == [[-1., 1., 1., 1.]]
    assert majority(x, y).tolist() == [[-1., 1., -1., 1.]]


@pytest.mark.parametrize("cls", [ICLTransformer, LSTMLearner])
def test_learners_train_and_predict_every_position(cls):
    import torch.nn.functional as F
    m = cls(6, d=16, layers=1, heads=2, points=12, seed=0)
    xe, ye, _ = boolean_prompts("conjunction", 256, 6, 12, torch.Generator().manual_seed(9))
    loss = lambda: F.binary_cross_entropy_with_logits(m(xe, ye), (ye > 0).float()).item()
    before = loss()
    train_icl(m, "conjunction", steps=150, batch=32, lr=3e-3, n=6, points=12, seed=0)
    with torch.no_grad(): assert loss() < before - 0.05
    x, y, _ = boolean_prompts("conjunction", 7, 6, 12, torch.Generator().manual_seed(3))
    p = predict(m, x, y, chunk=3)
    assert p.shape == (7, 12) and set(p.unique().tolist()) <= {-1.0, 1.0}
    # causal: changing a later label does not change earlier predictions
    y2 = y.clone(); y2[:, -1] *= -1
    assert torch.equal(predict(m, x, y2)[:, :-1], p[:, :-1])
