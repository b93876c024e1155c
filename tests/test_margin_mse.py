"Margin-MSE's parts: the fact-ranking collection, the three architectures, the losses, training and evaluation."
import numpy as np
import pytest
import torch

from minirepro.core.retrieval import CrossEncoder, Ensemble, rerank
from minirepro.papers.margin_mse import (LOSSES, DotEncoder, LateInteraction, dense_retrieval, pair_scores,
                                         evaluate, fact_ranking, judgments, make_triples, ranking_loss,
                                         score_triples, train_ranker)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def C():
    return fact_ranking(entities=40, facts_per_entity=3, paraphrases=2, seed=0)


def test_collection_grades_and_judged_passages(C):
    assert len(C.docs) == 2 * len(C.facts) == 240 and C.queries.shape == (120, 3)
    for q in range(len(C.facts)):
        g = C.grades(q)
        assert set(np.nonzero(g == 3)[0]) == {2 * q, 2 * q + 1}              # both paraphrases state the fact
        assert C.doc_fact[C.judged[q]] == q                                   # one of them is judged
        s, r, _ = C.facts[q]
        for d in np.nonzero(g == 2)[0]:
            s2, r2, _ = C.facts[C.doc_fact[d]]
            assert s2 == s and r2 != r and C.group_of[r2] == C.group_of[r]
        for d in np.nonzero(g == 1)[0]:
            _, r2, o2 = C.facts[C.doc_fact[d]]
            assert o2 == s and r2 == r
    text = C.text(C.docs[0])
    assert len(text.split()) == 7 and C.text(C.queries[0]).split()[-1] == text.split()[0]   # the query names the subject
    again = fact_ranking(entities=40, facts_per_entity=3, paraphrases=2, seed=0)
    assert torch.equal(again.docs, C.docs) and (again.judged == C.judged).all()
    assert not torch.equal(fact_ranking(entities=40, facts_per_entity=3, seed=1).docs, C.docs)


def test_losses():
    sp, sn = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    tp, tn = torch.tensor([10.0, 5.0]), torch.tensor([8.0, 6.0])
    assert torch.isclose(ranking_loss("labels", sp, sn), torch.nn.functional.softplus(sn - sp).mean())
    assert torch.isclose(ranking_loss("margin-mse", sp, sn, tp, tn), torch.tensor(0.0))     # same margins, other scale
    assert ranking_loss("pointwise-mse", sp, sn, tp, tn) > 10                                  # raw scores: far apart
    with pytest.raises(ValueError, match="valid losses are labels, pointwise-mse, margin-mse"): ranking_loss("kl", sp, sn)


def test_architectures_score_pairs():
    torch.manual_seed(0)
    q, d = torch.randint(1, 50, (4, 3)), torch.randint(1, 50, (4, 7))
    for M in (CrossEncoder, DotEncoder, LateInteraction):
        s = M(50, d=16, layers=1)(q, d)
        assert s.shape == (4,) and torch.isfinite(s).all()
    dot = DotEncoder(50, d=16, layers=1)
    assert torch.allclose(dot(q, d), (dot.embed(q) * dot.embed(d)).sum(-1))
    late = LateInteraction(50, d=16, layers=1)
    Q, D = late.proj(late.enc(q)), late.proj(late.enc(d))
    assert torch.allclose(late(q, d), torch.stack([(Q[i] @ D[i].T).max(1).values.sum() for i in range(4)]), atol=1e-5)
    e = Ensemble([dot, dot])
    assert torch.allclose(e(q, d), dot(q, d))


def test_pair_scores_are_the_scores_of_both_pairs(C):
    # the students encode each query once and both passages in one batch; an ensemble or cross-encoder gets one call
    V = len(C.vocab) + 1
    q, dp, dn = C.queries[:6], C.docs[:6], C.docs[10:16]
    torch.manual_seed(0)
    for model in (DotEncoder(V, 16, 1), LateInteraction(V, 16, 1), Ensemble([CrossEncoder(V, 16, 1), CrossEncoder(V, 16, 1)])):
        model.eval()
        sp, sn = pair_scores(model, q, dp, dn)
        assert torch.allclose(sp, model(q, dp), atol=1e-5) and torch.allclose(sn, model(q, dn), atol=1e-5), type(model)


def test_triples_use_judged_positives_and_other_candidates(C):
    cands = {q: list(range(0, 240, 7)) for q in range(len(C.facts))}
    t = make_triples(C, np.arange(10), cands, 200, torch.Generator().manual_seed(0))
    assert t.shape == (200, 3)
    for q, p, n in t.tolist():
        assert q < 10 and p == C.judged[q] and n != p and n in cands[q]


def test_training_learns_and_distillation_needs_teacher_scores(C):
    cands = {q: list(range(len(C.docs))) for q in range(len(C.facts))}
    g = torch.Generator().manual_seed(0)
    triples = make_triples(C, np.arange(len(C.facts)), cands, 2000, g)
    V = len(C.vocab) + 1
    with pytest.raises(ValueError, match="needs teacher_scores"): train_ranker(DotEncoder(V, 16, 1), C, triples, "margin-mse", 1)
    model = train_ranker(DotEncoder(V, 32, 1), C, triples, "labels", 300, 32, 3e-3)
    s = score_triples(model, C, triples)
    assert s.shape == (2000, 2) and (s[:, 0] > s[:, 1]).float().mean() > 0.9     # learned to prefer the judged passage
    qs = np.arange(len(C.facts))
    m = evaluate(rerank(model, C.queries[torch.as_tensor(qs)], C.docs, np.stack([cands[q] for q in qs])), judgments(C, qs))
    assert set(m) == {"MRR@10", "nDCG@10"} and m["MRR@10"] > 0.5
    ranked = dense_retrieval(model, C, qs, k=10)
    assert ranked.shape == (len(qs), 10)
    student = train_ranker(LateInteraction(V, 32, 1), C, triples[:500], "margin-mse", 50, 32, 3e-3, teacher_scores=s[:500])
    assert torch.isfinite(score_triples(student, C, triples[:10])).all()


def test_judgments_list_every_positive_grade(C):
    j = judgments(C, [0, 5])
    assert all(set(x.values()) <= {1, 2, 3} for x in j) and j[0][int(C.judged[0])] == 3
