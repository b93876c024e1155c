"SimQ-NAS's parts: the weight-sharing super-network, fake quantisation, sizes, the predictor, NSGA-II and the hypervolume."
import random

import numpy as np
import pytest
import torch

from minirepro.core.repro import Preset
from minirepro.papers.simq_nas import (ElasticMLP, Ridge, crowding_distance, encode, fake_quant, hypervolume, largest,
                                       non_dominated_sort, nsga2, pareto, random_config, size_bits, smallest)

torch.set_num_threads(1)
P = Preset(max_depth=4, depths=[2, 3, 4], widths=[8, 16], bits=[4, 6, 8])


def test_fake_quant_uses_at_most_2_to_the_bits_levels_per_row_and_keeps_the_extremes():
    w = torch.randn(5, 100, generator=torch.Generator().manual_seed(0))
    for bits in (4, 6, 8):
        q = fake_quant(w, bits)
        assert all(len(torch.unique(r)) <= 2 ** bits - 1 for r in q)
        assert torch.allclose(q.abs().amax(1), w.abs().amax(1))
        assert (q - w).abs().max() <= w.abs().amax() / (2 ** (bits - 1) - 1) / 2 + 1e-6
    assert (fake_quant(w, 4) - w).abs().mean() > (fake_quant(w, 8) - w).abs().mean()


def test_sub_networks_share_the_super_networks_weights_and_sizes_count_bits():
    net = ElasticMLP(6, 3, max_width=16, max_depth=4, seed=0)
    cfg = {"depth": 2, "widths": [8, 16, 16, 16], "bits": [4, 6, 8, 8, 8]}
    (w1, b1), (w2, _), (wh, _) = net.layers(cfg)
    assert w1.shape == (8, 6) and w2.shape == (16, 8) and wh.shape == (3, 16)
    assert w1.data_ptr() == net.hidden[0].weight.data_ptr()  # a view, not a copy
    assert size_bits(net, cfg) == 8 * 6 * 4 + 16 * 8 * 6 + 3 * 16 * 8 + (8 + 16 + 3) * 32
    x = torch.randn(4, 6)
    assert net(x, cfg).shape == (4, 3) and net(x, cfg, quantize=True).shape == (4, 3)
    big = largest(Preset(max_depth=4, depths=[2, 3, 4], widths=[8, 16], bits=[4, 8]))
    assert big["depth"] == 4 and big["widths"] == [16] * 4 and smallest(P)["widths"] == [8] * 4


def test_encoding_ignores_unused_layers():
    a = {"depth": 2, "widths": [8, 16, 8, 8], "bits": [4, 6, 4, 4, 8]}
    b = {"depth": 2, "widths": [8, 16, 16, 16], "bits": [4, 6, 8, 8, 8]}
    assert np.array_equal(encode(a, P), encode(b, P)) and len(encode(a, P)) == 3 + 4 * (2 + 3) + 3
    rng = random.Random(0)
    assert all(random_config(P, rng, joint=False)["bits"] == [8] * 5 for _ in range(10))


def test_ridge_recovers_a_linear_function():
    X = np.random.default_rng(0).normal(size=(200, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.7
    assert np.allclose(Ridge(1e-6).fit(X, y).predict(X), y, atol=1e-4)


def test_non_dominated_sort_crowding_and_pareto():
    F = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]])
    assert non_dominated_sort(F) == [[0, 1, 2], [3], [4], [5]]
    cd = crowding_distance(F[[0, 1, 2]].astype(float))
    assert np.isinf(cd[0]) and np.isinf(cd[2]) and np.isfinite(cd[1])
    pts = np.array([[0.9, 0.5], [0.95, 0.8], [0.85, 0.9], [0.95, 0.6]])  # (accuracy, size)
    assert sorted(pareto(pts).tolist()) == [0, 3]


def test_hypervolume_of_known_fronts():
    assert hypervolume([(1.0, 0.0)], 0.0, 1.0) == pytest.approx(1.0)
    assert hypervolume([(0.5, 0.5)], 0.0, 1.0) == pytest.approx(0.25)
    assert hypervolume([(0.5, 0.5), (1.0, 0.75)], 0.0, 1.0) == pytest.approx(0.5 * 0.25 + 0.5 * 0.5)
    assert hypervolume([(0.5, 0.5), (0.4, 0.6)], 0.0, 1.0) == pytest.approx(0.25)  # a dominated point adds nothing
    assert hypervolume([(0.5, 1.5)], 0.0, 1.0) == 0 and hypervolume([(0.5, 0.5)], 0.6, 1.0) == 0


def test_nsga2_finds_the_front_of_a_simple_problem():
    # minimise (x, 1 - x) over x in 0..20 / 20: every x is on the front; with (x, (1 - x)^2 + 0.5) too
    obj = lambda sols: np.array([[x / 20, (1 - x / 20) ** 2 + (0.5 if x % 2 else 0)] for x in sols])
    pop = nsga2(obj, lambda r: r.randrange(21), lambda x, r: min(20, max(0, x + r.choice([-1, 1]))) if r.random() < 0.5 else x,
                lambda a, b, r: a if r.random() < 0.5 else b, population=20, generations=30, rng=random.Random(0))
    assert all(x % 2 == 0 for x in pop) and len(set(pop)) >= 8  # dominated odd x gone, the front is spread
