#!/usr/bin/env python3
"""PyTorch peer for the AdamW section of bench_kernels: one optimizer step of
torch.optim.AdamW(fused=True) on the same parameter lists as bench_adamw.cpp
("full": 8 Llama-style layers at hidden 4096 / intermediate 14336, norms
without weight decay; "lora": rank-16 adapters of 32 layers on all seven
projections), timed like the C++ side (warm-up, L2-evicting fill before each
step, median). Modes: "fp32" (fp32 parameters and gradients) and
"bf16_master" (fused AdamW on fp32 masters with the bf16 gradients cast to
fp32, then a foreach copy of the masters into the bf16 parameters). Writes
JSON {"torch": VERSION, "full": {"fp32": ms, "bf16_master": ms}, "lora": {...}}.
"""
import argparse
import json

import torch

from peer_kernels import median_ms

HIDDEN, INTER, RANK = 4096, 14336, 16


def full_list():
    sizes, decay = [], []
    for _ in range(8):
        sizes += [HIDDEN * HIDDEN] * 4 + [HIDDEN * INTER] * 3 + [HIDDEN] * 2
        decay += [True] * 7 + [False] * 2
    return sizes, decay


def lora_list():
    sizes = []
    dims = [(HIDDEN, HIDDEN)] * 4 + [(HIDDEN, INTER)] * 2 + [(INTER, HIDDEN)]
    for _ in range(32):
        for d_in, d_out in dims:
            sizes += [RANK * d_in, d_out * RANK]
    return sizes, [True] * len(sizes)


def time_step(sizes, decay, bf16, flush, a):
    dev = torch.device("cuda")
    masters = [torch.zeros(n, device=dev) for n in sizes]
    for p in masters:
        p.requires_grad_(True)
    grads = [torch.randn(n, device=dev, dtype=torch.bfloat16 if bf16 else torch.float32) for n in sizes]
    params = [torch.empty(n, device=dev, dtype=torch.bfloat16) for n in sizes] if bf16 else None
    groups = [
        {"params": [p for p, d in zip(masters, decay) if d], "weight_decay": 0.01},
        {"params": [p for p, d in zip(masters, decay) if not d], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, fused=True)

    def step():
        for p, g in zip(masters, grads):
            # Setting .grad is bookkeeping; the cast is work torch must do.
            p.grad = g.float() if bf16 else g
        opt.step()
        if bf16:
            torch._foreach_copy_(params, masters)

    return median_ms(step, flush, a.iters, a.warmup)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    result = {"torch": torch.__version__}
    for name, make in (("full", full_list), ("lora", lora_list)):
        sizes, decay = make()
        result[name] = {}
        for bf16 in (False, True):
            result[name]["bf16_master" if bf16 else "fp32"] = time_step(sizes, decay, bf16, flush, a)
            torch.cuda.empty_cache()
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
