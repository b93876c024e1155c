"Copyright traps' parts: the Markov language and its exact loss, the trap cells, the training stream, the attack."
import math

import numpy as np
import torch

from minirepro.core.lm import tiny_llama
from minirepro.papers.copyright_traps import (MarkovLanguage, make_cells, model_loss, perplexity_split_auc, ratio_auc,
                                              training_stream)

torch.set_num_threads(1)


def test_markov_language_is_a_sparse_stochastic_chain():
    lang = MarkovLanguage(32, successors=4, seed=0)
    assert torch.allclose(lang.P.sum(-1), torch.ones(32)) and ((lang.P > 0).sum(-1) <= 4).all()
    assert torch.equal(MarkovLanguage(32, 4, seed=0).P, lang.P) and not torch.equal(MarkovLanguage(32, 4, seed=1).P, lang.P)


def test_exact_loss_matches_the_sampling_distribution():
    lang = MarkovLanguage(16, successors=3, seed=1)
    x = lang.sample(4000, 20, torch.Generator().manual_seed(0))
    assert (lang.P[x[:, :-1], x[:, 1:]] > 0).all()          # only allowed transitions are sampled
    entropy = float(-(lang.P * lang.P.clamp_min(1e-30).log()).sum(-1).mean())
    # mean loss per token ~ (log V + 19 x entropy rate) / 20 under the chain's stationary mix
    assert abs(float(lang.loss(x).mean()) - (math.log(16) + 19 * entropy) / 20) < 0.15
    hot = lang.sample(2000, 20, torch.Generator().manual_seed(0), temperature=2.0)
    assert lang.loss(hot).mean() > lang.loss(x).mean()      # hotter traps are less likely under the chain


def test_cells_and_stream_hold_every_member_copy():
    lang = MarkovLanguage(32, 4, seed=0)
    g = torch.Generator().manual_seed(0)
    cells = make_cells(lang, [4, 6], [1, 3], traps=5, temp_lo=0.7, temp_hi=2.0, generator=g)
    assert set(cells) == {(4, 1), (4, 3), (6, 1), (6, 3)}
    assert all(m.shape == (5, L) and n.shape == (5, L) for (L, _), (m, n) in cells.items())
    docs = lang.sample(20, 16, g)
    w = training_stream(docs, cells, ctx=16, seed=0)
    total = 20 * 16 + sum(L * r * 5 for L, r in cells)
    assert w.shape == (total // 16, 16)
    flat = w.flatten().tolist()
    text = " " + " ".join(map(str, flat)) + " "
    member = cells[6, 3][0][0].tolist()
    assert text.count(" " + " ".join(map(str, member)) + " ") >= 2   # three copies, one may straddle the cut end


def test_model_loss_and_the_ratio_attack():
    lang = MarkovLanguage(32, 4, seed=0)
    g = torch.Generator().manual_seed(0)
    model = tiny_llama(32, d=16, layers=1, heads=2, ctx=16, seed=0)
    x = lang.sample(6, 12, g)
    loss = model_loss(model, x)
    assert loss.shape == (6,) and (loss > 0).all()
    auc = ratio_auc(model, lang, x[:3], x[3:])
    assert 0.0 <= auc <= 1.0 and np.isfinite(auc)


def test_sampling_among_successors_follows_the_tempered_chain():
    "Each next token is drawn with probability P[a, b]^(1/t), renormalised: the empirical transitions out of token 0 match."
    lang = MarkovLanguage(16, successors=4, seed=2)
    for t in (1.0, 0.7, 2.0):
        x = lang.sample(40000, 2, torch.Generator().manual_seed(0), temperature=t)
        nxt = x[x[:, 0] == 0, 1]
        want = torch.softmax(lang.logP[0] / t, -1)
        got = torch.bincount(nxt, minlength=16).float() / len(nxt)
        assert (got - want).abs().max() < 0.03, (t, got, want)
        assert (got[lang.P[0] == 0] == 0).all()


def test_perplexity_split_scores_each_half_on_its_own(monkeypatch):
    lang = MarkovLanguage(32, 4, seed=0)
    g = torch.Generator().manual_seed(0)
    mem = lang.sample(40, 10, g, torch.empty(40).uniform_(0.7, 2.0, generator=g))
    non = lang.sample(40, 10, g, torch.empty(40).uniform_(0.7, 2.0, generator=g))
    cut = float(lang.loss(torch.cat([mem, non])).median())
    members = {tuple(m.tolist()) for m in mem}

    def fake_loss(model, x):   # members of high chain loss are memorised (loss halved); everything else scores as the chain
        l = lang.loss(x)
        return torch.tensor([v / 2 if tuple(s.tolist()) in members and v > cut else v for s, v in zip(x, l.tolist())])
    import minirepro.papers.copyright_traps as ct
    monkeypatch.setattr(ct, "model_loss", fake_loss)
    low, high = perplexity_split_auc(None, lang, mem, non)
    assert high == 1.0 and low == 0.5
    assert 0.5 < ratio_auc(None, lang, mem, non) < 1.0
