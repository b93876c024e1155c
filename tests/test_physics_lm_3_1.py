"Physics of LMs 3.1's parts: the arms' corpora, the name-token states, the probe and the pipeline."
import numpy as np
import pytest
import torch

from minirepro.core.knowledge import answer_correct, make_kb
from minirepro.core.lm import tiny_llama, word_tokenizer
from minirepro.papers.physics_lm_3_1 import (ARMS, corpus, name_states, pretrain_and_ask, probe_accuracy,
                                             qa_pairs)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def kb():
    return make_kb(20, seed=0)


def test_corpora_of_the_three_arms(kb):
    train = kb.people[:10]
    single, aug, mixed = (corpus(kb, arm, train, multi=3, seed=0) for arm in ARMS)
    assert len(single) == 20 and all(t.count(p.name) == 1 for t, p in zip(single, kb.people))
    assert len(aug) == 60 and all(t.count(p.name) == 3 for t, p in zip(aug[::3], kb.people))
    assert mixed[:20] == single and len(mixed) == 20 + 30 and all("?" in t for t in mixed[20:])
    assert all(t.endswith(kb.people[0][a]) for t, a in zip(mixed[20:23], kb.attributes))
    assert aug == corpus(kb, "augmented", train, multi=3, seed=0) != corpus(kb, "augmented", train, multi=3, seed=1)
    with pytest.raises(ValueError, match="valid: single, augmented, mixed"): corpus(kb, "bioR", train)


def test_name_states_read_the_last_name_token(kb):
    tok = word_tokenizer([p.name for p in kb.people], lowercase=False)
    model = tiny_llama(len(tok), d=16, layers=1, heads=2, ctx=8, tok=tok, seed=0)
    H = name_states(model, tok, kb.people[:4])
    assert H.shape == (4, 16)
    one = name_states(model, tok, kb.people[1:2])
    assert np.allclose(H[1], one[0], atol=1e-5)


def test_probe_accuracy_separates_informative_from_random_features():
    rng = np.random.default_rng(0)
    labels = [i % 4 for i in range(200)]
    informative = np.eye(4)[labels] * 3 + rng.normal(size=(200, 4)) * 0.1
    assert probe_accuracy(informative, labels) > 0.95 and probe_accuracy(rng.normal(size=(200, 4)), labels) < 0.5


def test_the_pipeline_answers_every_question(kb):
    tok = word_tokenizer([t for arm in ARMS for t in corpus(kb, arm, kb.people[:10])] +
                         [q for q, _ in qa_pairs(kb, kb.people)], lowercase=False)
    r = pretrain_and_ask(kb, "single", tok, kb.people[:10], kb.people[10:], 16, 1, 2, 3, 8, 1e-3, 2, 1e-3)
    assert {"memorised", "probe", "qa_train", "qa_test", "qa_test_by_attribute"} <= set(r)
    assert 0 <= r["qa_test"] <= 1 and set(r["probe"]) == set(kb.attributes)
    model = tiny_llama(len(tok), d=16, layers=1, heads=2, ctx=32, tok=tok, seed=0)
    qa = qa_pairs(kb, kb.people[:2])
    assert len(answer_correct(model, tok, [q for q, _ in qa], [a for _, a in qa])) == 6
