import math

import numpy as np

import pytest
import torch

from minirepro.core.retrieval import (BM25, BagTower, KernelPooling, rerank, BiEncoder, WordVocab, cached_embeddings, exact_search,
                                      hard_negatives, info_nce, ir_metrics, pseudo_words, random_negatives,
                                      stdlib_code_search, synth_ir, to_qrels, to_run)

torch.set_num_threads(1)


def test_bm25_ranks_the_exact_match_first():
    docs = ["the cat sat on the mat", "dogs run in the park", "a cat and a dog play", "python sorts lists quickly"]
    idx, scores = BM25(docs).search(["running dogs", "sorting python lists", "mat"], k=2)
    assert idx[:, 0].tolist() == [1, 3, 0] and (scores[:, 0] > 0).all()  # stemming: running -> run, sorting -> sort
    assert BM25(docs, stemmer=None).search(["running"], k=1)[1][0, 0] == 0  # no stemmer: no match


def test_metrics_equal_hand_computed_values():
    ranked = [[3, 1, 2, 0], [0, 1, 2, 3], [2, 3, 0, 1]]
    qrels = [[1], [0, 2], [1]]
    m = ir_metrics(ranked, qrels, ("RR@10", "R@2", "AP", "nDCG@10"))
    rr = (1 / 2 + 1 / 1 + 1 / 4) / 3
    ap = ((1 / 2) + (1 + 2 / 3) / 2 + (1 / 4)) / 3
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q3 = 1 / math.log2(5)
    assert m["RR@10"] == pytest.approx(rr) and m["R@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["AP"] == pytest.approx(ap) and m["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + ndcg_q3) / 3)


def test_run_scores_keep_our_order():
    run = to_run([[5, 2, 9]], doc_ids=[f"d{i}" for i in range(10)])
    assert list(run["0"]) == ["d5", "d2", "d9"] and run["0"]["d5"] > run["0"]["d2"] > run["0"]["d9"]
    assert to_qrels([[1, 2]]) == {"0": {"1": 1, "2": 1}}


def test_exact_search_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    Q, D = torch.randn(37, 16, generator=g), torch.randn(500, 16, generator=g)
    s, i = exact_search(Q, D, k=7, batch_size=5)
    full = Q @ D.T
    assert torch.equal(i, full.argsort(dim=1, descending=True)[:, :7]) and torch.allclose(s, full.gather(1, i))
    assert exact_search(Q, D[:3], k=10)[1].shape == (37, 3)


def test_samplers_never_return_a_positive():
    g = torch.Generator().manual_seed(0)
    pos = [[0], [1, 2], [3]]
    neg = random_negatives(pos, n_docs=5, k=50, g=g)
    assert all(int(n) not in p for row, p in zip(neg, pos) for n in row)
    ranked = torch.tensor([[0, 4, 3, 2], [2, 1, 0, 4], [3, 3, 1, 0]])
    hard = hard_negatives(ranked, pos, k=2)
    assert hard.tolist() == [[4, 3], [0, 4], [1, 0]]
    assert all(int(n) not in p for row, p in zip(hard_negatives(ranked, pos, k=2, g=g), pos) for n in row)
    with pytest.raises(ValueError, match="non-positive candidates"):
        hard_negatives(ranked, pos, k=4)


def test_info_nce():
    q = torch.eye(3)
    assert info_nce(q, q * 20, temperature=1.0).item() < 1e-6           # positives far ahead of in-batch negatives
    assert info_nce(q, torch.zeros(3, 3), in_batch=True).item() == pytest.approx(math.log(3))
    neg = torch.zeros(3, 4, 3)
    assert info_nce(q, torch.zeros(3, 3), neg, in_batch=False).item() == pytest.approx(math.log(5))


def test_synth_ir_is_deterministic_and_hard():
    a, b, c = synth_ir(n_topics=4, docs_per_topic=20, n_train=50, n_test=20, seed=1), synth_ir(n_topics=4, docs_per_topic=20, n_train=50, n_test=20, seed=1), synth_ir(n_topics=4, docs_per_topic=20, n_train=50, n_test=20, seed=2)
    assert a.docs == b.docs and a.test_queries == b.test_queries and a.docs != c.docs
    assert len(a.docs) == 80 and len(a.train_queries) == 50 and all(len(r) == 1 for r in a.test_qrels)
    assert len(set(pseudo_words(500, __import__("random").Random(0)))) == 500
    # documents of a topic share its words: the query's topic words match many documents
    topic = a.meta["topic_of"]
    assert sum(topic[d] == topic[a.test_qrels[0][0]] for d in range(80)) == 20


