"The MLM-U chapter's parts: the bidirectional mask, the masking loss, and both decoders."
import pytest
import torch

from minirepro.core.data import make_task
from minirepro.core.lm import tiny_llama
from minirepro.core.train import sft_encode
from minirepro.papers.mlm_u_mazes import (MASK, exact_paths, full_attention, maze_tokenizer, mlmu_decode, mlmu_loss,
                                          nt_decode, train_objective)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup3():
    task = make_task("maze", n=3, n_train=64, n_test=8, seed=0)
    tok = maze_tokenizer(3)
    data = sft_encode(tok, [e.prompt for e in task.train], [e.answer for e in task.train])
    model = tiny_llama(len(tok), d=32, layers=1, heads=2, ctx=64, tok=tok, seed=0).eval()
    return task, tok, data, model


def test_full_attention_lets_early_positions_see_later_tokens(setup3):
    _, tok, data, model = setup3
    ids, am = data["input_ids"][:1], data["attention_mask"][:1]
    other = ids.clone(); other[0, -1] = tok.convert_tokens_to_ids("c0") if ids[0, -1] != tok.convert_tokens_to_ids("c0") else tok.convert_tokens_to_ids("c1")
    with torch.no_grad():
        causal = [model(input_ids=x, attention_mask=am).logits[0, 0] for x in (ids, other)]
        full = [model(input_ids=x, attention_mask=full_attention(am)).logits[0, 0] for x in (ids, other)]
    assert torch.allclose(*causal) and not torch.allclose(*full)
    m = full_attention(torch.tensor([[1, 1, 0]]))
    assert m.shape == (1, 1, 3, 3) and m[0, 0].tolist() == [[True, True, False]] * 3


def test_mlmu_loss_hides_only_answer_slots_and_at_least_one(setup3, monkeypatch):
    _, tok, data, model = setup3
    mask_id, seen = tok.convert_tokens_to_ids(MASK), []
    orig = model.forward
    def spy(input_ids=None, **kw):
        seen.append(input_ids.clone()); return orig(input_ids=input_ids, **kw)
    monkeypatch.setattr(model, "forward", spy)
    batch = {k: v[:16] for k, v in data.items()}
    loss = mlmu_loss(mask_id, torch.Generator().manual_seed(0))(model, batch)
    hidden = seen[0] == mask_id
    slots = batch["labels"] != -100
    assert loss.ndim == 0 and loss.item() > 0
    assert not (hidden & ~slots).any() and hidden.any(-1).all()
    assert 0.2 < hidden.sum() / slots.sum() < 0.8  # U(0,1) rates: about half hidden on average


def test_decoders_fill_every_slot(setup3):
    task, tok, _, model = setup3
    prompts, answers = [e.prompt for e in task.test], [e.answer for e in task.test]
    out = mlmu_decode(model, tok, prompts, answers, batch_size=3)
    assert len(out) == len(prompts) and all(len(o.split()) == 10 and MASK not in o.split() for o in out)
    nt = nt_decode(model, tok, prompts, slots=10)
    assert len(nt) == len(prompts) and all(o.endswith("E") for o in nt)
    assert exact_paths(answers, task.params["mazes_test"]) == [True] * len(answers)


def test_both_objectives_fit_a_few_mazes_and_match_parameters():
    from minirepro.core.data import Task
    t = make_task("maze", n=3, n_train=12, n_test=1, seed=0)
    task = Task("maze", t.train, t.train, "", "E", {**t.params, "mazes_test": t.params["mazes_train"]}, t.parse)
    res = {o: train_objective(task, o, d=64, layers=2, heads=4, steps=600, batch=12, lr=3e-3, seed=0, eval_every=0,
                              eval_n=4) for o in ("nt", "mlmu")}  # scored on the training mazes: can each objective fit?
    assert res["nt"]["params"] == res["mlmu"]["params"]
    assert res["nt"]["acc"] >= 0.75 and res["mlmu"]["acc"] >= 0.75, {o: r["acc"] for o, r in res.items()}
    with pytest.raises(ValueError, match="valid: nt, mlmu"):
        train_objective(task, "ar", d=8, layers=1, heads=1, steps=1, batch=2, lr=1e-3, seed=0)
