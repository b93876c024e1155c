"AlgoPerf's parts: workloads and variants, Halton trials, optimisers, time to target and performance profiles."
import math

import numpy as np
import pytest
import torch

from minirepro.papers.algoperf import (ALGORITHMS, SPACES, WORKLOADS, halton, make_mlp, make_optimizer, make_workload,
                                       performance_profiles, profile_score, time_to_target, trials)

torch.set_num_threads(1)


def test_halton_is_low_discrepancy_and_trials_stay_in_their_spaces():
    h = halton(8, 2)
    assert h[:4, 0].tolist() == [0.5, 0.25, 0.75, 0.125] and h[:3, 1].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 9])
    assert np.array_equal(halton(3, 2, skip=5), halton(8, 2)[5:])
    for a in ALGORITHMS:
        for hp in trials(a, 20):
            assert set(hp) == set(SPACES[a])
            assert all(lo <= hp[k] <= hi for k, (lo, hi, _) in SPACES[a].items())


def test_variants_change_the_model():
    x = torch.randn(3, 10)
    shapes = {v: [p.shape for p in make_mlp(10, 8, 2, v).parameters()] for v in ("base", "tanh", "layernorm", "half-width")}
    assert shapes["half-width"][0] == (4, 10) and len(shapes["layernorm"]) == len(shapes["base"]) + 4
    assert [type(l).__name__ for l in make_mlp(10, 8, 2, "tanh")] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert [type(l).__name__ for l in make_mlp(10, 8, 2, "layernorm")][:3] == ["Linear", "LayerNorm", "ReLU"]
    assert make_mlp(10, 8, 2, "base")(x).shape == (3, 2)
    with pytest.raises(ValueError, match="valid variants: base, tanh"): make_mlp(10, 8, 2, "gelu")


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_workload_trains_and_its_metric_falls(name):
    wl = make_workload(name, seed=0)
    res = time_to_target(wl, "adam", {"lr": 3e-3, "one_minus_beta1": 0.1, "warmup": 0.05}, -math.inf, 60, 10, run_all=True)
    assert len(res["curve"]) == 6 and res["steps"] is None
    model = wl.make_model("base", 0)
    start = wl.metric(model, wl.data["x_val"], wl.data["y_val"])
    assert res["best"] < start


def test_time_to_target_stops_at_the_first_checked_step_below_the_target():
    wl = make_workload("regression-mlp", seed=0)
    hp = {"lr": 3e-3, "one_minus_beta1": 0.1, "warmup": 0.0}
    full = time_to_target(wl, "adam", hp, -math.inf, 100, 10, run_all=True)
    target = full["curve"][4][1]  # the metric at step 50
    first = next(s for s, m in full["curve"] if m <= target)
    res = time_to_target(wl, "adam", hp, target, 100, 10)
    assert res["steps"] == first and res["curve"] == full["curve"][:len(res["curve"])] and res["curve"][-1][0] == first
    assert time_to_target(wl, "adam", hp, 0.0, 30, 10)["steps"] is None


def test_optimisers_and_unknown_names():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer("nadamw", p, trials("nadamw", 1)[0]), torch.optim.NAdam)
    assert make_optimizer("nesterov", p, trials("nesterov", 1)[0]).param_groups[0]["nesterov"]
    with pytest.raises(ValueError, match="valid algorithms: sgd, nesterov, adam, nadamw"): make_optimizer("lamb", p, {"lr": 1})
    with pytest.raises(ValueError, match="valid workloads"): make_workload("imagenet")


def test_performance_profiles():
    times = {"fast": {"a": 10, "b": 20}, "slow": {"a": 20, "b": 80}, "never": {"a": None, "b": None}}
    taus = np.array([1.0, 2.0, 4.0])
    rho = performance_profiles(times, taus)
    assert rho["fast"].tolist() == [1, 1, 1] and rho["slow"].tolist() == [0, 0.5, 1] and rho["never"].tolist() == [0, 0, 0]
    assert profile_score(rho["fast"], taus) == pytest.approx(1.0) and profile_score(rho["never"], taus) == 0
    assert 0 < profile_score(rho["slow"], taus) < 1
