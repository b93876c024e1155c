import copy, math

import pytest
import torch

from minirepro.core.lm import char_tokenizer, n_params, sequence_logprobs, tiny_llama
from minirepro.core.train import (add_lora, dpo_encode, dpo_loss, dpo_pair_loss, kd_loss, lm_encode, lr_at, pair_rows,
                                  sft_encode, to_device, train)

torch.set_num_threads(1)
TOK = char_tokenizer("0123456789+=$#")


def test_sft_loss_mask_counts_only_answer_tokens():
    b = sft_encode(TOK, ["$1+2=", "$10+20="], ["3#", "30#"])
    lab, ids = b["labels"], b["input_ids"]
    assert (lab != -100).sum(1).tolist() == [2, 3]
    assert lab[0].tolist() == [-100] * 5 + ids[0, 5:7].tolist() + [-100] * 3  # prompt and padding unlabelled
    assert TOK.decode([t for t in lab[1].tolist() if t != -100]) == "30#"
    assert (lm_encode(TOK, ["$1+2=3#"])["labels"] != -100).sum() == 7


def test_the_loss_ignores_the_prompt():
    """Changing only the prompt's labels cannot change the SFT loss; changing an answer token does."""
    m = tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=0)
    b = sft_encode(TOK, ["$1+2="], ["3#"])
    loss = lambda lab: m(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=lab).loss.item()
    full = loss(b["labels"])
    assert loss(b["labels"]) == full
    other = b["labels"].clone(); other[0, -1] = TOK.convert_tokens_to_ids("5")
    assert loss(other) != full


def test_schedules():
    assert lr_at(0, 100, "cosine", warmup=0.1) == pytest.approx(0.1) and lr_at(9, 100, "cosine", warmup=0.1) == 1.0
    assert lr_at(99, 100, "cosine", warmup=0.1, min_lr_ratio=0.1) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(50, 100, "constant") == 1.0 and lr_at(99, 100, "onecycle") < 0.01
    with pytest.raises(ValueError): lr_at(50, 100, "linear")


def test_train_is_deterministic_and_stops_early_on_target():
    data = sft_encode(TOK, [f"${i}+1=" for i in range(16)], [f"{i + 1}#" for i in range(16)])
    run = lambda **kw: train(tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=0), data, steps=30,
                             batch_size=4, lr=1e-2, seed=5, progress=False, **kw)
    assert run().losses == run().losses
    calls = []
    def eval_fn(model, step):
        calls.append(step); return {"score": step}
    h = run(eval_fn=eval_fn, eval_every=5, target=("score", 15))
    assert calls == [5, 10, 15] and h.stopped_early and h.last_step == 14 and h.evals[-1] == (15, {"score": 15})
    assert h.tokens > 0 and h.tokens_per_s > 0


def test_kd_loss():
    z = torch.randn(2, 3, 11)
    assert kd_loss(z, z).item() == pytest.approx(0.0, abs=1e-6)
    t = torch.randn(2, 3, 11)
    full = kd_loss(z, t, temperature=1.0)
    ref = torch.nn.functional.kl_div(torch.log_softmax(z, -1), torch.softmax(t, -1), reduction="batchmean") / 3
    assert full.item() == pytest.approx(ref.item(), rel=1e-5)
    mask = torch.tensor([[1, 0, 0], [0, 0, 0]])
    assert kd_loss(z, t, 1.0, mask).item() == pytest.approx(kd_loss(z[:1, :1], t[:1, :1], 1.0).item(), rel=1e-5)


def test_dpo_policy_equal_to_reference_gives_log2_and_zero_rewards():
    policy = tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=1)
    ref = copy.deepcopy(policy).eval()
    pairs = pair_rows(dpo_encode(TOK, ["$1+1=", "$2+2="], ["2#", "4#"], ["3#", "5#"]))
    assert pairs["input_ids"].shape[:2] == (2, 2)
    flat = {k: torch.cat([v[:, 0], v[:, 1]]) for k, v in pairs.items()}
    lp = sequence_logprobs(policy, flat["input_ids"], flat["labels"], flat["attention_mask"])
    loss, r_c, r_r = dpo_loss(lp[:2], lp[2:], lp[:2].detach(), lp[2:].detach())
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6) and torch.all(r_c == 0) and torch.all(r_r == 0)
    assert dpo_pair_loss(ref)(policy, pairs).item() == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_gradient_is_zero_when_chosen_equals_rejected():
    policy = tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=1)
    ref = tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=2)
    pairs = pair_rows(dpo_encode(TOK, ["$1+1="], ["2#"], ["2#"]))
    dpo_pair_loss(ref)(policy, pairs).backward()
    assert max(p.grad.abs().max().item() for p in policy.parameters() if p.grad is not None) < 1e-7


