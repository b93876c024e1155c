"IDCM's parts: the document-ranking set, kernel pooling, the trainers, passage selection and the cascade."
import numpy as np
import pytest
import torch

from minirepro.core.retrieval import CrossEncoder, KernelPooling
from minirepro.papers.idcm import (cascade_from, cascade_scores, doc_pairs, doc_ranking, first_k,
                                   passage_scores, rank_metrics, recall_of_selection, select_passages,
                                   train_distilled_selector, train_doc_ranker, train_passage_ranker)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def D():
    return doc_ranking(30, candidates=6, passages=5, filler=2, entities=40, seed=0)


def test_documents_hold_one_answer_and_decoys_in_hard_negatives(D):
    assert D.docs.shape == (30, 6, 5, 6) and D.queries.shape == (30, 3)
    for i in range(30):
        x, rel_word = int(D.queries[i, 2]), int(D.queries[i, 1])
        r = int(D.relevant[i])
        ans = D.docs[i, r, D.answer[i]]
        assert int(ans[0]) == x and int(ans[1]) == int(D.queries[i, 0])       # subject and group word of the query
        assert not D.hard[i, r] and (D.decoys[i, r] == -1).all()
        for c in torch.nonzero(D.hard[i]).flatten().tolist():
            swap, related = (D.docs[i, c, int(j)] for j in D.decoys[i, c])
            assert int(swap[3]) == x and int(swap[0]) != x                    # the subject in the object's role
            assert int(related[0]) == x
        others = [(c, p) for c in range(6) for p in range(5) if (c, p) != (r, int(D.answer[i]))
                  and not (D.hard[i, c] and p in D.decoys[i, c].tolist())]
        assert all(x not in D.docs[i, c, p, [0, 3]].tolist() for c, p in others)   # nothing else mentions the subject
    again = doc_ranking(30, candidates=6, passages=5, filler=2, entities=40, seed=0)
    assert torch.equal(again.docs, D.docs) and torch.equal(again.relevant, D.relevant)
    syn = doc_ranking(30, candidates=6, passages=5, filler=2, entities=40, p_synonym=0.0, seed=0)
    assert all(int(syn.docs[i, syn.relevant[i], syn.answer[i], 2]) == int(syn.queries[i, 1]) for i in range(30))


def test_passage_scores_broadcast_over_documents():
    torch.manual_seed(0)
    m = KernelPooling(20, d=8, kernels=5)
    s = passage_scores(m, torch.randint(1, 20, (2, 3)), torch.randint(1, 20, (2, 4, 5, 6)), batch=7)
    assert s.shape == (2, 4, 5)
    q, docs = torch.randint(1, 20, (2, 3)), torch.randint(1, 20, (2, 4, 5, 6))
    s = passage_scores(m, q, docs, batch=7)                      # chunks of 7 over 40 passages: the last one is short
    direct = torch.stack([torch.stack([m(q[i:i + 1], docs[i, j]) for j in range(4)]) for i in range(2)])
    assert torch.allclose(s, direct, atol=1e-6)
    s.sum().backward()                                           # written in place, still differentiable
    g = m.out.weight.grad.clone(); m.zero_grad()
    direct.sum().backward()
    assert torch.allclose(g, m.out.weight.grad, atol=1e-5) and g.abs().sum() > 0


def test_selection_and_cascade(D):
    torch.manual_seed(0)
    etm = CrossEncoder(len(D.vocab) + 1, d=16, layers=1, pool="max").eval()
    full, calls = cascade_scores(etm, D)
    assert full.shape == (30, 6) and calls == 30 * 6 * 5
    scores = torch.randn(30, 6, 5)
    keep = select_passages(scores, 2)
    assert keep.shape == (30, 6, 2) and torch.equal(scores.gather(-1, keep).min(-1).values, scores.topk(2).values[..., 1])
    cas, calls_k = cascade_scores(etm, D, keep)
    with torch.no_grad(): all_p = passage_scores(etm, D.queries, D.docs)
    assert calls_k == 30 * 6 * 2 and torch.allclose(cas, cascade_from(all_p, keep), atol=1e-5)
    assert torch.allclose(cascade_from(all_p, select_passages(torch.zeros(30, 6, 5), 5)), full, atol=1e-5)
    fk = first_k((30, 6), 2)
    assert fk.shape == (30, 6, 2) and (fk[..., 0] == 0).all() and (fk[..., 1] == 1).all()
    answer_first = torch.zeros(30, 6, 5); answer_first[torch.arange(30), D.relevant, D.answer] = 1
    assert recall_of_selection(select_passages(answer_first, 1), D) == 1.0
    perfect = torch.zeros(30, 6); perfect[torch.arange(30), D.relevant] = 1
    assert rank_metrics(perfect, D) == 1.0 and rank_metrics(-perfect, D) < 0.3


def test_trainers_learn_on_a_small_set():
    D = doc_ranking(200, candidates=6, passages=5, filler=2, entities=40, p_synonym=0.0, seed=1)
    V = len(D.vocab) + 1
    torch.manual_seed(0)
    etm = train_passage_ranker(CrossEncoder(V, 32, 1, pool="max"), D, 300, 32, 3e-3, seed=0)
    assert rank_metrics(cascade_scores(etm, D)[0], D) > 0.6          # random ranking of 6 candidates: about 0.4
    g = torch.Generator().manual_seed(0)
    qi, pos, neg = doc_pairs(D, 50, g, hard_only=True)
    assert (pos == D.relevant[qi]).all() and (neg != pos).all()
    has_hard = D.hard[qi].any(-1)
    assert D.hard[qi, neg][has_hard].all() and has_hard.any()          # hard negatives whenever the query has one
    q, docs = D.queries[qi], D.docs[qi, pos]
    with torch.no_grad(): t = passage_scores(etm, q, docs)
    esm = train_distilled_selector(KernelPooling(V, 16, 5), q, docs, t, 100, 16, 1e-2, seed=0)
    with torch.no_grad(): s = passage_scores(esm, q, docs)
    agree = (s.argmax(-1) == t.argmax(-1)).float().mean()
    assert agree > 0.5                                                  # it learned the teacher's favourite passage
    labels = train_doc_ranker(KernelPooling(V, 16, 5), D, 20, 8, 1e-3, seed=0)
    assert torch.isfinite(passage_scores(labels, q, docs)).all()
