#!/usr/bin/env python3
"""PyTorch peer for the LoRA section of bench_kernels (bf16, same shapes as
bench_lora.cpp), timed like the C++ side (warm-up, L2-evicting fill before
each timed call, median):
  train  F.linear(x, W) + lora_B(lora_A(x)) * s at 8192 tokens, rank 16, for
         4096 -> 4096 ("q") and 4096 -> 14336 ("up"): forward, and forward +
         backward for x, A and B (W frozen)
  multi  rows of one batch on different adapters, 4096 -> 4096, rank 16:
         "decode" 256 rows scattered over 8 adapters, "prefill" 4096 rows in
         4 segments; a loop over adapters (gather rows, two matmuls, index_add_)
Writes JSON {"torch": VERSION, "train": {"q_fwd": ms, "q_fwdbwd": ms, ...},
"multi": {"decode": ms, "prefill": ms}}.
"""
import argparse
import json

import torch
import torch.nn.functional as F

from peer_kernels import median_ms

TOKENS, HIDDEN, INTER, RANK = 8192, 4096, 14336, 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dev, bf16 = torch.device("cuda"), torch.bfloat16
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    rand = lambda *s: (torch.rand(s, device=dev) * 2 - 1).to(bf16)

    def t(fn):
        return median_ms(fn, flush, a.iters, a.warmup)

    result = {"torch": torch.__version__, "train": {}, "multi": {}}
    for key, out in (("q", HIDDEN), ("up", INTER)):
        x = rand(TOKENS, HIDDEN).requires_grad_(True)
        w = rand(out, HIDDEN)
        la = rand(RANK, HIDDEN).requires_grad_(True)
        lb = rand(out, RANK).requires_grad_(True)
        dy = rand(TOKENS, out)

        def fwd():
            return F.linear(x, w) + F.linear(F.linear(x, la), lb) * 2.0

        def fwd_bwd():
            torch.autograd.grad(fwd(), (x, la, lb), dy)

        with torch.no_grad():
            result["train"][key + "_fwd"] = t(fwd)
        result["train"][key + "_fwdbwd"] = t(fwd_bwd)

    for key, rows, adapters, segments in (("decode", 256, 8, False), ("prefill", 4096, 4, True)):
        x, y = rand(rows, HIDDEN), rand(rows, HIDDEN)
        la, lb = rand(adapters, RANK, HIDDEN), rand(adapters, HIDDEN, RANK)
        ids = (torch.arange(rows, device=dev) * adapters // rows) if segments else torch.arange(rows, device=dev) % adapters
        groups = [(ids == i).nonzero().squeeze(1) for i in range(adapters)]

        def apply():
            for i, g in enumerate(groups):
                y.index_add_(0, g, (x[g] @ la[i].t() @ lb[i].t()) * 2.0)

        with torch.no_grad():
            result["multi"][key] = t(apply)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
