"Hyperspherical embedding's parts: the novel-class splits, the five losses, the encoder trainer and the few-shot evaluator."
import pytest
import torch

from minirepro.core.repro import Preset
from minirepro.papers.hyperspherical_embedding import (LOSSES, batch_hard_triplet_loss, contrastive_loss, few_shot_accuracy,
                                                       normalized_softmax_loss, novel_splits, prototypical_loss, train_encoder)

torch.set_num_threads(1)


def clusters(n_classes=4, per=30, dim=8, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(dim)[:n_classes] * 3
    return centers.repeat_interleave(per, 0) + spread * torch.randn(n_classes * per, dim, generator=g), torch.arange(n_classes).repeat_interleave(per)


def test_novel_splits_are_disjoint_and_seeded():
    s = novel_splits(3)
    assert len(s) == 3 and all(len(x) == 3 for x in s) and len({c for x in s for c in x}) == 9
    assert s == novel_splits(3) and s != novel_splits(4)


def test_normalized_softmax_only_sees_angles():
    z, y = torch.randn(10, 4), torch.randint(3, (10,))
    w = torch.randn(3, 4)
    assert torch.allclose(normalized_softmax_loss(z, y, w), normalized_softmax_loss(5 * z, y, 0.1 * w))
    aligned = normalized_softmax_loss(w[y] * 2, y, w, scale=16)
    assert aligned < normalized_softmax_loss(z, y, w, scale=16)


def test_pair_losses_vanish_on_well_separated_clusters_and_not_on_mixed_labels():
    X, y = clusters()
    assert batch_hard_triplet_loss(X, y, 0.2) == 0 and contrastive_loss(X, y, 0.5) < 1e-3
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert batch_hard_triplet_loss(X, shuffled, 0.2) > 0.1 and contrastive_loss(X, shuffled, 0.5) > 0.1


def test_prototypical_loss_prefers_the_right_prototypes():
    X, y = clusters(3, 10)
    support = torch.cat([X[y == c][:5] for c in range(3)]); query = torch.cat([X[y == c][5:] for c in range(3)])
    right = prototypical_loss(support, query, 5)
    wrong = prototypical_loss(support.view(3, 5, -1).flip(0).reshape(15, -1), query, 5)
    assert right < 0.01 and wrong > 1


def test_few_shot_accuracy_is_perfect_on_separated_classes_and_chance_on_noise():
    X, y = clusters(5, 40)
    ident = torch.nn.Identity()
    assert few_shot_accuracy(ident, X, y, [0, 1, 2], episodes=20, seed=0) == 1.0
    assert few_shot_accuracy(ident, X, y, [0, 1, 2], episodes=20, seed=0, gallery=[3, 4]) == 1.0
    noise = torch.randn(400, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(4).repeat(100)
    assert few_shot_accuracy(ident, noise, labels, [0, 1, 2, 3], episodes=50, seed=0) == pytest.approx(0.25, abs=0.05)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_an_encoder_that_separates_seen_classes(loss):
    X, y = clusters(4, 40, dim=16, spread=1.0)
    P = Preset(hidden=32, embed=8, epochs=15, batch=32, lr=3e-3, scale=16.0, triplet_margin=0.2, contrastive_margin=0.5, proto_shot=5)
    enc = train_encoder(loss, X, y, P, seed=0)
    assert few_shot_accuracy(enc, X, y, [0, 1, 2, 3], episodes=20, seed=0) > 0.9
    with pytest.raises(ValueError, match="valid losses: normalized softmax"): train_encoder("arcface", X, y, P)
