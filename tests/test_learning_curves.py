"Learning curves' parts: the HMM corpus, the two taggers, the curve runner and the extrapolation."
import numpy as np
import pytest

from minirepro.papers.learning_curves import (FAMILIES, HMMTagger, WindowNBTagger, learning_curve, predict_final,
                                              prediction_level, prediction_trace, random_hmm, sample_corpus, tag_accuracy)


@pytest.fixture(scope="module")
def hmm():
    return random_hmm(5, 60, 0.3, seed=0)


def test_random_hmm_is_a_valid_model_with_ambiguous_words(hmm):
    assert np.allclose(hmm["trans"].sum(1), 1) and np.allclose(hmm["emit"].sum(1), 1) and np.isclose(hmm["start"].sum(), 1)
    per_word = hmm["allowed"].sum(0)
    assert per_word.min() >= 1 and 0.1 < (per_word > 1).mean() < 0.5
    assert bool((hmm["emit"][~hmm["allowed"]] == 0).all())   # a word is emitted only by its tags


def test_sample_corpus_lengths_and_consistency(hmm):
    c = sample_corpus(hmm, 500, seed=1, min_len=3, max_len=6)
    assert sum(len(w) for w, _ in c) >= 500 and all(3 <= len(w) <= 6 and len(w) == len(t) for w, t in c)
    assert all(hmm["allowed"][t, w].all() for w, t in c)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(c, sample_corpus(hmm, 500, seed=1, min_len=3, max_len=6)))


def test_taggers_learn_and_the_hmm_tagger_is_exact_on_unambiguous_text():
    det = {"trans": np.full((3, 3), 1 / 3), "start": np.full(3, 1 / 3), "emit": np.eye(3)[:, [0, 1, 2, 0, 1, 2]] / 2,
           "allowed": np.eye(3, dtype=bool)[:, [0, 1, 2, 0, 1, 2]]}
    c = sample_corpus(det, 300, seed=0, min_len=3, max_len=5)
    assert tag_accuracy(HMMTagger(3, 6).fit(c), c) == 1.0
    hmm = random_hmm(5, 60, 0.3, seed=0)
    tr, te = sample_corpus(hmm, 3000, seed=1), sample_corpus(hmm, 800, seed=2)
    for make in (lambda: HMMTagger(5, 60), lambda: WindowNBTagger(n_features=2 ** 12)):
        tagger = make().fit(tr)
        assert tag_accuracy(tagger, te) > 0.5
        words, tags = te[0]
        assert len(tagger.predict(words)) == len(tags)
    assert WindowNBTagger().fit(tr).predict_corpus(te[:2]).shape == (len(te[0][0]) + len(te[1][0]),)
    curve = learning_curve(lambda: HMMTagger(5, 60), tr, te, [0.05, 1.0])
    assert curve[1] > curve[0]


def test_extrapolation_recovers_a_known_power_law():
    f = FAMILIES["power"][0]
    x = np.geomspace(0.01, 0.3, 12)
    y = f(x, 0.95, 0.05, 0.4)
    assert predict_final(x, y, "power") == pytest.approx(f(1.0, 0.95, 0.05, 0.4), abs=1e-4)
    trace = prediction_trace(x, y, "power")
    assert len(trace) == 9 and abs(trace[-1] - f(1.0, 0.95, 0.05, 0.4)) < 1e-4
    assert prediction_level([0.5, 0.6, 0.605, 0.6051], epsilon=0.01) == 6
    assert prediction_level([0.5, 0.6, 0.7], epsilon=0.01) is None
    assert predict_final(np.array([0.1, 0.2]), np.array([0.5, 0.6]), "power") == pytest.approx(0.6)   # too few points: last value
