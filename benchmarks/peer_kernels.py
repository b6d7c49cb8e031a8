#!/usr/bin/env python3
"""PyTorch peer for bench_kernels: RMSNorm, RoPE and SwiGLU forward/backward
in bf16 at the same shapes, timed like the C++ side (warm-up, an L2-evicting
fill before each timed call, median), once eager and once under torch.compile.
The ops are written as Hugging Face's Llama writes them (the engine matches
that numerics). Writes JSON

    {"torch": VERSION, "ms": {"eager": {"rmsnorm_fwd": ms, ...}, "compile": {...}},
     "ce": {"ms": ms, "extra_bytes": bytes}}

"ce" is the LM head + loss on full logits (h @ W.T, F.cross_entropy with
ignore_index, mean; backward to h only, the head frozen as in LoRA): its time
and the peak memory allocated beyond the inputs.

Run by bench_kernels on the GPU host (python3 with torch and CUDA).
"""
import argparse
import json

import torch
import torch.nn.functional as F


def median_ms(fn, flush, iters, warmup, before=None):
    """Median time of fn in ms, L2 flushed before each timed call; `before`
    (untimed) runs ahead of every call, warm-up included."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    times = []
    for i in range(iters):
        if before:
            before()
        flush.fill_(i & 0xFF)  # evict L2 like the C++ side
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    # The upper middle of the sorted times, as bench_util.h's median_ms takes it.
    return sorted(times)[len(times) // 2]


def rmsnorm(x, w, eps=1e-5):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def swiglu(gate, up):
    return F.silu(gate) * up


def full_logits_ce(a, flush, rand):
    h = rand(a.ce_tokens, a.hidden).requires_grad_(True)
    w = rand(a.vocab, a.hidden)
    t = (torch.arange(a.ce_tokens, device=h.device) * 7919) % a.vocab
    t[::5] = -100

    def step():
        loss = F.cross_entropy(h @ w.t(), t, ignore_index=-100)
        torch.autograd.grad(loss, h)

    ms = median_ms(step, flush, a.iters, a.warmup)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return {"ms": ms, "extra_bytes": torch.cuda.max_memory_allocated() - base}


def main():
    ap = argparse.ArgumentParser()
    for k, v in (("tokens", 16384), ("hidden", 4096), ("intermediate", 14336), ("heads", 32),
                 ("head-dim", 128), ("ce-tokens", 8192), ("vocab", 128256), ("iters", 20), ("warmup", 5)):
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dev, bf16 = torch.device("cuda"), torch.bfloat16
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    rand = lambda *s: (torch.rand(s, device=dev) * 2 - 1).to(bf16)

    x, w, dy = rand(a.tokens, a.hidden), rand(a.hidden), rand(a.tokens, a.hidden)
    gate, up, dout = (rand(a.tokens, a.intermediate) for _ in range(3))
    q = rand(a.tokens, a.heads, a.head_dim)
    pos = torch.arange(a.tokens, device=dev) % 8192
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, a.head_dim, 2, device=dev).float() / a.head_dim))
    freqs = pos.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), -1)[:, None, :]
    cos, sin = emb.cos().to(bf16), emb.sin().to(bf16)

    result = {"torch": torch.__version__, "ms": {}}
    for mode in ("eager", "compile"):
        wrap = (lambda f: torch.compile(f)) if mode == "compile" else (lambda f: f)
        norm_f, rope_f, swiglu_f = wrap(rmsnorm), wrap(rope), wrap(swiglu)
        xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        gg, ug = gate.clone().requires_grad_(True), up.clone().requires_grad_(True)

        def norm_bwd():
            y = norm_f(xg, wg)
            torch.autograd.grad(y, (xg, wg), dy)

        def swiglu_bwd():
            o = swiglu_f(gg, ug)
            torch.autograd.grad(o, (gg, ug), dout)

        with torch.no_grad():
            fwd = {
                "rmsnorm_fwd": median_ms(lambda: norm_f(x, w), flush, a.iters, a.warmup),
                "rope_fwd": median_ms(lambda: rope_f(q, cos, sin), flush, a.iters, a.warmup),
                "swiglu_fwd": median_ms(lambda: swiglu_f(gate, up), flush, a.iters, a.warmup),
            }
        # Backward timings include the forward recomputation autograd needs;
        # subtract the forward so the row is the backward alone.
        fwd_grad_norm = median_ms(lambda: norm_f(xg, wg), flush, a.iters, a.warmup)
        fwd_grad_swiglu = median_ms(lambda: swiglu_f(gg, ug), flush, a.iters, a.warmup)
        bwd = {
            "rmsnorm_bwd": max(1e-6, median_ms(norm_bwd, flush, a.iters, a.warmup) - fwd_grad_norm),
            "swiglu_bwd": max(1e-6, median_ms(swiglu_bwd, flush, a.iters, a.warmup) - fwd_grad_swiglu),
        }
        result["ms"][mode] = {**fwd, **bwd}
    result["ce"] = full_logits_ce(a, flush, rand)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
