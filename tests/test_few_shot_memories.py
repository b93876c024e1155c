"Few-shot memories' parts: the stimuli, recognition by forced choice, cued recall, study passes and interference."
import copy, random

import pytest
import torch

from minirepro.core.data import PCFG, TOY_ENGLISH
from minirepro.core.lm import tiny_llama, word_tokenizer
from minirepro.papers.few_shot_memories import interfere, make_stimuli, probe, recall, recognition, study

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stim():
    return make_stimuli(8, 10, seed=0)


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer([" ".join(TOY_ENGLISH.words())])


def test_stimuli_are_distinct_sentences_of_one_length(stim):
    assert make_stimuli(8, 10, seed=0) == stim and make_stimuli(8, 10, seed=1) != stim
    everything = [s for k in stim for s in stim[k]]
    assert len(everything) == 32 == len(set(everything))
    words = set(TOY_ENGLISH.words())
    assert all(len(s.split()) == 10 and set(s.split()) <= words for s in everything)
    starts = {w for (w,), _ in TOY_ENGLISH.rules["DET"] + TOY_ENGLISH.rules["NAME"]}
    assert all(s.split()[0] in starts for s in stim["natural"] + stim["natural_foils"])   # grammatical openings


@pytest.fixture(scope="module")
def memorised(stim, tok):
    "A tiny Llama before and after many passes over the natural study sentences."
    model = tiny_llama(len(tok), d=64, layers=2, heads=4, ctx=32, tok=tok, seed=0)
    before = copy.deepcopy(model)
    seen = []
    rows = study(model, tok, stim["natural"], exposures=40, batch=4, lr=3e-3,
                 check=lambda m: seen.append(1) or {"n": len(seen)}, seed=0, check_at={1, 40})
    return before, model, rows


def test_study_checks_after_the_asked_passes(memorised):
    _, _, rows = memorised
    assert [r["exposures"] for r in rows] == [1, 40] and [r["n"] for r in rows] == [1, 2]


def test_recognition_and_recall_see_what_was_studied(memorised, stim, tok):
    before, after, _ = memorised
    assert recognition(after, tok, stim["natural"], stim["natural_foils"]) == 1.0
    assert recognition(after, tok, stim["natural_foils"], stim["natural"]) == 0.0   # the choice is symmetric
    r0, r1 = recall(before, tok, stim["natural"], 5), recall(after, tok, stim["natural"], 5)
    assert r0["exact"] == 0.0 and r1["exact"] >= 0.75 and r1["words"] >= r1["exact"]
    p = probe(after, tok, stim["natural"], stim["natural_foils"], 5)
    assert p == {"recognition": 1.0, "recall": r1["exact"], "recall_words": r1["words"]}


class _Out(dict):
    __getattr__ = dict.__getitem__


def test_recall_scores_words_in_place(tok):
    class Parrot(torch.nn.Module):
        "Always continues with the same word."
        def __init__(self):
            super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1)); self.word = tok.convert_tokens_to_ids("the")
        def forward(self, input_ids, **kw):
            logits = torch.zeros(*input_ids.shape, len(tok)); logits[..., self.word] = 1.0
            return _Out(logits=logits, past_key_values=None)
    items = ["a b c the the", "a b c the dog"]
    r = recall(Parrot(), tok, items, cue_words=3)
    assert r == {"exact": 0.5, "words": 0.75}


def test_interference_trains_on_new_sentences_only(tok, stim):
    grammar = PCFG({"S": [(("the", "dog", "slept"), 1.0), (("the", "cat", "slept"), 1.0)]})

    class Recorder:
        def __init__(self, tok): self.tok, self.seen = tok, []
        def __getattr__(self, k): return getattr(self.tok, k)
        def __call__(self, text, *a, **kw): self.seen.append(text); return self.tok(text, *a, **kw)
    rec = Recorder(tok)
    model = tiny_llama(len(tok), d=32, layers=1, heads=2, ctx=16, tok=tok, seed=0)
    rows = interfere(model, rec, updates=6, batch=2, lr=1e-3, probes=[1, 6], check=lambda m: {"ok": True}, words=3,
                     avoid=["the dog slept"], seed=0, grammar=grammar)
    assert [r["updates"] for r in rows] == [1, 6]
    assert rec.seen and set(rec.seen) == {"the cat slept"}
