import math

import pytest
import torch
import torch.nn.functional as F

from minirepro.core.train import train
from minirepro.papers.aaren import (AarenAttention, CausalSelfAttention, SeriesModel, Stack, associative_scan, combine,
                                    init_state, make_classification, make_forecasting, naive_prefix_attention,
                                    rnn_update, scan_attention, state_bytes, stream)

torch.set_num_threads(1)


def _scores(T, d, scale=1.0, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*batch, T, generator=g, dtype=torch.float64) * scale
    v = torch.randn(*batch, T, d, generator=g, dtype=torch.float64)
    return s, v


@pytest.mark.parametrize("T", [1, 2, 7, 64, 100])
def test_scan_equals_naive_attention_and_recurrence(T):
    s, v = _scores(T, 5, scale=3.0, seed=T, batch=(2, 3))
    o_scan, o_naive = scan_attention(s, v), naive_prefix_attention(s, v)
    state, outs = init_state((2, 3), 5, torch.float64), []
    for t in range(T):
        state, o = rnn_update(state, s[..., t], v[..., t, :]); outs.append(o)
    assert (o_scan - o_naive).abs().max() < 1e-12
    assert (torch.stack(outs, -2) - o_naive).abs().max() < 1e-12


def test_huge_scores_do_not_overflow():
    s, v = _scores(33, 4, scale=1e4)  # exp(1e4) overflows; the running max must keep it finite
    out = scan_attention(s, v)
    assert torch.isfinite(out).all() and (out - naive_prefix_attention(s, v)).abs().max() < 1e-9


def test_combine_is_associative():
    def leaf(seed):
        s, v = _scores(1, 3, 5.0, seed); return s[0], v[0], torch.ones((), dtype=torch.float64)
    a, b, c = leaf(1), leaf(2), leaf(3)
    left, right = combine(combine(a, b), c), combine(a, combine(b, c))
    assert all(torch.allclose(x, y, atol=1e-14) for x, y in zip(left, right))


def test_generic_scan_computes_prefix_sums():
    x = torch.arange(1.0, 11.0)
    (out,) = associative_scan(lambda a, b: (a[0] + b[0],), (x,), dim=0)
    assert torch.equal(out, torch.cumsum(x, 0))


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_stack_streams_the_parallel_outputs(kind):
    torch.manual_seed(0)
    st = Stack(kind, 16, 4, 2).double().eval()
    x = torch.randn(3, 20, 16, dtype=torch.float64)
    states, ys = st.init_state(3, torch.float64), []
    with torch.no_grad():
        for t in range(20):
            y, states = st.step(x[:, t], states); ys.append(y)
        assert (torch.stack(ys, 1) - st(x)).abs().max() < 1e-12


def test_aaren_outputs_are_causal():
    torch.manual_seed(0)
    layer = AarenAttention(8, 2).double()
    x = torch.randn(1, 10, 8, dtype=torch.float64)
    y1 = layer(x); x2 = x.clone(); x2[:, 6:] += 1.0
    assert torch.allclose(layer(x2)[:, :6], y1[:, :6]) and not torch.allclose(layer(x2)[:, 6:], y1[:, 6:])


def test_aaren_state_is_constant_and_kv_cache_grows():
    torch.manual_seed(0)
    x = torch.randn(1, 256, 16)
    a = stream(Stack("aaren", 16, 4, 2).eval(), x, checkpoints=(32, 256), time_last=8)
    t = stream(Stack("transformer", 16, 4, 2).eval(), x, checkpoints=(32, 256), time_last=8)
    assert a["bytes"][32] == a["bytes"][256] == 2 * 4 * (1 + 4 + 1) * 4  # layers x heads x (m, u[dh], w) x fp32
    assert t["bytes"][256] == 8 * t["bytes"][32] == 2 * 2 * 256 * 16 * 4  # layers x (K, V) x T x d x fp32
    assert a["ms_per_token"] > 0


def test_generators_are_deterministic_and_shaped():
    X1, Y1 = make_forecasting(16, 32, 8, torch.Generator().manual_seed(1))
    X2, Y2 = make_forecasting(16, 32, 8, torch.Generator().manual_seed(1))
    assert X1.shape == (16, 32) and Y1.shape == (16, 8) and torch.equal(X1, X2) and torch.equal(Y1, Y2)
    Xc, c = make_classification(400, 32, torch.Generator().manual_seed(1))
    assert Xc.shape == (400, 32) and set(c.tolist()) == {0, 1, 2, 3}


def test_series_model_learns_a_little():
    torch.manual_seed(0)
    X, Y = make_forecasting(512, 32, 8, torch.Generator().manual_seed(0))
    m = SeriesModel("aaren", 16, 2, 1, 32, 8)
    assert m(X[:4]).shape == (4, 8)
    with torch.no_grad(): before = F.mse_loss(m(X), Y).item()
    h = train(m, {"x": X, "y": Y}, 60, 64, 3e-3, schedule="onecycle", seed=0, progress=False,
              loss_fn=lambda m, b: F.mse_loss(m(b["x"]), b["y"]))
    with torch.no_grad(): after = F.mse_loss(m(X), Y).item()
    assert after < 0.7 * before and len(h.losses) == 7 and not m.training
