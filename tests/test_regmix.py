"RegMix's parts: the synthetic world, mixture sampling, proxy training, the regressions and the simulated best mixture."
import numpy as np
import pytest
import torch

from minirepro.core.lm import NGramLM, mean_lm_loss
from minirepro.papers.regmix import (HUMAN, NGramEnsemble, fit_regressors, make_world, mixture_sampler, proxy_mixtures,
                                     regmix_mixture, train_on_mixture, train_proxies)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    domains, web = make_world(0)
    return domains, web, domains.corpus(200, 16, torch.Generator().manual_seed(0))


def test_world_has_six_domains_and_a_target_that_overlaps_three(world):
    domains, web, corpus = world
    assert domains.names == list(HUMAN) and abs(sum(HUMAN.values()) - 1) < 1e-9
    assert corpus.shape == (6, 200, 16) and int(corpus.max()) < domains.vocab_size
    t = set(web.sample(500, 16, torch.Generator().manual_seed(1)).flatten().tolist())
    for name in ("prose", "facts", "code"): assert set(domains.domains[name].tokens) & t
    assert not set(domains.domains["numbers"].tokens) & t   # counting is useless for the target
    a, _ = make_world(1)
    assert not torch.equal(a.domains["prose"].probs, domains.domains["prose"].probs)   # the world depends on the seed


def test_mixture_sampler_draws_only_the_weighted_domains(world):
    domains, _, corpus = world
    w = np.zeros(6); w[domains.names.index("code")] = 1.0
    b = mixture_sampler(domains, corpus, w, batch=8)(0, torch.Generator().manual_seed(0))
    assert set(b) == {"input_ids"} and b["input_ids"].shape == (8, 16)
    assert set(b["input_ids"].flatten().tolist()) <= set(domains.domains["code"].tokens)


def test_proxy_mixtures_cycle_through_the_scales():
    m = proxy_mixtures(40, [0.5, 0.3, 0.2], [0.1, 100.0], seed=0)
    assert m.shape == (40, 3) and np.allclose(m.sum(1), 1)
    assert m[1::2].std(0).max() < 0.05 < m[0::2].std(0).max()   # large scale: close to the shares; small: spread out
    assert np.array_equal(m, proxy_mixtures(40, [0.5, 0.3, 0.2], [0.1, 100.0], seed=0))


def test_training_on_the_target_domains_beats_training_on_noise(world):
    domains, web, corpus = world
    ids = web.sample(64, 16, torch.Generator().manual_seed(2))
    good = np.array([HUMAN[k] if k in ("prose", "facts", "code") else 0.0 for k in domains.names])
    bad = np.array([1.0 if k == "numbers" else 0.0 for k in domains.names])
    kw = dict(steps=60, batch=16, lr=1e-2, size={"context": 3, "d": 16, "hidden": 32}, seed=0)
    assert train_on_mixture(domains, corpus, good, ids, "ngram", **kw) < train_on_mixture(domains, corpus, bad, ids, "ngram", **kw)
    loss = train_on_mixture(domains, corpus, good, ids, "llama", steps=5, batch=8, lr=1e-3,
                            size={"d": 16, "layers": 1, "heads": 2}, seed=0)
    assert 0 < loss < 2 * np.log(domains.vocab_size)


def test_regression_finds_the_minimum_of_a_known_surface():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(3), size=300)
    best = np.array([0.6, 0.3, 0.1])
    y = ((X - best) ** 2).sum(1)
    regs = fit_regressors(X, y)
    assert set(regs) == {"linear", "gbm"}
    mix = regmix_mixture(regs["gbm"], [1 / 3] * 3, [1.0, 3.0], n=6000, top_k=50, seed=0)
    assert np.allclose(mix.sum(), 1) and np.abs(mix - best).max() < 0.12


def test_target_loss_of_a_model_that_knows_nothing_is_log_vocab(world):
    domains, web, _ = world
    m = NGramLM(domains.vocab_size, d=8, hidden=8, seed=0)
    with torch.no_grad():
        for p in m.net[-1].parameters(): p.zero_()   # uniform logits
    assert mean_lm_loss(m, web.sample(8, 16, torch.Generator()), batch_size=3) == pytest.approx(np.log(domains.vocab_size), rel=1e-5)


def test_ensemble_members_compute_what_separate_ngram_models_compute(world):
    domains, web, _ = world
    size = {"context": 3, "d": 8, "hidden": 16}
    ens = NGramEnsemble(domains.vocab_size, [3, 7], **size)
    ids = web.sample(10, 16, torch.Generator().manual_seed(4))
    for i, s in enumerate([3, 7]):
        m = NGramLM(domains.vocab_size, seed=s, **size)
        assert torch.allclose(ens(ids.expand(2, -1, -1))[i], m(ids), atol=1e-5)
        assert abs(ens.target_losses(ids, batch_size=4)[i] - mean_lm_loss(m, ids)) < 1e-5
    assert [k for k, p in ens.named_parameters() if ens.decays(k, p)] == ["emb", "w1", "w2"]   # no decay on biases


def test_ensemble_clips_each_member_on_its_own():
    ens = NGramEnsemble(20, [0, 1], context=2, d=4, hidden=8)
    for p in ens.parameters(): p.grad = torch.zeros_like(p)
    ens.w2.grad[0] = 10.0; ens.w2.grad[1] = 1e-3   # member 0 far above the limit, member 1 far below
    norm = ens.clip_grad_norm_(1.0)
    assert norm[0] > 1 > norm[1]
    assert abs(float(ens.w2.grad[0].norm()) - 1.0) < 1e-4 and torch.allclose(ens.w2.grad[1], torch.full_like(ens.w2.grad[1], 1e-3))


def test_training_proxies_together_equals_training_them_one_by_one(world):
    domains, web, corpus = world
    ids = web.sample(32, 16, torch.Generator().manual_seed(5))
    mixes = proxy_mixtures(3, list(HUMAN.values()), [0.1, 1.0, 5.0], seed=0)
    kw = dict(steps=40, batch=8, lr=1e-2, size={"context": 3, "d": 8, "hidden": 16})
    apart = [train_on_mixture(domains, corpus, w, ids, "ngram", seed=10 + i, **kw) for i, w in enumerate(mixes)]
    together = train_proxies(domains, corpus, mixes, ids, seeds=[10, 11, 12], **kw)
    assert np.allclose(together, apart, atol=1e-4) and len(set(np.round(apart, 3))) == 3
