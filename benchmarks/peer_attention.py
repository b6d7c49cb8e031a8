#!/usr/bin/env python3
"""PyTorch peer for bench_attention: scaled_dot_product_attention restricted to
the flash backend, bf16, causal, with the same shapes, warm-up, L2 flush and
median as the C++ benchmark. Prints nothing on stdout; writes JSON

    {"torch": VERSION, "backend": "flash", "tflops": {"fwd_<seqlen>": x, "bwd_<seqlen>": y}}

Run by bench_attention on the GPU host (python3 with torch >= 2.3).
"""
import argparse
import json

import sys

import torch
import torch.nn.functional as F

from peer_kernels import median_ms

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:
    sys.exit(f"peer_attention.py: needs torch >= 2.3 with CUDA (found {torch.__version__})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total-tokens", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seqlens", type=int, nargs="+", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    result = {"torch": torch.__version__, "backend": "flash", "tflops": {}}
    for seqlen in args.seqlens:
        batch = max(1, args.total_tokens // seqlen)
        shape = (batch, args.heads, seqlen, args.head_dim)
        q, k, v = (torch.rand(shape, device=dev, dtype=torch.bfloat16) * 2 - 1 for _ in range(3))
        for t in (q, k, v):
            t.requires_grad_(True)
        dout = torch.rand(shape, device=dev, dtype=torch.bfloat16) * 2 - 1
        flops = 4.0 * batch * args.heads * seqlen * seqlen * args.head_dim / 2  # causal
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            with torch.no_grad():
                fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                flush, args.iters, args.warmup)
            state = {}

            def make_graph():
                state["out"] = F.scaled_dot_product_attention(q, k, v, is_causal=True)

            bwd = median_ms(lambda: torch.autograd.grad(state["out"], (q, k, v), dout),
                            flush, args.iters, args.warmup, before=make_graph)
        result["tflops"][f"fwd_{seqlen}"] = flops / (fwd * 1e-3) / 1e12
        result["tflops"][f"bwd_{seqlen}"] = 2.5 * flops / (bwd * 1e-3) / 1e12
        del q, k, v, dout, state
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
