import math

import pytest
import torch

from minirepro.core.assets import gpt2_tokenizer
from minirepro.core.lm import (char_tokenizer, continuation_logprobs, generate, n_params, pad_batch,
                               sequence_logprobs, tiny_gpt, tiny_llama, token_logprobs, word_tokenizer)
from minirepro.core.train import sft_encode, train

torch.set_num_threads(1)
ALPHA = "0123456789+=$#ab"


@pytest.mark.parametrize("text", ["$123+456=579#", "", "ab#ba", "0"])
def test_char_tokenizer_round_trip(text):
    tok = char_tokenizer(ALPHA)
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.pad_token_id == 0 and tok.unk_token_id == 1 and tok.eos_token_id == 3 and len(tok) == 4 + len(ALPHA)


def test_char_tokenizer_unknown_and_padding():
    tok = char_tokenizer("ab")
    assert tok("axb")["input_ids"] == [4, tok.unk_token_id, 5]
    enc = tok(["a", "abab"], padding=True)
    assert enc["input_ids"][0] == [4, 0, 0, 0] and enc["attention_mask"][0] == [1, 0, 0, 0]


def test_word_tokenizer_round_trip():
    tok = word_tokenizer(["The cat sat on the mat.", "A dog sat."], min_count=1)
    ids = tok("the dog sat on the mat.")["input_ids"]
    assert tok.decode(ids) == "the dog sat on the mat." and tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(tok("the zebra")["input_ids"]) == ["the", "<unk>"]
    assert word_tokenizer(["a a a b"], min_count=2).convert_ids_to_tokens([4]) == ["a"] and len(word_tokenizer(["a a a b"], min_count=2)) == 5


def test_gpt2_tokenizer_matches_gpt2():
    tok = gpt2_tokenizer()
    assert tok("Hello world!")["input_ids"] == [15496, 995, 0]
    text = "Attention is an RNN, said nobody in 2017."
    assert tok.decode(tok(text)["input_ids"]) == text and len(tok) == 50257 and tok.eos_token_id == 50256


@pytest.mark.parametrize("factory", [tiny_llama, tiny_gpt])
def test_tiny_models_shape_and_seed(factory):
    tok = char_tokenizer(ALPHA)
    m = factory(len(tok), d=32, layers=2, heads=4, ctx=16, tok=tok, seed=3)
    assert m.config.num_hidden_layers == 2 and m.config.hidden_size == 32 and m.config.pad_token_id == tok.pad_token_id
    assert m(input_ids=torch.tensor([[4, 5, 6]])).logits.shape == (1, 3, len(tok))
    again = factory(len(tok), d=32, layers=2, heads=4, ctx=16, tok=tok, seed=3)
    assert torch.equal(m.get_input_embeddings().weight, again.get_input_embeddings().weight)
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight  # tied
    assert n_params(m) == n_params(m, trainable_only=False) > 0


def test_tiny_gpt_has_learned_positions_and_gpt2_gelu():
    tok = char_tokenizer(ALPHA)
    m = tiny_gpt(len(tok), d=32, layers=2, heads=4, ctx=16, tok=tok, seed=3)
    # learned absolute positions: the same tokens at other positions give other outputs
    ids = torch.tensor([[4, 5, 6]])
    a = m(input_ids=ids).logits[0, -1]
    b = m(input_ids=ids, position_ids=torch.tensor([[3, 4, 5]])).logits[0, -1]
    assert m.transformer.wpe.weight.shape == (16, 32) and not torch.allclose(a, b)
    assert tiny_gpt(len(tok), d=32, ctx=16, dropout=0.2).config.resid_pdrop == 0.2
    # GPT-2's tanh-approximated GELU, from PyTorch's fused kernel
    x = torch.linspace(-4, 4, 101)
    assert torch.equal(m.transformer.h[0].mlp.act(x), torch.nn.functional.gelu(x, approximate="tanh"))


def _memorised(texts, steps=200, factory=tiny_llama):
    tok = char_tokenizer(ALPHA)
    prompts, answers = [t.split("=")[0] + "=" for t in texts], [t.split("=")[1] for t in texts]
    m = factory(len(tok), d=48, layers=2, heads=4, ctx=32, tok=tok, seed=0)
    h = train(m, sft_encode(tok, prompts, answers), steps=steps, batch_size=len(texts), lr=1e-2, seed=0, progress=False)
    return tok, m, prompts, answers, h


@pytest.mark.parametrize("factory", [tiny_llama, tiny_gpt])
def test_a_model_overfits_a_tiny_batch_and_generation_stops(factory):
    texts = ["$1+2=3#", "$10+5=15#", "$7+7=14#", "$99+1=100#"]
    tok, m, prompts, answers, h = _memorised(texts, factory=factory)
    assert h.losses[-1] < 0.02
    out = generate(m, tok, prompts, max_new_tokens=10, stop="#")
    assert out == [a.rstrip("#") for a in answers]  # the stop string ends the answer and is cut off
    assert generate(m, tok, prompts, max_new_tokens=1) == [a[0] for a in answers]  # max_new_tokens is respected
    # batching, left padding and prompt order do not change greedy answers (positions count from each prompt's start)
    assert generate(m, tok, prompts[::-1], max_new_tokens=10, stop="#", batch_size=1) == out[::-1]
    # sampling is seeded
    s1 = generate(m, tok, prompts, max_new_tokens=6, do_sample=True, temperature=2.0, seed=1)
    assert s1 == generate(m, tok, prompts, max_new_tokens=6, do_sample=True, temperature=2.0, seed=1)


def test_likelihoods_rank_the_memorised_answer_first():
    tok, m, prompts, answers, _ = _memorised(["$1+2=3#", "$10+5=15#"])
    lp = continuation_logprobs(m, tok, [prompts[0]] * 3, ["3#", "4#", "15#"])
    assert lp.argmax() == 0 and lp[0] > math.log(0.9) and torch.all(lp <= 0)
    mean = continuation_logprobs(m, tok, [prompts[1]], ["15#"], mean=True)
    assert torch.allclose(mean * 3, continuation_logprobs(m, tok, [prompts[1]], ["15#"]))


def test_token_logprobs_ignore_unlabelled_positions():
    logits = torch.randn(1, 4, 5)
    lp = token_logprobs(logits, torch.tensor([[-100, 2, -100, 3]]))
    assert lp[0, 1] == 0 and lp[0, 0] == torch.log_softmax(logits[0, 0], -1)[2]
    b = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert b["labels"].tolist() == [[1, 2, 3], [4, -100, -100]] and b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
