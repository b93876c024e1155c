"Retrieval pre-training tasks' parts: the linked wiki, the ICT, BFS and WLP pairs, and the two pre-training loops."
import random

import numpy as np
import pytest
import torch

from minirepro.core.retrieval import BagTower, BiEncoder, WordVocab, evaluate_biencoder
from minirepro.papers.retrieval_pretraining_tasks import (TASKS, bfs_pairs, ict_pairs, linked_wiki, pretrain_masked,
                                                          pretrain_pairs, wlp_pairs)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def W():
    return linked_wiki(pages=20, seed=0)


def test_wiki_structure(W):
    assert len(W.passages) == 20 * 12 and all(len(ss) == 3 for ss in W.sentences)
    assert W.first_section.sum() == 20 * 3 and (W.links_to >= 0).sum() == 20 * 3
    assert not (W.first_section & (W.links_to >= 0)).any()                 # links live outside the first section
    assert all(W.links_to[i] != W.page[i] for i in np.nonzero(W.links_to >= 0)[0])
    assert all(len(q.split()) == 5 for q in W.questions) and all(len(s.split()) == 3 for ss in W.sentences for s in ss)
    again = linked_wiki(pages=20, seed=0)
    assert again.passages == W.passages and again.questions == W.questions
    assert linked_wiki(pages=20, seed=1).passages != W.passages


def test_forms_are_interchangeable_and_keys_unique():
    one = linked_wiki(pages=5, forms=1, seed=0)       # one surface form: the key words appear in the passage
    inside = [len(set(q.split()[2:]) & set(p.split())) for q, p in zip(one.questions, one.passages)]
    assert min(inside) >= 2 and np.mean([k == 3 for k in inside]) > 0.85   # (a key concept can miss all three sentences)
    keys = [frozenset(q.split()[2:]) for q in one.questions]
    assert len(set(keys)) == len(keys)                 # every passage its own key


def test_pair_builders(W):
    rng = random.Random(0)
    s, t = ict_pairs(W, rng, keep=0.0)
    assert len(s) == 3 * len(W.passages)
    assert s[0] == W.sentences[0][0] and t[0] == " ".join(W.sentences[0][1:])        # the sentence is removed
    s, t = ict_pairs(W, rng, keep=1.0)
    assert t[0] == W.passages[0]
    s, t = bfs_pairs(W, rng)
    firsts = {x for i in np.nonzero(W.first_section)[0] for x in W.sentences[i]}
    page_of_text = {p: W.page[i] for i, p in enumerate(W.passages)}
    page_of_first = {x: W.page[i] for i in np.nonzero(W.first_section)[0] for x in W.sentences[i]}
    assert len(s) == 20 * 9 and all(a in firsts and page_of_text[b] == page_of_first[a] for a, b in zip(s, t))
    s, t = wlp_pairs(W, rng, per_link=2)
    assert len(s) == 2 * 60
    link_of_text = {p: W.links_to[i] for i, p in enumerate(W.passages)}
    assert all(page_of_first[a] == link_of_text[b] for a, b in zip(s, t))          # A's first section -> a passage linking to A


def test_pretraining_loops_learn(W):
    vocab = WordVocab(W.passages + W.questions)
    torch.manual_seed(0)
    enc = BiEncoder(BagTower(vocab, 32))
    s, t = ict_pairs(W, random.Random(0), keep=1.0)
    before = evaluate_biencoder(enc, W.passages, s[:60], [[i // 3] for i in range(60)], k=10, metrics=("RR@10",))["RR@10"]
    losses = pretrain_pairs(enc, s, t, 150, 64, 3e-3, seed=0)
    after = evaluate_biencoder(enc, W.passages, s[:60], [[i // 3] for i in range(60)], k=10, metrics=("RR@10",))["RR@10"]
    assert losses[-1] < losses[0] and after >= before
    m = pretrain_masked(BiEncoder(BagTower(vocab, 32)), vocab, W.passages, 60, 32, 1e-2, seed=0)
    assert len(m) == 60 and np.mean(m[-10:]) < np.mean(m[:10])
    assert TASKS == ("none", "MLM", "ICT", "ICT+BFS+WLP")
