#!/usr/bin/env python3
"""GPU peer for bench_engine: Hugging Face transformers (AutoModelForCausalLM,
SDPA attention, its own KV cache) on the same model folder, greedy decode
with the argmax on the device. Same protocol and JSON as bench_engine:
prefill = one forward over batch x prompt tokens keeping the last token's
logits; decode = greedy tokens/s after the prefill; median over reps after
one warm-up; every timed region ends with a device sync.

Usage: peer_engine_hf.py MODEL_DIR [--prompt 128] [--new 64] [--batches 1,8]
                         [--reps 5] [--device cuda] [--dtype bfloat16]
"""
import inspect
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

# transformers 5 names from_pretrained's dtype argument "dtype" (torch_dtype is deprecated there).
DTYPE_KEY = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"

from engine_peer_protocol import batches, parse_args, rows_for


def main():
    a = parse_args(with_device=True)
    dev = torch.device(a.device)
    model = AutoModelForCausalLM.from_pretrained(a.model, **{DTYPE_KEY: getattr(torch, a.dtype)},
                                                 attn_implementation="sdpa").to(dev).eval()
    # Only the last position's logits, where this transformers version can say so.
    params = inspect.signature(model.forward).parameters
    keep = {}
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            keep = {name: 1}
            break

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    V = model.config.vocab_size
    rows = []
    with torch.inference_mode():
        for B in batches(a):
            ids = torch.randint(0, V, (B, a.prompt), device=dev)
            pre, dec = [], []
            for r in range(a.reps + 1):
                sync()
                t0 = time.perf_counter()
                model(ids, use_cache=False, **keep)
                sync()
                if r:
                    pre.append(B * a.prompt / (time.perf_counter() - t0))
            for r in range(a.reps + 1):
                out = model(ids, use_cache=True, **keep)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                sync()
                t0 = time.perf_counter()
                for _ in range(a.new - 1):
                    out = model(nxt, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                sync()
                if r:
                    dec.append(B * (a.new - 1) / (time.perf_counter() - t0))
            rows += rows_for(B, a, pre, dec)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
