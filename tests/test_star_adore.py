import torch

from minirepro.core.retrieval import RetrievalSet, stdlib_code_search
from minirepro.papers.star_adore import code_search_arms

torch.set_num_threads(1)


def test_code_search_arms_run_end_to_end_on_a_small_slice():
    """The full-scale code-search comparison, on 60 functions with two steps per arm: every arm runs and is scored."""
    C = stdlib_code_search(seed=0)
    idx = list(range(60))
    queries = {i: (C.train_queries + C.test_queries)[k] for k, i in enumerate([q[0] for q in C.train_qrels + C.test_qrels]) if i < 60}
    small = RetrievalSet([C.docs[i] for i in idx], [C.doc_ids[i] for i in idx], [queries[i] for i in idx[:45]],
                         [[i] for i in idx[:45]], [queries[i] for i in idx[45:]], [[i] for i in idx[45:]], {"name": "slice"})
    out = code_search_arms(small, steps=2, batch=4, lr=2e-5, n_neg=2, max_length=32, seed=0, hard_depth=10)
    assert list(out) == ["BM25", "MiniLM zero-shot", "Rand-Neg", "STAR", "ADORE(zero-shot)", "ADORE(STAR)"]
    assert all(0 <= s["RR@10"] <= 1 and 0 <= s["R@100"] <= 1 for s in out.values())
    assert out["MiniLM zero-shot"]["RR@10"] > 0.2  # a pretrained encoder finds code from its docstring sentence
