"SMoE-Dropout's parts: the regime corpus, the arms from one initialisation, the growing k and the frozen router."
import copy, math

import pytest
import torch

from minirepro.core.moe import moe_layers
from minirepro.core.repro import Preset
from minirepro.papers.smoe_dropout import ARMS, bits_per_char, chain_entropy_bits, make_arm, regime_corpus, train_arm

torch.set_num_threads(1)
P = Preset(vocab=16, regimes=3, length=16, train_chars=4096, val_chars=512, d=16, layers=1, heads=2, ffn=32, experts=4,
           k_start=1, k_end=4, learned_k=2, aux=0.01, steps=8, batch=8, lr=3e-3)


def test_regime_corpus_is_deterministic_and_below_uniform_entropy():
    a, b = regime_corpus(16, 3, 16, 4096, 512, seed=1), regime_corpus(16, 3, 16, 4096, 512, seed=1)
    assert a["train"].shape == (256, 16) and a["val"].shape == (32, 16) and torch.equal(a["train"], b["train"])
    assert int(a["train"].max()) < 16 and not torch.equal(a["train"], regime_corpus(16, 3, 16, 4096, 512, seed=2)["train"])
    assert 0 < chain_entropy_bits(a["sources"]) < math.log2(16) - 1  # sparse chains: far from uniform


def test_every_arm_starts_from_the_dense_weights():
    dense = make_arm("dense", P, seed=3)
    x = torch.randn(5, P.d)
    for kind in ("learned", "smoe-dropout", "frozen-all", "random-token"):
        m = make_arm(kind, P, seed=3)
        assert torch.equal(m.model.embed_tokens.weight, dense.model.embed_tokens.weight)
        layer = moe_layers(m)[0]
        assert torch.allclose(layer.expert_outputs(x).sum(1), dense.model.layers[0].mlp(x), atol=1e-6)
    assert moe_layers(make_arm("frozen-all", P))[0].k == 4 and moe_layers(make_arm("learned", P))[0].k == 2
    ids = torch.randint(16, (2, 8))
    assert make_arm("no-ffn", P)(input_ids=ids).logits.shape == (2, 8, 16)
    with pytest.raises(ValueError, match="valid arms: dense, learned"): make_arm("switch", P)


def test_smoe_dropout_grows_k_and_never_trains_its_router():
    data = regime_corpus(16, 3, 16, 4096, 512, seed=0)
    m = make_arm("smoe-dropout", P, seed=0)
    router, expert = moe_layers(m)[0].w_router.clone(), moe_layers(m)[0].w_up.detach().clone()
    assert moe_layers(m)[0].k == 1
    train_arm(m, "smoe-dropout", data["train"], P, seed=0)
    layer = moe_layers(m)[0]
    assert layer.k == 4 and torch.equal(layer.w_router, router) and not torch.equal(layer.w_up, expert)


def test_learned_router_trains_and_bits_per_char_reads_k():
    data = regime_corpus(16, 3, 16, 4096, 512, seed=0)
    m = make_arm("learned", P, seed=0)
    before = moe_layers(m)[0].w_router.detach().clone()
    train_arm(m, "learned", data["train"], P, seed=0)
    assert not torch.equal(moe_layers(m)[0].w_router, before) and moe_layers(m)[0].k == 2
    untrained = make_arm("smoe-dropout", P, seed=0)
    assert bits_per_char(untrained, data["val"], k=3) == pytest.approx(math.log2(16), abs=0.1)
    assert moe_layers(untrained)[0].k == 3
