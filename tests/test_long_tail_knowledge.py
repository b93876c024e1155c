"Long-tail knowledge's parts: the world with exact document counts, the corpus, removal, and the two ways of asking."
import pytest
import torch

from minirepro.core.knowledge import fact_sentence, question
from minirepro.core.lm import tiny_llama, word_tokenizer
from minirepro.papers.long_tail_knowledge import ask, by_bin, corpus, make_world, train_and_ask

torch.set_num_threads(1)
BINS = [1, 2, 4, 8]


@pytest.fixture(scope="module")
def world():
    return make_world(8, ["birth_city", "employer"], BINS, seed=0)


def test_counts_are_balanced_over_the_bins(world):
    counts = list(world.counts.values())
    assert len(counts) == 16 and all(counts.count(b) == 4 for b in BINS)
    assert make_world(8, ["birth_city", "employer"], BINS, seed=0).counts == world.counts


def test_each_test_fact_appears_in_exactly_its_count_of_documents(world):
    texts = corpus(world, BINS, templates=3, open_frac=0.0, seed=0)
    for p, a in world.test_facts():
        n = sum(p.name in t and p[a] in t and "?" not in t for t in texts)
        assert n == world.counts[p.name, a], (p.name, a)
        assert not any(t.startswith(question(p, a)[0]) for t in texts)   # test questions are never trained on


def test_removal_drops_every_document_of_the_removed_facts_only(world):
    p, a = world.test_facts()[0]
    q, b = world.test_facts()[1]
    full = corpus(world, BINS, open_frac=0.0, seed=0)
    cut = corpus(world, BINS, open_frac=0.0, removed={(p.name, a)}, seed=0)
    assert len(full) - len(cut) == world.counts[p.name, a]
    assert not any(p.name in t and p[a] in t for t in cut) and any(q.name in t and q[b] in t for t in cut)


def test_open_book_share(world):
    texts = corpus(world, BINS, open_frac=0.25, seed=0)
    assert abs(sum("?" in t and t.index("?") > t.index(".") for t in texts if "." in t) / len(texts) - 0.25) < 0.02


def test_asking_and_binning(world):
    facts = world.test_facts()
    tok = word_tokenizer(corpus(world, BINS, seed=0) + [" ".join(question(p, a)) + " " + fact_sentence(p, a) for p, a in facts],
                         lowercase=False)
    model = tiny_llama(len(tok), d=16, layers=1, heads=2, ctx=64, tok=tok, seed=0)
    closed, rag = ask(model, tok, facts)
    assert len(closed) == len(rag) == 16 and all(isinstance(x, bool) for x in closed + rag)
    assert by_bin([True, False, True, True], [1, 1, 2, 2], [1, 2]) == {1: 0.5, 2: 1.0}
    r = train_and_ask(corpus(world, BINS, seed=0), tok, facts, 16, 1, 2, 8, 1, 1e-3)
    assert {"closed", "rag", "params", "train_s"} <= set(r)


def test_a_larger_name_pool_shares_fewer_name_parts():
    from minirepro.core.knowledge import make_kb
    share = lambda kb: len(kb.people) - len({p.first for p in kb.people})
    assert share(make_kb(100, seed=0, name_pool=300)) < share(make_kb(100, seed=0))
    with pytest.raises(ValueError, match="cannot make 100 distinct people"): make_kb(100, name_pool=5)
