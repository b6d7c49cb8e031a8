#!/usr/bin/env python3
"""PyTorch peer for the paged decode section of bench_kernels: one decode
step (one query token per sequence) of scaled_dot_product_attention with
enable_gqa=True, 32 query heads over 8 kv heads at head dim 128, bf16, on
K/V held contiguously as [batch, kv_heads, context, 128] (the layout SDPA
reads best; our kernel reads a paged cache), timed like the C++ side
(warm-up, L2-evicting fill before each call, median).
--shapes BxT,BxT,... Writes JSON {"torch": VERSION, "ms": {"b{B}_t{T}": ms}}.
"""
import argparse
import json

import torch
import torch.nn.functional as F

from peer_kernels import median_ms

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    result = {"torch": torch.__version__, "ms": {}}
    for shape in a.shapes.split(","):
        batch, context = (int(x) for x in shape.split("x"))
        q = torch.randn(batch, HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        with torch.no_grad():
            ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), flush, a.iters, a.warmup)
        result["ms"][f"b{batch}_t{context}"] = ms
        del q, k, v
        torch.cuda.empty_cache()
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
