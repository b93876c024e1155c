"Ranking curricula's parts: the answer collection, training triples, difficulty, the weight schedule and training."
import numpy as np
import pytest
import torch

from minirepro.core.retrieval import CrossEncoder, KernelPooling
from minirepro.papers.ranking_curricula import (ARMS, curriculum_weights, make_ranker, qa_collection,
                                                reciprocal_rank_difficulty, rerank_metrics, train_reranker,
                                                training_triples)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def C():
    return qa_collection(topics=30, background=10, seed=0)


def test_collection_topics_and_overlap(C):
    assert C.questions.shape == (60, 4) and C.answers.shape == (60 * 11, 8)
    for q in range(60):
        rel = C.relevant(q)
        assert len(rel) == 6 and all(C.kind[a] == 0 for a in rel)             # two questions per topic, three answers each
        own = set(C.questions[q].tolist())
        mine = rel[:3] if q % 2 == 0 else rel[3:]
        assert all(len(own & set(C.answers[a].tolist())) <= 3 for a in mine)
    d = np.nonzero(C.kind == 1)[0]
    assert all(C.a_topic[a] >= 30 for a in d)                                  # distractors are off topic ...
    q_of = lambda a: a // 11                                                    # ... but repeat question words
    assert all(len(set(C.questions[q_of(a)].tolist()) & set(C.answers[a].tolist())) >= 1 for a in d)
    again = qa_collection(topics=30, background=10, seed=0)
    assert torch.equal(again.answers, C.answers)


def test_triples_and_difficulty(C):
    cands = np.stack([(np.arange(20) + 11 * q) % len(C.answers) for q in range(60)])   # its own answers, then the next question's
    t = training_triples(C, [0, 2], cands)
    for q, p, n, rp, rn in t.tolist():
        assert p in C.relevant(q) and n not in C.relevant(q)
        assert cands[q][rp - 1] == p and cands[q][rn - 1] == n
    D = reciprocal_rank_difficulty(torch.tensor([[0, 0, 0, 1, 20], [0, 0, 0, 10, 1], [0, 0, 0, 2, 2]]))
    assert torch.allclose(D, torch.tensor([0.95, 0.0, 0.25]))


def test_curriculum_weights_ramp_to_uniform():
    D = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(curriculum_weights(D, 0, 10), D)
    assert torch.allclose(curriculum_weights(D, 5, 10), torch.tensor([0.5, 0.75, 1.0]))
    assert torch.equal(curriculum_weights(D, 10, 10), torch.ones(3)) and torch.equal(curriculum_weights(D, 0, 10, "uniform"), torch.ones(3))
    assert torch.equal(curriculum_weights(D, 0, 10, "anti-curriculum"), 1 - D)
    with pytest.raises(ValueError, match="valid arms are uniform, curriculum, anti-curriculum"): curriculum_weights(D, 0, 10, "random")
    assert ARMS == ("uniform", "curriculum", "anti-curriculum")


def test_rankers_train_and_beat_chance(C):
    assert isinstance(make_ranker("knrm", 10), KernelPooling) and isinstance(make_ranker("cross", 10, 16, 1), CrossEncoder)
    with pytest.raises(ValueError, match="valid rankers are knrm, cross"): make_ranker("bert", 10)
    rng = np.random.default_rng(0)
    cands = np.stack([rng.permutation(len(C.answers))[:20] for _ in range(60)])
    for q in range(60): cands[q][rng.integers(20)] = C.relevant(q)[0]          # at least one relevant candidate
    t = training_triples(C, np.arange(0, 60, 2), cands)
    D = reciprocal_rank_difficulty(t)
    model = train_reranker(make_ranker("knrm", len(C.vocab) + 1, 16), C, t, D, "curriculum", 300, 32, 1e-2, seed=0)
    m = rerank_metrics(model, C, np.arange(1, 60, 2), cands)
    assert set(m) == {"MRR@10", "P@1"} and m["MRR@10"] > 0.5                  # random order of 20: about 0.2
