"""Retrieval throughput on one thread, for planning chapter budgets: MiniLM encoding (texts/s) of short queries and
of code documents, exact inner-product search (queries/s over 10k documents), and BM25 (queries/s over the stdlib
code-search corpus). Results go to benchmarks/retrieval.json.  Usage: python benchmarks/bench_retrieval.py
"""
import argparse
from pathlib import Path

import torch

from minirepro.core.results import atomic_write_json, provenance
from minirepro.core.assets import minilm
from minirepro.core.retrieval import BM25, SentenceTower, exact_search, stdlib_code_search
from timing import median_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent/"retrieval.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    C = stdlib_code_search()
    out = {"threads": 1, "corpus": C.meta}
    model = minilm()
    for name, texts, max_len in [("queries", C.test_queries[:256], 128), ("code, 128 tokens", C.docs[:128], 128),
                                 ("code, 256 tokens", C.docs[:64], 256)]:
        model.max_seq_length = max_len
        s = median_s(lambda: model.encode(texts, batch_size=64, convert_to_tensor=True), repeats=2)
        out[f"minilm_texts_per_s[{name}]"] = len(texts) / s
        print(f"MiniLM, {name}: {len(texts) / s:,.0f} texts/s")
    g = torch.Generator().manual_seed(0)
    D, Q = torch.randn(10_000, 384, generator=g), torch.randn(1_000, 384, generator=g)
    s = median_s(lambda: exact_search(Q, D, k=100))
    out["exact_search_queries_per_s[10k docs, d=384, k=100]"] = len(Q) / s
    print(f"exact search, 10k x 384, top-100: {len(Q) / s:,.0f} queries/s")
    bm = BM25(C.docs)
    s = median_s(lambda: bm.search(C.test_queries, k=100))
    out[f"bm25_queries_per_s[{len(C.docs)} code docs, k=100]"] = len(C.test_queries) / s
    print(f"BM25 over {len(C.docs)} code documents, top-100: {len(C.test_queries) / s:,.0f} queries/s")
    out["provenance"] = provenance()
    atomic_write_json(a.out, out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
