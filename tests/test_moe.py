"""minirepro.core.moe: routing, capacity, the experts really used, the load-balancing loss and the dense split."""
import pytest
import torch

from minirepro.core.lm import tiny_llama
from minirepro.core.moe import MoEFFN, ROUTERS, k_schedule, moe_aux_loss, moe_layers, moeify, set_active_experts


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("k", [1, 3])
def test_every_token_gets_k_experts_with_weights_summing_to_one(router, k):
    torch.manual_seed(0)
    layer, x = MoEFFN(12, 6, experts=5, k=k, router=router, seed=1), torch.randn(40, 12)
    gates = layer.routing(x)
    assert ((gates > 0).sum(1) == k).all()
    assert torch.allclose(gates.sum(1), torch.ones(40))
    assert layer(x.reshape(4, 10, 12)).shape == (4, 10, 12)


def test_learned_router_picks_its_largest_logits_and_k_is_a_runtime_argument():
    torch.manual_seed(0)
    layer, x = MoEFFN(8, 4, experts=6, k=2, router="learned", seed=0), torch.randn(30, 8)
    logits = x @ layer.w_router
    gates = layer.routing(x)
    assert torch.equal((gates > 0), torch.zeros_like(gates, dtype=bool).scatter(1, logits.topk(2, -1).indices, True))
    top = logits.topk(2, -1).values
    assert torch.allclose(gates.topk(2, -1).values.sort(-1).values, torch.softmax(top, -1).sort(-1).values)
    assert ((layer.routing(x, k=5) > 0).sum(1) == 5).all()
    with pytest.raises(ValueError, match="between 1 and experts=6"): layer.routing(x, k=7)


def test_the_output_is_the_gated_sum_of_the_chosen_experts():
    torch.manual_seed(0)
    layer, x = MoEFFN(8, 4, experts=6, k=3, router="random", seed=0), torch.randn(20, 8)
    expected = torch.einsum("ne,ned->nd", layer.routing(x), layer.expert_outputs(x))
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_capacity_is_never_exceeded_and_overflow_tokens_lose_their_share():
    torch.manual_seed(0)
    layer = MoEFFN(8, 4, experts=4, k=1, router="learned", capacity=1.0, seed=0)
    with torch.no_grad(): layer.w_router.zero_(); layer.w_router[:, 0] = 1.0  # every token prefers expert 0
    x = torch.randn(32, 8).abs()  # positive features: expert 0 wins for every token
    gates = layer.routing(x)
    assert int((gates[:, 0] > 0).sum()) == 8  # ceil(1.0 * 32 * 1 / 4)
    assert ((gates > 0).sum(0) <= 8).all() and (gates[8:] == 0).all()  # first come, first served
    assert torch.allclose(layer(x)[8:], torch.zeros(24, 8))


def test_batch_router_uses_and_trains_only_its_k_experts():
    torch.manual_seed(0)
    layer, x = MoEFFN(8, 4, experts=6, k=2, router="batch", seed=0), torch.randn(50, 8)
    layer(x).pow(2).sum().backward()
    assert int((layer.load > 0).sum()) == 2 and set(layer.load.tolist()) == {0, 50}
    used = (layer.load > 0)
    grads = layer.w_up.grad.abs().sum((0, 2))
    assert (grads[used] > 0).all() and (grads[~used] == 0).all()


def test_random_router_is_frozen_and_learned_router_trains():
    frozen, learned = MoEFFN(8, 4, 4, 2, "random", seed=0), MoEFFN(8, 4, 4, 2, "learned", seed=0)
    assert "w_router" not in dict(frozen.named_parameters()) and "w_router" in dict(frozen.named_buffers())
    learned(torch.randn(10, 8)).sum().backward()
    assert learned.w_router.grad is not None and learned.w_router.grad.abs().sum() > 0


def test_load_balancing_loss_is_one_when_uniform_and_larger_when_collapsed():
    layer = MoEFFN(4, 2, experts=4, k=1, router="learned", seed=0)
    with torch.no_grad(): layer.w_router.copy_(torch.eye(4) * 5)
    x = torch.eye(4).repeat(5, 1)  # each expert wins one quarter of the tokens
    layer.train(); layer.routing(x)
    assert layer.aux_loss.item() == pytest.approx(1.0, abs=0.02)
    layer.routing(torch.eye(4)[[0]].repeat(20, 1))  # all tokens to expert 0
    assert layer.aux_loss.item() > 2.5
    layer.eval(); layer.routing(x)
    assert layer.aux_loss.item() == 0  # only while training


def test_unknown_router_and_bad_k_name_the_valid_values():
    with pytest.raises(ValueError, match="valid routers: learned, random, token, batch"): MoEFFN(4, 2, 4, router="hash")
    with pytest.raises(ValueError, match="between 1 and experts=4"): MoEFFN(4, 2, 4, k=0)


