"Modular data ablations' parts: the data, fitting for a number of epochs, parameter averaging and the agreement statistics."
import pytest
import torch

from minirepro.core.lm import NGramLM
from minirepro.papers.modular_data_ablations import agreement, average, eval_all, fit, make_data, make_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return make_data(4, shared=12, private=3, unit=64, eval_n=16, length=10, seed=0)


def test_units_and_evaluation_sets(data):
    assert list(data["units"]) == ["d1", "d2", "d3"] and list(data["evals"]) == ["d1", "d2", "d3", "d4", "mix"]
    assert all(u.shape == (64, 10) for u in data["units"].values())
    d2 = set(data["units"]["d2"].flatten().tolist())
    assert d2 <= set(range(12)) | {15, 16, 17}   # shared ids and d2's own
    assert torch.equal(make_data(4, 12, 3, 64, 16, 10, seed=0)["units"]["d1"], data["units"]["d1"])
    assert set(data["generic"].tokens) == set(range(12))


def test_fit_trains_a_copy_for_the_asked_epochs(data):
    m = make_model("ngram", data["domains"].vocab_size, {"context": 2, "d": 8, "hidden": 16}, 10, seed=0)
    before = [p.clone() for p in m.parameters()]
    f = fit(m, data["units"]["d1"], epochs=3, batch=16, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), before))   # the original is untouched
    assert eval_all(f, data["evals"])["d1"] < eval_all(m, data["evals"])["d1"]
    llama = make_model("llama", data["domains"].vocab_size, {"d": 16, "layers": 1, "heads": 2}, 10, seed=0)
    assert eval_all(fit(llama, data["units"]["d1"], 0.5, 16, 1e-3), data["evals"])["d1"] > 0
    with pytest.raises(ValueError, match="valid kinds are llama, ngram"): make_model("rnn", 10, {}, 10)


def test_average_is_the_mean_of_the_parameters():
    a, b = NGramLM(7, context=2, d=4, hidden=5, seed=0), NGramLM(7, context=2, d=4, hidden=5, seed=1)
    m = average([a, b])
    for pm, pa, pb in zip(m.parameters(), a.parameters(), b.parameters()):
        assert torch.allclose(pm, (pa + pb) / 2)
    assert torch.equal(average([a]).emb.weight, a.emb.weight)


def test_agreement_statistics():
    truth = {("a",): {"x": 1.0, "y": 5.0}, ("b",): {"x": 2.0, "y": 6.0}, ("c",): {"x": 3.0, "y": 7.0}}
    same = agreement(truth, truth)
    assert same["pearson"] == pytest.approx(1.0) and same["median_spearman_within"] == pytest.approx(1.0)
    flipped = {m: {"x": 10 - v["x"], "y": v["y"]} for m, v in truth.items()}   # x's order reversed, y's kept
    f = agreement(truth, flipped)
    assert f["spearman_within"] == {"x": pytest.approx(-1.0), "y": pytest.approx(1.0)}
    assert f["median_spearman_within"] == pytest.approx(0.0)
