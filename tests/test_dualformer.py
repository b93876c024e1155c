"Dualformer's parts: the four dropping levels, the arms' samplers, and the scoring of sampled responses."
import random

import pytest
import torch

import minirepro.papers.dualformer as df
from minirepro.core.data import astar, is_optimal_plan, maze_prompt, parse_plan
from minirepro.papers.dualformer import (ARMS, LEVEL_MIX, answer_text, arm_sampler, drop_trace, maze_set, maze_tokenizer,
                                         solve, summarize, train_arm)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mazes():
    return maze_set(4, 40, seed=0)


def test_levels_drop_nested_parts_of_the_trace(mazes):
    trace, plan = astar(max(mazes, key=lambda m: len(astar(m)[0])))
    rng = random.Random(0)
    full, costs0 = drop_trace(trace, 0, rng)
    assert full == trace and costs0
    creates = [e for e in trace if e[0] == "create"]
    assert drop_trace(trace, 1, rng) == (creates, True)          # no close clauses
    assert drop_trace(trace, 2, rng) == (creates, False)         # ... and no cost tokens
    kept, costs = drop_trace(trace, 3, rng)                      # ... and some create clauses
    assert not costs and all(e in creates for e in kept)
    assert drop_trace(trace, 4, rng) == ([], False)
    with pytest.raises(ValueError, match="valid: 0, 1, 2, 3, 4"): drop_trace(trace, 5, rng)


def test_level_three_drops_about_thirty_percent_of_creates(mazes):
    rng, kept, total = random.Random(1), 0, 0
    for m in mazes * 20:
        trace, _ = astar(m)
        kept += len(drop_trace(trace, 3, rng)[0]); total += sum(e[0] == "create" for e in trace)
    assert 0.65 < kept / total < 0.75


def test_answers_end_with_the_optimal_plan_at_every_level(mazes):
    for m in mazes[:10]:
        trace, plan = astar(m)
        for level in range(5):
            text = answer_text(trace, plan, level, random.Random(level))
            assert is_optimal_plan(m, parse_plan(text)) and text.split()[0] == ("plan" if level == 4 else "create")
            assert ("close" in text.split()) == (level == 0 and any(e[0] == "close" for e in trace))


def test_arms_are_probability_mixes():
    assert set(ARMS) == {"solution-only", "complete-trace", "dualformer"}
    assert all(abs(sum(mix) - 1) < 1e-9 and len(mix) == 5 for mix in ARMS.values()) and ARMS["dualformer"] == LEVEL_MIX


def test_samplers_render_each_arm_and_label_only_the_answer(mazes):
    tok = maze_tokenizer(4)
    words = lambda batch: {tok.convert_ids_to_tokens(i) for i in batch["input_ids"][batch["labels"] != -100].tolist()}
    sol = arm_sampler(tok, mazes, ARMS["solution-only"], 8)[0](0, torch.Generator().manual_seed(0))
    assert "create" not in words(sol) and "plan" in words(sol) and "wall" not in words(sol)
    comp, longest = arm_sampler(tok, mazes, ARMS["complete-trace"], 8)
    b = comp(0, torch.Generator().manual_seed(0))
    assert {"create", "close", "plan", tok.eos_token} <= words(b) and b["input_ids"].shape[1] <= longest + 1
    again = arm_sampler(tok, mazes, ARMS["complete-trace"], 8)[0](0, torch.Generator().manual_seed(0))
    assert torch.equal(b["input_ids"], again["input_ids"])   # deterministic from the generator


def test_solve_scores_responses(mazes, monkeypatch):
    tok = maze_tokenizer(4)
    test = mazes[:3]
    # a stand-in for the model: slow mode answers with A*'s own trace and plan, fast mode with a plan missing its goal
    def fake_generate(model, tok, prompts, **kw):
        out = []
        for p in prompts:
            m = next(m for m in test if p.startswith(maze_prompt(m, compact=True)))
            trace, plan = astar(m)
            out.append(answer_text(trace, plan, 0, None)[len("create "):] if p.endswith("create")
                       else answer_text(trace, plan[:-1], 4, None)[len("plan "):])
        return out
    monkeypatch.setattr(df, "generate", fake_generate)
    slow = summarize(solve(None, tok, test, "slow", samples=2))
    want = sum(len(answer_text(*astar(m), 0, None).split()) - len(astar(m)[1]) * 2 for m in test) / 3
    assert slow["optimal"] == 1.0 and slow["any_optimal"] == 1.0 and slow["no_trace"] == 0 and slow["trace_len"] == pytest.approx(want)
    fast = summarize(solve(None, tok, test, "fast", samples=2))
    assert fast["optimal"] == 0.0 and fast["trace_len"] == 0 and fast["no_trace"] == 1.0
    with pytest.raises(ValueError, match="valid: fast, slow, auto"): solve(None, tok, test, "medium")


def test_a_tiny_dualformer_trains_and_answers_in_every_mode(mazes):
    tok = maze_tokenizer(4)
    with pytest.raises(ValueError, match="valid: solution-only"): train_arm("searchformer", mazes, tok, 16, 1, 2, 2, 4, 1e-3, 0)
    model, hist = train_arm("dualformer", mazes, tok, 16, 1, 2, 3, 4, 1e-3, 0)
    assert len(hist.losses) >= 1 and hist.last_step == 2
    for mode in ("fast", "slow", "auto"):
        s = summarize(solve(model, tok, mazes[:2], mode, samples=2, max_new=12))
        assert set(s) == {"optimal", "any_optimal", "trace_len", "no_trace"}