def test_moeify_splits_the_dense_block_exactly_and_sets_k_everywhere():
    dense = tiny_llama(20, d=16, layers=2, heads=2, ffn=64, seed=0)
    moe = moeify(tiny_llama(20, d=16, layers=2, heads=2, ffn=64, seed=0), experts=4, k=4, router="token", seed=0)
    assert len(moe_layers(moe)) == 2 and all(m.dispatch == "auto" for m in moe_layers(moe))
    assert all(m.dispatch == "dense" for m in moe_layers(moeify(tiny_llama(20, d=16, layers=2, heads=2, ffn=64), 4, dispatch="dense")))
    x = torch.randn(7, 16)
    for dl, ml in zip(dense.model.layers, moe_layers(moe)):
        assert torch.allclose(ml.expert_outputs(x).sum(1), dl.mlp(x), atol=1e-6)
        assert torch.allclose(ml(x) * 4, dl.mlp(x), atol=1e-6)  # k = E with weights 1/E: the dense block, scaled
    set_active_experts(moe, 2)
    assert all(m.k == 2 for m in moe_layers(moe))
    ids = torch.randint(20, (3, 9))
    moe.train(); moe(input_ids=ids, labels=ids)
    assert moe_aux_loss(moe).item() == 0  # no learned routers
    with pytest.raises(ValueError, match="no MoEFFN"): set_active_experts(dense, 2)
    with pytest.raises(ValueError, match="does not split"): moeify(tiny_llama(20, d=16, layers=1, heads=2, ffn=60), experts=8)


def test_k_schedule_grows_linearly_from_start_to_end():
    ks = [k_schedule(s, 70, 2, 8) for s in range(70)]
    assert ks[0] == 2 and ks[-1] == 8 and ks == sorted(ks) and all(ks.count(k) == 10 for k in range(2, 9))


def test_switch_gate_weighs_the_chosen_expert_by_its_probability_and_trains_the_router():
    torch.manual_seed(0)
    layer, x = MoEFFN(8, 4, experts=4, k=1, router="learned", gate="all", seed=0), torch.randn(16, 8)
    gates = layer.routing(x)
    probs = torch.softmax(x @ layer.w_router, -1)
    assert torch.allclose(gates.sum(1), probs.max(1).values) and (gates.sum(1) < 1).all()
    layer.eval(); layer(x).pow(2).sum().backward()  # eval: no load-balancing loss, so any gradient is the task's
    assert layer.w_router.grad.abs().sum() > 0
    chosen = MoEFFN(8, 4, experts=4, k=1, router="learned", seed=0).eval()
    chosen(x).pow(2).sum().backward()
    assert chosen.w_router.grad.abs().sum() == 0  # softmax over one chosen logit is constant
    with pytest.raises(ValueError, match="valid gates: chosen, all"): MoEFFN(4, 2, 4, gate="top")


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("k,capacity", [(1, None), (2, None), (1, 0.5)])
def test_sparse_and_dense_dispatch_compute_the_same_outputs_and_gradients(router, k, capacity):
    results = []
    for dispatch in ("dense", "sparse"):
        layer = MoEFFN(12, 6, experts=5, k=k, router=router, capacity=capacity, gate="all", seed=1, dispatch=dispatch)
        x = torch.randn(3, 40, 12, generator=torch.Generator().manual_seed(2), requires_grad=True)
        torch.manual_seed(3)  # the same random draws for the token and batch routers
        y = layer(x)
        y.pow(2).sum().backward()
        results.append([y, x.grad] + [p.grad for p in layer.parameters()] + [layer.load])
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-6)
    if capacity: assert int(results[0][-1].max()) <= 12  # ceil(0.5 * 120 / 5)


def test_auto_dispatch_is_sparse_on_a_cpu_only_when_few_pairs_are_chosen(monkeypatch):
    calls = []
    monkeypatch.setattr(MoEFFN, "_sparse", lambda self, x, g, c: calls.append("sparse") or x)
    monkeypatch.setattr(MoEFFN, "_dense", lambda self, x, g, u: calls.append("dense") or x)
    x = torch.randn(20, 8)
    for k in (1, 2, 3, 4): MoEFFN(8, 4, experts=4, k=k, router="token", seed=0)(x)
    MoEFFN(8, 4, experts=4, k=1, router="batch", seed=0)(x)  # one expert used by every token: dense over it
    MoEFFN(8, 4, experts=4, k=4, router="token", seed=0, dispatch="sparse")(x)
    assert calls == ["sparse", "dense", "dense", "dense", "dense", "sparse"]
    with pytest.raises(ValueError, match="valid: auto, dense, sparse"): MoEFFN(4, 2, 4, dispatch="scatter")
