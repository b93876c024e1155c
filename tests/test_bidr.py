"BiDR's parts: k-means, product quantisation with asymmetric search, soft quantisation, contrastive quantisation and the pipeline."
import numpy as np
import pytest
import torch

from minirepro.core.retrieval import BagTower, BiEncoder, WordVocab, exact_search
from minirepro.papers.bidr import (adc_search, kmeans, pipeline, pq_codebooks, pq_decode, pq_encode, soft_quantize,
                                   subvectors, train_contrastive_quantizer)

torch.set_num_threads(1)


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = centers.repeat(50, 1) + 0.1 * torch.randn(150, 2, generator=g)
    C = kmeans(X, 3, g=torch.Generator().manual_seed(1))
    assert torch.cdist(centers, C).min(1).values.max() < 0.2


def test_pq_round_trip_and_adc_matches_decoded_inner_products():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 8, generator=g)
    C = pq_codebooks(X, 4, 8, g)
    assert C.shape == (4, 8, 2) and subvectors(X, 4).shape == (300, 4, 2)
    codes = pq_encode(X, C)
    assert codes.shape == (300, 4) and codes.max() < 8
    R = pq_decode(codes, C)
    assert ((R - X) ** 2).sum() < (X ** 2).sum() * 0.5                  # reconstruction keeps most of the signal
    assert torch.equal(pq_encode(R, C), codes)                          # decoded vectors encode to the same codes
    Q = torch.randn(5, 8, generator=g)
    top = adc_search(Q, C, codes, 10)
    assert torch.equal(top, (Q @ R.T).topk(10, 1).indices)              # ADC = inner product with the reconstructions
    assert torch.equal(adc_search(Q, C, codes, 10, batch=2), top)        # queries in chunks: the same answer


def test_soft_quantisation_tends_to_hard():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 8, generator=g)
    C = pq_codebooks(X, 4, 8, g)
    hard = pq_decode(pq_encode(X, C), C)
    assert torch.allclose(soft_quantize(X, C, 1e-4), hard, atol=1e-4)
    warm = soft_quantize(X, C, 1e4)
    assert torch.allclose(warm, C.mean(1).reshape(1, -1).expand(50, -1), atol=0.05)   # very warm: the centroids' mean


def test_contrastive_quantizer_and_pipeline():
    docs = [f"w{i} w{i + 1} w{i + 2} topic{i % 5}" for i in range(60)]
    queries = [f"w{i + 1} topic{i % 5}" for i in range(60)]
    qrels = [[i] for i in range(60)]
    torch.manual_seed(0)
    enc = BiEncoder(BagTower(WordVocab(docs + queries), 16))
    D0 = enc.index(docs)
    C0 = pq_codebooks(D0, 4, 4, torch.Generator().manual_seed(0))
    C = train_contrastive_quantizer(enc, C0, docs, queries, qrels, 100, batch=16, lr=1e-2, tau=(1.0, 0.05), seed=0)
    assert C.shape == C0.shape and not torch.equal(C, C0)
    D = enc.index(docs); codes = pq_encode(D, C)
    with torch.no_grad(): Q = enc.encode_queries(queries)
    ranked, cand = pipeline(Q, C, codes, Q, D, candidates=20, k=10)
    assert cand.shape == (60, 20) and ranked.shape == (60, 10)
    assert all(set(ranked[i].tolist()) <= set(cand[i].tolist()) for i in range(60))   # re-ranking stays inside the candidates
    full = pipeline(Q, C, codes, Q, D, candidates=60, k=10)[0]
    assert torch.equal(full, exact_search(Q, D, 10)[1])                 # all documents as candidates = exact search
    hits = np.mean([i in cand[i].tolist() for i in range(60)])
    assert hits > 0.5                                                   # trained codes find most relevant documents