def test_dpo_training_prefers_the_chosen_answer():
    policy = tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=1)
    ref = copy.deepcopy(policy).eval()
    enc = dpo_encode(TOK, ["$1+1=", "$2+2="], ["2#", "4#"], ["3#", "5#"])
    train(policy, pair_rows(enc), steps=20, batch_size=2, lr=1e-2, loss_fn=dpo_pair_loss(ref, beta=0.5), progress=False)
    lp, lr = (sequence_logprobs(m, enc["input_ids"], enc["labels"], enc["attention_mask"]) for m in (policy, ref))
    margin = (lp - lr)[:2] - (lp - lr)[2:]
    assert torch.all(margin > 0)


def test_lora_trains_only_adapter_weights():
    model = add_lora(tiny_llama(len(TOK), d=16, layers=1, heads=2, ctx=16, tok=TOK, seed=0), r=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert 0 < n_params(model) < n_params(model, trainable_only=False)
    train(model, sft_encode(TOK, ["$1+1="], ["2#"]), steps=5, batch_size=1, lr=1e-2, progress=False)
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        if "lora_B" in n: assert changed, n           # adapters learn (B starts at zero, so it must move)
        elif "lora_" not in n: assert not changed, n  # everything else stays frozen


def test_train_draws_fresh_batches_from_a_sampler():
    "A function (step, generator) -> batch is called once per step with the seeded generator."
    torch.manual_seed(0)
    w_true = torch.randn(4, 1)
    model = torch.nn.Linear(4, 1)
    seen = []
    def sample(step, g):
        seen.append(step)
        x = torch.randn(32, 4, generator=g)
        return {"x": x, "y": x @ w_true}
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b["x"]), b["y"])
    hist = train(model, sample, steps=200, batch_size=32, lr=0.05, schedule="constant", weight_decay=0.0, seed=1,
                 loss_fn=loss, clip=0)
    assert seen == list(range(200)) and hist.losses[-1] < 0.01 * hist.losses[0]
    again = []
    train(torch.nn.Linear(4, 1), lambda s, g: again.append(torch.randn(2, generator=g)) or sample(s, g), steps=3,
          batch_size=32, lr=0.05, seed=1, loss_fn=loss)
    first = torch.randn(2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], first)   # the generator is seeded from `seed`


def test_to_device_keeps_values_and_dtypes():
    batch = {"input_ids": torch.arange(6).view(2, 3), "w": torch.rand(2)}
    out = to_device(batch, "cpu")
    assert set(out) == set(batch)
    assert all(torch.equal(out[k], batch[k]) and out[k].dtype == batch[k].dtype for k in batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_to_device_copies_to_a_gpu_without_changing_values():
    batch = {"input_ids": torch.randint(0, 100, (64, 128)), "labels": torch.randint(0, 100, (64, 128))}
    out = to_device(batch, "cuda")
    torch.cuda.synchronize()
    assert all(out[k].is_cuda and torch.equal(out[k].cpu(), batch[k]) for k in batch)


def test_a_model_may_choose_its_decayed_parameters_and_its_clipping():
    class Flat(torch.nn.Module):
        def __init__(self, hook):
            super().__init__()
            self.w, self.clipped = torch.nn.Parameter(torch.ones(2, 2)), []
            if hook:
                self.decays = lambda name, p: False
                self.clip_grad_norm_ = lambda max_norm: self.clipped.append(max_norm)
    data = lambda step, g: {"x": torch.zeros(1)}
    loss = lambda m, b: 0.0 * m.w.sum()   # no gradient: only weight decay moves w
    plain, hooked = Flat(False), Flat(True)
    for m in (plain, hooked): train(m, data, 3, 1, 0.1, weight_decay=0.5, clip=2.0, loss_fn=loss, progress=False)
    assert float(plain.w.detach().max()) < 1.0 and torch.equal(hooked.w.detach(), torch.ones(2, 2))
    assert hooked.clipped == [2.0] * 3
