"""What the offline assets cost on one thread, for planning chapter budgets: SmolLM2-135M first load (conversion from
GGUF into a fresh cache) and cached load, its scoring and greedy-decoding throughput (batch 1 and batched), MiniLM
encoding throughput, and the cached load time of each dataset. Results go to benchmarks/assets.json, which the assets
chapter (nbs/core/assets.ipynb) shows.  Usage: python benchmarks/bench_assets.py [--skip-first-load]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import torch

from minirepro.core import assets as A
from minirepro.core.lm import generate
from minirepro.core.results import atomic_write_json, provenance
from timing import cpu_name, median_s


def first_load_s():
    "Seconds to build SmolLM2's cache entry from the GGUF, in a fresh process with an empty cache."
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import time, torch; torch.set_num_threads(1); from minirepro.core.assets import smollm2; "
                "t = time.perf_counter(); smollm2(); print(time.perf_counter() - t)")
        env = {**os.environ, "MINIREPRO_CACHE": tmp, "HF_HUB_OFFLINE": "1"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent/"assets.json"))
    ap.add_argument("--skip-first-load", action="store_true", help="keep the recorded first-load time")
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = {}
    if not a.skip_first_load:
        m["SmolLM2 first load, s (GGUF -> cache)"] = first_load_s()
        print(f"SmolLM2 first load: {m['SmolLM2 first load, s (GGUF -> cache)']:.1f} s")
    model, tok = A.smollm2()
    m["SmolLM2 cached load, s"] = median_s(A.smollm2)
    text = " ".join(A.wikipedia()["train"]["text"])
    ids = tok(text, return_tensors="pt").input_ids[0]
    for B, T in [(1, 256), (4, 256)]:
        x = ids[: B * T].view(B, T)
        with torch.no_grad(): s = median_s(lambda: model(x))
        m[f"SmolLM2 scoring, tokens/s (batch {B} x {T})"] = B * T / s
    prompts = [tok.decode(ids[i * 40:(i + 1) * 40]) for i in range(8)]
    for B, new in [(1, 32), (8, 32)]:
        s = median_s(lambda: generate(model, tok, prompts[:B], max_new_tokens=new), repeats=2)
        m[f"SmolLM2 greedy decoding, new tokens/s (batch {B}, 40-token prompt)"] = B * new / s
    enc = A.minilm()
    sents = [s for t in A.wikipedia()["train"]["text"] for s in t.split(". ") if 5 <= len(s.split()) <= 30][:512]
    s = median_s(lambda: enc.encode(sents, batch_size=64), repeats=2)
    m["MiniLM encoding, texts/s (short sentences, batch 64)"] = len(sents) / s
    for name in ["mnist", "digits", "humaneval", "wikipedia", "lee", "easy_vqa"]:
        m[f"{name}() cached load, s"] = median_s(getattr(A, name))
    for k, v in m.items(): print(f"{k}: {v:,.3g}")
    prev = Path(a.out)
    if a.skip_first_load and prev.exists():
        old = json.loads(prev.read_text())["measurements"]
        m = {k: old[k] for k in old if k.startswith("SmolLM2 first load")} | m
    atomic_write_json(a.out, {"machine": f"{cpu_name()}, 1 torch thread, torch {torch.__version__}",
                              "measurements": m, "provenance": provenance()})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
