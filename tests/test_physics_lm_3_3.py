"Knowledge capacity's parts: bioD data with known entropy, the bits estimator, quantization and the junk-data sampler."
import math
from types import SimpleNamespace

import pytest
import torch

from minirepro.papers.physics_lm_3_3 import (DOMAINS, biod_tokenizer, encode, junk_arm, junk_sampler, knowledge_bits,
                                             make_biod, make_model, measure, quantize, train_width)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def biod():
    return make_biod(40, attributes=3, values=8, seed=0)


@pytest.fixture(scope="module")
def tok(biod):
    return biod_tokenizer(biod)


def test_biod_is_deterministic_and_has_known_entropy(biod):
    assert make_biod(40, attributes=3, values=8, seed=0).lines() == biod.lines()
    assert make_biod(40, attributes=3, values=8, seed=1).lines() != biod.lines()
    assert biod.entropy_bits() == 40 * 3 * 3
    assert len(biod.values) == 8 and len(set(biod.values)) == 8
    p = biod.kb.people[0]
    words = biod.line(p).split()
    assert words[:2] == [p.first, p.last] and words[2::2] == list(biod.attributes)
    assert all(w in biod.values for w in words[3::2])
    assert biod.line(p, "wikipedia").split() == ["wikipedia"] + words
    with pytest.raises(ValueError, match="attributes must be"): make_biod(10, attributes=9)


def test_encode_labels_only_the_values(biod, tok):
    data = encode(tok, biod.lines(), 3)
    ids, lab = data["input_ids"], data["labels"]
    assert ids.shape == (40, 8) and int((lab != -100).sum()) == 40 * 3
    values = set(tok.convert_tokens_to_ids(biod.values))
    assert all(int(t) in values for t in lab[lab != -100])
    assert all(int(t) not in values for t in ids[:, :2].flatten())   # names are context, never a target
    with pytest.raises(ValueError, match="same number of tokens"):
        encode(tok, [biod.lines()[0], "wikipedia " + biod.lines()[1]], 3)


class _Oracle(torch.nn.Module):
    "Logits that put `confidence` on the next token (or uniform ones): the estimator's two ends."
    def __init__(self, vocab, confidence):
        super().__init__()
        self.vocab, self.confidence, self.dummy = vocab, confidence, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, **kw):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        if self.confidence: logits[:, :-1].scatter_(2, input_ids[:, 1:, None], self.confidence)
        return SimpleNamespace(logits=logits)


def test_knowledge_bits_is_zero_for_uniform_guesses_and_full_for_a_perfect_model(biod, tok):
    data = encode(tok, biod.lines(), 3)
    V = len(tok)
    uniform = knowledge_bits(_Oracle(V, 0.0), data, n_values=V)    # uniform over V is the log2(V)-bit baseline
    assert abs(uniform) < 1e-3   # float32 logits
    perfect = knowledge_bits(_Oracle(V, 50.0), data, n_values=8)
    assert perfect == pytest.approx(biod.entropy_bits(), rel=1e-6)
    assert knowledge_bits(_Oracle(V, 50.0), data, n_values=8, batch_size=7) == pytest.approx(perfect)


def test_quantize_rounds_each_row_to_its_own_grid_and_leaves_the_model_alone():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5))
    with torch.no_grad(): m[0].weight[0] *= 100   # one big row must not coarsen the others
    before = [p.detach().clone() for p in m.parameters()]
    for bits in (8, 4):
        q = quantize(m, bits)
        top = 2 ** (bits - 1) - 1
        for p, w in zip(q.parameters(), before):
            rows = w.view(-1, w.shape[-1]) if w.dim() > 1 else w.view(1, -1)
            step = rows.abs().amax(1, keepdim=True).clamp_min(1e-12) / top
            err = (p.view_as(rows) - rows).abs()
            assert bool((err <= step / 2 + 1e-6).all())
            k = p.view_as(rows) / step   # integers within [-top, top]
            assert torch.allclose(k, k.round(), atol=1e-3) and bool((k.abs() <= top + 1e-3).all())
    assert all(torch.equal(p, w) for p, w in zip(m.parameters(), before))
    assert (quantize(m, 4)[0].weight - m[0].weight).abs().max() > (quantize(m, 8)[0].weight - m[0].weight).abs().max()


@pytest.mark.parametrize("domain", [False, True])
def test_junk_sampler_mixes_useful_lines_with_fresh_strangers(biod, tok, domain):
    useful = encode(tok, biod.lines(DOMAINS[0] if domain else None), 3)
    sample = junk_sampler(biod, tok, useful, junk_share=0.75, batch=8, domain=domain)
    g = torch.Generator().manual_seed(0)
    rows = {tuple(r.tolist()) for r in useful["input_ids"]}
    names = {(p.first, p.last) for p in biod.kb.people}
    seen = []
    for step in range(20):   # 20 batches x 2 useful lines = one full pass over the 40 useful people
        b = sample(step, g)
        assert b["input_ids"].shape == b["labels"].shape == (8, useful["input_ids"].shape[1])
        useful_part, junk_part = b["input_ids"][:2], b["input_ids"][2:]
        assert all(tuple(r.tolist()) in rows for r in useful_part)
        seen += [tuple(r.tolist()) for r in useful_part]
        for r in junk_part:
            words = tok.convert_ids_to_tokens(r.tolist())
            if domain: assert words[0] == DOMAINS[1]; words = words[1:]
            assert (words[0], words[1]) not in names and words[2::2] == list(biod.attributes)
            line = " ".join(([DOMAINS[1]] if domain else []) + words)
            assert tok(line)["input_ids"] == r.tolist()   # the same ids the tokenizer gives the text
        lab = b["labels"]
        assert int((lab != -100).sum()) == 8 * 3 and torch.equal(lab[lab != -100], b["input_ids"][lab != -100])
    assert sorted(seen) == sorted(rows)
    with pytest.raises(ValueError, match="no useful line"): junk_sampler(biod, tok, useful, 1.0, 8, domain)


def test_train_width_stores_some_knowledge(biod, tok):
    data = encode(tok, biod.lines(), 3)
    r = train_width(tok, data, 8, d=16, layers=1, head_dim=4, exposures=60, batch=20, lr=1e-2, seed=0)
    assert r["steps"] == 120 and r["params"] > r["params_non_embedding"] > 0
    assert 0.2 * biod.entropy_bits() < r["bits"] <= biod.entropy_bits()
    assert r["bits_per_param"] == pytest.approx(r["bits"] / r["params"])
    assert r["bits_int8"] > r["bits_int4"]
    fresh = measure(make_model(tok, 16, 1, 4, seed=0), data, 8)
    # an untrained model spreads its guesses over the whole vocabulary, not just the 8 values: below zero bits
    assert fresh["bits"] == pytest.approx(40 * 3 * (3 - math.log2(len(tok))), abs=0.05 * biod.entropy_bits())


def test_junk_arm_counts_only_the_useful_people(biod, tok):
    r = junk_arm(biod, tok, 8, d=8, layers=1, head_dim=4, exposures=4, junk_share=0.75, batch=8, lr=1e-2, domain=True)
    assert r["domain"] is True and r["steps"] == 4 * 40 // 2 and r["params"] > 0
    assert r["bits"] <= biod.entropy_bits() and r["train_s"] >= 0