def test_stdlib_corpus_is_deterministic_and_well_formed(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_CACHE", str(tmp_path))
    a = stdlib_code_search(n_test=200, seed=0)
    b = stdlib_code_search(n_test=200, seed=0)  # from the cache
    assert a.docs == b.docs and a.test_queries == b.test_queries and len(list(tmp_path.glob("stdlib-*.json"))) == 1
    assert len(a.docs) > 2000 and len(a.test_queries) == 200 and len(set(a.doc_ids)) == len(a.doc_ids)
    assert a.meta["python"].count(".") == 2
    assert len(set(a.test_queries) | set(a.train_queries)) == len(a.docs)  # one unambiguous query per function
    i = a.test_qrels[0][0]
    assert a.docs[i].lstrip().startswith(("def ", "async def ", "@")) and a.test_queries[0] not in a.docs[i]


def test_bag_biencoder_learns_to_retrieve():
    S = synth_ir(n_topics=4, docs_per_topic=25, n_train=800, n_test=100, seed=0)
    torch.manual_seed(0)
    enc = BiEncoder(BagTower(WordVocab(S.docs + S.train_queries), d=32))
    before = ir_metrics(exact_search(enc.encode_queries(S.test_queries).detach(), enc.index(S.docs), 10)[1], S.test_qrels)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for step in range(150):
        b = torch.randint(0, len(S.train_queries), (32,), generator=g).tolist()
        q = enc.encode_queries([S.train_queries[i] for i in b])
        pos = enc.encode_docs([S.docs[S.train_qrels[i][0]] for i in b])
        loss = info_nce(q, pos, temperature=0.1)
        opt.zero_grad(); loss.backward(); opt.step()
    after = ir_metrics(exact_search(enc.encode_queries(S.test_queries).detach(), enc.index(S.docs), 10)[1], S.test_qrels)
    assert after["RR@10"] > before["RR@10"] + 0.2  # 0.13 untrained -> 0.39 after 150 steps (BM25: 0.64)


def test_embedding_cache(tmp_path):
    calls = []
    def enc(texts):
        calls.append(len(texts)); return torch.arange(len(texts), dtype=torch.float)[:, None]
    a = cached_embeddings("m/x", ["a", "b"], enc, folder=tmp_path)
    b = cached_embeddings("m/x", ["a", "b"], enc, folder=tmp_path)
    c = cached_embeddings("m/x", ["a", "c"], enc, folder=tmp_path)
    assert torch.equal(a, b) and calls == [2, 2] and len(list(tmp_path.iterdir())) == 2


def test_lambda_rr_loss_weights_by_reciprocal_rank_change():
    from minirepro.core.retrieval import lambda_rr_loss
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]], requires_grad=True)
    loss = lambda_rr_loss(scores, torch.tensor([0]), torch.tensor([[1, 3]]))
    expected = (1 - 1 / 2) * math.log1p(math.exp(-1)) + (1 - 1 / 4) * math.log1p(math.exp(-3))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert scores.grad[0, 0] < 0 and scores.grad[0, 1] > 0 and scores.grad[0, 2] == 0


def test_train_biencoder_checks_its_arguments_and_adore_keeps_the_index():
    from minirepro.core.retrieval import evaluate_biencoder, train_biencoder
    S = synth_ir(n_topics=3, docs_per_topic=20, n_train=300, n_test=60, seed=0)
    torch.manual_seed(0)
    enc = BiEncoder(BagTower(WordVocab(S.docs + S.train_queries), d=16))
    args = (enc, S.docs, S.train_queries, S.train_qrels, 5)
    with pytest.raises(ValueError, match="unknown negatives"): train_biencoder(*args, negatives="hardest")
    with pytest.raises(ValueError, match="need `hard`"): train_biencoder(*args, negatives="static")
    with pytest.raises(ValueError, match="fixed_docs"): train_biencoder(*args, lambda_rr=True)
    D = enc.index(S.docs).clone()
    before = evaluate_biencoder(enc, S.docs, S.train_queries, S.train_qrels, D=D)
    train_biencoder(enc, S.docs, S.train_queries, S.train_qrels, 60, batch_size=32, lr=3e-2, negatives="dynamic",
                    n_neg=4, in_batch=False, fixed_docs=D, lambda_rr=True)
    after = evaluate_biencoder(enc, S.docs, S.train_queries, S.train_qrels, D=D)
    assert after["RR@10"] > before["RR@10"] + 0.1  # the query side learns against the frozen index
    for neg in ("none", "random", "dynamic"):  # every sampler runs with a trainable document side too
        assert len(train_biencoder(enc, S.docs, S.train_queries, S.train_qrels, 3, batch_size=8, negatives=neg, n_neg=2)) == 2


