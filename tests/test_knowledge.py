"The synthetic knowledge base: determinism, biographies and their augmentations, questions, counts, injection."
import random

import pytest
import torch

from minirepro.core.knowledge import (TEMPLATES, VALUES, biography, inject, make_kb, question, value_accuracy,
                                      zipf_counts)
from minirepro.core.lm import tiny_llama, word_tokenizer
from minirepro.core.train import lm_encode, train

torch.set_num_threads(1)


def test_knowledge_base_is_deterministic_with_distinct_names():
    a, b = make_kb(300, seed=4), make_kb(300, seed=4)
    assert a.people == b.people and a.values == b.values
    assert len({p.name for p in a.people}) == 300 and a.people != make_kb(300, seed=5).people
    assert all(p[attr] in a.values[attr] for p in a.people for attr in a.attributes)


def test_values_come_from_the_lists_or_are_coined():
    kb = make_kb(50, attributes=("birth_city", "colour"), n_values=64, seed=0)
    assert len(set(kb.values["birth_city"])) == 64 and not set(kb.values["birth_city"]) & set(VALUES["birth_city"])
    assert make_kb(50, attributes=("birth_city",), seed=0).values["birth_city"] == VALUES["birth_city"]
    q, a = question(kb.people[0], "colour")
    assert kb.people[0].name in q and a == kb.people[0]["colour"] and "colour" in biography(kb.people[0])


def test_plain_biography_names_once_in_a_fixed_order():
    p = make_kb(10, attributes=("birth_city", "university", "employer", "major"), seed=1).people[3]
    bio = biography(p)
    assert bio.count(p.name) == 1 and bio.startswith(p.name) and bio == biography(p)
    assert [bio.index(v) for _, v in p.attrs] == sorted(bio.index(v) for _, v in p.attrs)


def test_augmented_biographies_vary_templates_and_order_and_repeat_the_name():
    p = make_kb(10, attributes=tuple(TEMPLATES), seed=2).people[0]
    rng = random.Random(0)
    bios = {biography(p, rng, n_templates=5, permute=True, full_name=True) for _ in range(20)}
    assert len(bios) == 20 and all(b.count(p.name) == len(p.attrs) for b in bios)
    assert all(all(v in b for _, v in p.attrs) for b in bios)
    with pytest.raises(ValueError, match="rng"): biography(p, permute=True)


def test_zipf_counts_and_injection():
    c = zipf_counts(100, exponent=1.0, max_count=32, seed=0)
    assert sorted(c, reverse=True)[:3] == [32, 16, 11] and min(c) == 1 and c == zipf_counts(100, 1.0, 32, 0)
    docs, where = inject(["a", "b", "c"], ["x", "y"], [2, 0], seed=1)
    assert sorted(docs) == ["a", "b", "c", "x", "x"] and len(where[0]) == 2 and where[1] == []
    assert all(docs[i] == "x" for i in where[0])
    with pytest.raises(ValueError, match="2 repetition counts for 1"): inject(["a"], ["x"], [1, 2])


def test_value_accuracy_rises_when_a_model_memorises():
    kb = make_kb(8, seed=0)
    texts = [biography(p) for p in kb.people]
    tok = word_tokenizer(texts, lowercase=False)
    values = {v for vs in kb.values.values() for v in vs if v in " ".join(texts)}
    model = tiny_llama(len(tok), d=32, layers=1, heads=2, ctx=32, tok=tok, seed=0)
    before = value_accuracy(model, tok, texts, values)
    train(model, lm_encode(tok, texts), 150, 8, 1e-2, progress=False)
    assert before < 0.5 and value_accuracy(model, tok, texts, values) == 1.0
