"""Training throughput of minirepro's trainer + LM against a minimal pure-PyTorch causal transformer.

One run on one machine, one torch thread: for each ci shape, the tokens/s of `minirepro.core.train.train` on a
`tiny_llama` (or a `tiny_gpt`) and of a hand-written model of identical shape and parameter count (RMSNorm, rotary
positions, SwiGLU; or NanoGPT's LayerNorm, learned positions, GELU; tied embeddings, PyTorch SDPA) in a bare loop
with the same optimizer, schedule and clipping; the machine's fp32 matmul peak; and each model's achieved FLOP/s as a
fraction of it. Arms alternate and the median of the repeats is
reported. Results go to benchmarks/results.json.  Usage: python benchmarks/bench_train.py [--quick]
"""
import argparse, json, math, platform, statistics, sys, time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minirepro.core.lm import n_params, tiny_gpt, tiny_llama
from minirepro.core.train import lr_at, train
from minirepro.core.results import atomic_write_json, provenance


# ---------- the reference: a minimal Llama-shaped causal LM in plain PyTorch ----------
class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__(); self.weight = nn.Parameter(torch.ones(d)); self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotary(T, dh, base=10000.0):
    inv = 1.0 / base ** (torch.arange(0, dh, 2).float() / dh)
    ang = torch.outer(torch.arange(T).float(), inv)
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin()


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Block(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up, self.down = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, d = x.shape
        h = self.norm1(x)
        q, k, v = (w(h).view(B, T, self.heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        x = x + self.wo(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class ReferenceLM(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx, ffn):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(d)
        cos, sin = rotary(ctx, d // heads)
        self.register_buffer("cos", cos, persistent=False); self.register_buffer("sin", sin, persistent=False)
        for p in self.parameters():
            if p.dim() >= 2: nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.embed(idx)
        for b in self.blocks: x = b(x, self.cos[:T], self.sin[:T])
        return self.norm(x) @ self.embed.weight.T  # tied output projection


# ---------- the other reference: NanoGPT (GPT-2's block: LayerNorm, learned positions, GELU, biases) ----------
class GPTBlock(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(d, -1))
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class ReferenceGPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx, ffn):
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(GPTBlock(d, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() >= 2: nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        x = self.embed(idx) + self.pos(torch.arange(idx.shape[1]))
        for b in self.blocks: x = b(x)
        return self.norm(x) @ self.embed.weight.T  # tied output projection


ARCHS = {"llama": (tiny_llama, ReferenceLM, 3), "gpt": (tiny_gpt, ReferenceGPT, 2)}  # factory, reference, FFN matrices


def reference_train(model, X, steps, batch, lr, seed, clip=1.0, wd=0.1):
    "The floor: the same AdamW groups, schedule and clipping as `train`, with nothing else in the loop."
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95),
                            fused=True)
    g = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(X), generator=g), 0
    t0 = time.perf_counter()
    for step in range(steps):
        if pos + batch > len(X): order, pos = torch.randperm(len(X), generator=g), 0
        x = X[order[pos:pos + batch]]; pos += batch
        for grp in opt.param_groups: grp["lr"] = lr * lr_at(step, steps)
        logits = model(x)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip); opt.step()
    return steps * batch * X.shape[1] / (time.perf_counter() - t0)


def minirepro_train(model, X, steps, batch, lr, seed):
    data = {"input_ids": X, "labels": X, "attention_mask": torch.ones_like(X)}
    h = train(model, data, steps, batch, lr, seed=seed, progress=False)
    return h.tokens_per_s


# ---------- FLOPs ----------
def matmul_peak(n=1024, reps=20):
    "Best fp32 GFLOP/s of an n x n matmul on this thread."
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3): a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def train_flops_per_token(vocab, d, layers, ctx, ffn, ffn_mats=3):
    "Forward FLOPs per token (2 per multiply-add of every weight, the tied output projection, causal attention), x3 for training."
    weights = layers * (4 * d * d + ffn_mats * d * ffn) + vocab * d
    attention = 2 * layers * ctx * d  # QK^T and AV over on average half the context, 2 FLOPs each
    return 3 * (2 * weights + attention)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).parent/"results.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    steps, repeats = (20, 1) if a.quick else (60, 3)
    # (name, architecture, vocab, d, layers, heads, ctx, batch): the ci shapes the book's chapters use
    shapes = [("char LM, width 128, ctx 64, batch 64", "llama", 32, 128, 2, 4, 64, 64),
              ("char LM, width 128, ctx 32, batch 128", "llama", 32, 128, 2, 4, 32, 128),
              ("char LM, width 64, ctx 16, batch 64", "llama", 21, 64, 2, 4, 16, 64),
              ("arithmetic chapter (NanoGPT), width 64, ctx 16, batch 64", "gpt", 22, 64, 2, 4, 16, 64)]
    peak = matmul_peak()
    print(f"fp32 matmul peak, 1 thread: {peak:.1f} GFLOP/s")
    rows = []
    for name, arch, V, d, L, H, T, B in shapes:
        ffn, (factory, reference, ffn_mats) = 4 * d, ARCHS[arch]
        X = torch.randint(0, V, (4096, T), generator=torch.Generator().manual_seed(0))
        ours, ref = [], []
        for r in range(repeats + 1):  # the first round warms up both arms and is discarded
            m = factory(V, d=d, layers=L, heads=H, ctx=T, ffn=ffn, seed=r)
            base = reference(V, d, L, H, T, ffn)
            assert n_params(m) == n_params(base), (n_params(m), n_params(base))
            o = minirepro_train(m, X, steps, B, 1e-3, seed=r); b = reference_train(base, X, steps, B, 1e-3, seed=r)
            if r: ours.append(o); ref.append(b)
        fpt = train_flops_per_token(V, d, L, T, ffn, ffn_mats)
        row = {"shape": name, "architecture": arch, "params": n_params(m), "batch": B, "ctx": T,
               "minirepro_tokens_per_s": statistics.median(ours), "reference_tokens_per_s": statistics.median(ref)}
        row["ratio"] = row["minirepro_tokens_per_s"] / row["reference_tokens_per_s"]
        row["minirepro_peak_fraction"] = row["minirepro_tokens_per_s"] * fpt / 1e9 / peak
        row["reference_peak_fraction"] = row["reference_tokens_per_s"] * fpt / 1e9 / peak
        rows.append(row)
        print(f"{name}: minirepro {row['minirepro_tokens_per_s']:,.0f} tok/s, reference {row['reference_tokens_per_s']:,.0f} tok/s, "
              f"ratio {row['ratio']:.3f}; {row['minirepro_peak_fraction']:.0%} vs {row['reference_peak_fraction']:.0%} of peak")
    out = {"matmul_peak_gflops": peak, "threads": 1, "steps": steps, "repeats": repeats, "shapes": rows,
           "min_ratio": min(r["ratio"] for r in rows), "provenance": provenance()}
    atomic_write_json(a.out, out)
    print(f"lowest ratio minirepro/reference: {out['min_ratio']:.3f} (goal >= 0.9); wrote {a.out}")


if __name__ == "__main__":
    main()
