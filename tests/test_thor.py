"THOR's parts: the synthetic language pair, BLEU, the arms and THOR's two-pass consistency loss."
import random

import pytest
import torch

from minirepro.core.lm import word_tokenizer
from minirepro.core.moe import moe_layers
from minirepro.core.repro import Preset
from minirepro.core.train import sft_encode
from minirepro.papers.thor import ARMS, SynthMT, arm_loss, bleu, make_arm, thor_loss, token_accuracy

torch.set_num_threads(1)
P = Preset(d=16, layers=1, heads=2, ffn=16, experts=4, max_len=10, alpha=2.0, aux=0.01)


def test_target_language_rules():
    mt = SynthMT(seed=0)
    lx, cls = mt.lexicon, mt.noun_class
    assert len(set(lx.values())) == len(lx)  # a one-to-one lexicon
    rng = random.Random(0)
    pairs = mt.pairs(300, rng)
    assert all(len(s.split()) <= 10 for s, _ in pairs) and pairs == mt.pairs(300, random.Random(0))
    for s, t in pairs:
        src, tgt = s.split(), t.split()
        assert len(tgt) == len(src) + 1 and tgt[-1] in ("ka", "ti")
        verb = next(w for w in src if w in mt.words["VT"] + mt.words["VI"])
        assert tgt[-2] == lx[verb]  # the verb goes last, before its suffix
        head = src[0] if src[0] in mt.words["NAME"] else next(w for w in src if w in mt.words["N"])
        assert tgt[-1] == ("ka" if cls[head] else "ti")  # agreement with the subject
    s, t = next((s, t) for s, t in pairs if s.split()[1] in mt.words["ADJ"])
    d, a, n = s.split()[:3]
    assert t.split()[:3] == [lx[d], lx[n], lx[a]]  # adjective after the noun
    assert len(SynthMT(seed=0, extra_words=40).lexicon) == len(lx) + 40


def test_bleu():
    assert bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(100)
    assert bleu(["x y z w"], ["a b c d"]) == 0
    full, short = bleu(["a b c d e f"], ["a b c d e f"]), bleu(["a b c d e"], ["a b c d e f"])
    assert short < full and short == pytest.approx(100 * 2.718281828 ** (1 - 6 / 5), rel=1e-6)  # brevity penalty only
    assert 0 < bleu(["a b c d x f"], ["a b c d e f"]) < 100


def _data():
    mt = SynthMT(seed=0)
    pairs = mt.pairs(16, random.Random(1))
    tok = word_tokenizer([x for p in pairs for x in p] + ["|"])
    return tok, sft_encode(tok, [s + " |" for s, _ in pairs], [t for _, t in pairs], add_eos=True)


def test_arms_have_the_same_active_width_and_the_right_routers():
    tok, enc = _data()
    dense = make_arm("dense", P, tok)
    assert dense.model.layers[0].mlp.up_proj.weight.shape[0] == 16
    for kind, router in (("switch", "learned"), ("random", "token"), ("thor", "batch")):
        layer = moe_layers(make_arm(kind, P, tok))[0]
        assert (layer.router, layer.k, layer.hidden, layer.experts) == (router, 1, 16, 4)
    assert moe_layers(make_arm("switch", P, tok))[0].gate == "all"
    with pytest.raises(ValueError, match="valid arms: dense, switch, random, thor"): make_arm("moe", P, tok)


def test_thor_loss_is_cross_entropy_when_both_passes_agree_and_larger_when_they_differ():
    tok, enc = _data()
    batch = {k: v[:8] for k, v in enc.items()}
    dense = make_arm("dense", P, tok, seed=0)
    ce = arm_loss("dense", P)(dense, batch)
    assert thor_loss(dense, batch, alpha=2.0).item() == pytest.approx(ce.item(), rel=1e-5)  # deterministic: KL = 0
    thor = make_arm("thor", P, tok, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in moe_layers(thor): layer.w_down.normal_(0, 0.5)  # make the experts disagree
        losses = [thor_loss(thor, batch, alpha=a).item() for a in (0.0, 5.0)]
    assert losses[1] > losses[0] + 1e-3
    assert 0 <= token_accuracy(thor, enc) <= 1 and sum(int(l > 0) for l in moe_layers(thor)[0].load) == 1
