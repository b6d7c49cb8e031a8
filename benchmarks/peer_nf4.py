#!/usr/bin/env python3
"""PyTorch peer for the NF4 section of bench_kernels: NF4 dequantisation to
bf16 written with eager indexing ops (and bitsandbytes' dequantize_4bit when
it is installed), and y = x W^T as eager dequantisation + bf16 matmul at 1
and 4096 rows. Timed like the C++ side (warm-up, L2-evicting fill before
each timed call, median). Writes JSON

    {"torch": VERSION, "eager": {"dequant": ms, "dequant_dq": ms, "matmul_1": ms, "matmul_4096": ms},
     "bitsandbytes": {"dequant": ms, "dequant_dq": ms}}   (the latter only if importable)
"""
import argparse
import json

import torch

from peer_kernels import median_ms

# Any ascending table serves for timing.
CODE = torch.linspace(-1, 1, 16)
DYNAMIC = torch.linspace(-1, 1, 256)


def dequant(packed, absmax, code, dtype=torch.bfloat16):
    idx = torch.stack((packed >> 4, packed & 15), -1).view(-1).long()
    return (code[idx].view(-1, 64) * absmax[:, None]).to(dtype)


def dequant_dq(packed, absmax_code, absmax_scale, offset, code, dynamic):
    absmax = (dynamic[absmax_code.long()].view(-1, 256) * absmax_scale[:, None]).view(-1) + offset
    return dequant(packed, absmax[: packed.numel() // 32], code)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-features", type=int, default=14336)
    ap.add_argument("--in-features", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    O, I = a.out_features, a.in_features
    n, nb = O * I, O * I // 64
    nb2 = (nb + 255) // 256
    packed = torch.randint(0, 256, (n // 2,), dtype=torch.uint8, device=dev)
    absmax = torch.rand(nb, device=dev)
    absmax_code = torch.randint(0, 256, (nb2 * 256,), dtype=torch.uint8, device=dev)
    absmax_scale = torch.rand(nb2, device=dev)
    offset = torch.tensor(0.02, device=dev)
    code, dynamic = CODE.to(dev), DYNAMIC.to(dev)

    def t(fn):
        return median_ms(fn, flush, a.iters, a.warmup)

    eager = {
        "dequant": t(lambda: dequant(packed, absmax, code)),
        "dequant_dq": t(lambda: dequant_dq(packed, absmax_code, absmax_scale, offset, code, dynamic)),
    }
    for rows in (1, 4096):
        x = torch.randn(rows, I, device=dev, dtype=torch.bfloat16)
        eager["matmul_%d" % rows] = t(lambda: x @ dequant(packed, absmax, code).view(O, I).t())
    result = {"torch": torch.__version__, "eager": eager}
    try:
        import bitsandbytes.functional as bnbf

        w = torch.randn(O, I, device=dev, dtype=torch.bfloat16)
        q, state = bnbf.quantize_4bit(w, quant_type="nf4", compress_statistics=False)
        q2, state2 = bnbf.quantize_4bit(w, quant_type="nf4", compress_statistics=True)
        result["bitsandbytes"] = {
            "dequant": t(lambda: bnbf.dequantize_4bit(q, state)),
            "dequant_dq": t(lambda: bnbf.dequantize_4bit(q2, state2)),
        }
    except ImportError:
        pass
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
