#!/usr/bin/env python3
"""PyTorch peer for the continued-prefill section of bench_kernels: each
row's new tokens (the last of its keys) attending causally to all of its
keys, 32 query heads over 8 kv heads at head dim 128, bf16. It calls the
flash attention op that torch.nn.attention.bias.causal_lower_right
dispatches to for this case (its causal mask is bottom-right aligned when
there are fewer queries than keys); the op takes the 8 kv heads as they are
(GQA in the kernel). Should this torch's op refuse them, the kv heads are
repeated to 32 before timing, and the JSON says so in "op". Timed like the
C++ side (warm-up, L2-evicting fill before each call, median).
--shapes BxCxN,... (rows, cached tokens, new tokens).
Writes JSON {"torch": VERSION, "op": NAME, "ms": {"b{B}_c{C}_n{N}": ms}}.
"""
import argparse
import json

import torch

from peer_kernels import median_ms

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def flash_lower_right(q, k, v):
    return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True, False, scale=HEAD_DIM ** -0.5)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    result = {"torch": torch.__version__, "op": "torch flash attention, bottom-right causal, native GQA", "ms": {}}
    for shape in a.shapes.split(","):
        batch, cached, fresh = (int(x) for x in shape.split("x"))
        q = torch.randn(batch, HEADS, fresh, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(batch, KV_HEADS, cached + fresh, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        with torch.no_grad():
            try:
                flash_lower_right(q, k, v)
            except RuntimeError:
                k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
                v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
                result["op"] = "torch flash attention, bottom-right causal, kv heads repeated to 32 before timing"
            ms = median_ms(lambda: flash_lower_right(q, k, v), flush, a.iters, a.warmup)
        result["ms"][f"b{batch}_c{cached}_n{fresh}"] = ms
        del q, k, v
        torch.cuda.empty_cache()
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