def test_minilm_tower_encodes_and_can_be_fine_tuned():
    from minirepro.core.assets import minilm
    from minirepro.core.retrieval import SentenceTower
    tower = SentenceTower(minilm(), max_length=64)
    with torch.no_grad():
        E = tower(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell today."])
    assert E.shape == (3, 384) and torch.allclose(E.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert E[0] @ E[1] > 0.6 > 0.2 > E[0] @ E[2]
    w = next(p for n, p in tower.named_parameters() if "word_embeddings" in n)
    before = w.detach().clone()
    loss = info_nce(tower(["eat food", "stocks fell"]), tower(["bread", "market"]), temperature=0.05)
    loss.backward(); torch.optim.SGD(tower.parameters(), lr=1e-2).step()
    assert not torch.equal(before, w.detach())


def test_graded_judgments():
    assert to_qrels([{1: 3, 2: 1}, [0]]) == {"0": {"1": 3, "2": 1}, "1": {"0": 1}}
    ranked = [[2, 1, 0], [0, 1, 2]]
    m = ir_metrics(ranked, [{1: 3, 2: 1}, {0: 1}], ("RR@10", "RR(rel=3)@10", "nDCG@10"))
    assert m["RR@10"] == 1.0 and m["RR(rel=3)@10"] == (1 / 2 + 0) / 2   # query 2 has no grade-3 document
    ideal = 3 + 1 / math.log2(3)
    assert math.isclose(m["nDCG@10"], ((1 + 3 / math.log2(3)) / ideal + 1) / 2)


def test_bm25_scores_every_document_like_search():
    docs = ["a cat sat on the mat", "the dog ran", "cat cat dog", "birds sing"]
    bm = BM25(docs, stemmer=None, stopwords=None)
    s = bm.scores("cat dog")
    idx, top = bm.search(["cat dog"], k=4)
    assert s.shape == (4,) and s[3] == 0 and s[2] > s[0] > 0
    assert np.allclose(np.sort(s)[::-1], top[0]) and list(np.argsort(-s, kind="stable")[:2]) == list(idx[0][:2])


def test_kernel_pooling_counts_matches():
    torch.manual_seed(0)
    m = KernelPooling(20, d=8, kernels=5)
    assert m.mu.tolist()[0] == 1.0 and len(m.mu) == 5
    q = torch.tensor([[3, 4]])
    with torch.no_grad():
        m.out.weight.zero_(); m.out.weight[0, 0] = 1.0; m.out.bias.zero_()   # the exact-match kernel only
        exact = m(q, torch.tensor([[3, 9, 9]])); two = m(q, torch.tensor([[3, 4, 9]])); none = m(q, torch.tensor([[7, 8, 9]]))
    assert two > exact > none and torch.isclose(none, torch.zeros(1), atol=1e-3).all()
    assert m(torch.randint(1, 20, (2, 4, 3)), torch.randint(1, 20, (2, 4, 6))).shape == (2, 4)   # broadcast over leading dims
    padded = m(q, torch.tensor([[3, 4, 9, 0, 0]])); assert torch.isclose(padded, two)          # padding counts for nothing


def test_rerank_sorts_candidates_by_the_model_in_batches():
    scorer = lambda q, d: (q[:, :1] == d).float().sum(-1)          # how often the query's first token occurs
    queries, docs = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 1], [3, 0], [1, 0], [3, 3]])
    cands = [[1, 2, 0], [0, 3, 1]]
    for batch in (1, 4, 100):
        ranked = rerank(scorer, queries, docs, cands, batch=batch)
        assert ranked.tolist() == [[0, 2, 1], [3, 1, 0]]
    model = KernelPooling(10, d=4, kernels=3).train()
    rerank(model, queries, torch.randint(1, 10, (4, 3)), cands)
    assert model.training                                            # the model's mode is restored


def test_train_biencoder_runs_a_few_timed_steps_in_timing_mode(tmp_path, monkeypatch):
    import json
    from minirepro.core.repro import TIME_LOG_ENV, TIME_STEPS_ENV
    from minirepro.core.retrieval import train_biencoder
    S = synth_ir(n_topics=3, docs_per_topic=20, n_train=300, n_test=60, seed=0)
    enc = BiEncoder(BagTower(WordVocab(S.docs + S.train_queries), d=16))
    monkeypatch.setenv(TIME_STEPS_ENV, "5"); monkeypatch.setenv(TIME_LOG_ENV, str(tmp_path/"t.jsonl"))
    losses = train_biencoder(enc, S.docs, S.train_queries, S.train_qrels, 100_000, batch_size=8)
    line = json.loads((tmp_path/"t.jsonl").read_text())
    assert len(losses) == 1 and line["steps"] == 100_000 and line["batch"] == 8 and line["model"] == "BiEncoder"
