#!/usr/bin/python3
"""Peer for bench_engine: the same Llama-family model in plain PyTorch eager
(float32, batched, with a KV cache, greedy decode), the way a straightforward
python implementation would run it. Same measurement protocol and JSON as
bench_engine: median over reps after one warm-up.

Usage: peer_engine.py MODEL_DIR [--prompt 128] [--new 64] [--batches 1,8] [--reps 5]
"""
import json
import math
import time

import torch

from engine_peer_protocol import batches, parse_args, rows_for
from plain_llama import PlainLlama


class Model(PlainLlama):
    def forward(self, ids, cache, start, last_only=False):
        B, T = ids.shape
        W, H, Hkv, D = self.W, self.H, self.Hkv, self.D
        pos = torch.arange(start, start + T)
        x = W["model.embed_tokens.weight"][ids]
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.norm(x, W[p + "input_layernorm.weight"])
            q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D).transpose(1, 2)
            k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
            v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if l in cache:
                k = torch.cat([cache[l][0], k], 2)
                v = torch.cat([cache[l][1], v], 2)
            cache[l] = (k, v)
            k = k.repeat_interleave(H // Hkv, 1)
            v = v.repeat_interleave(H // Hkv, 1)
            s = q @ k.transpose(2, 3) / math.sqrt(D)
            S = k.shape[2]
            mask = torch.arange(S)[None, :] > (torch.arange(T)[:, None] + start)
            s = s.masked_fill(mask, float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * D)
            x = x + o @ W[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, W[p + "post_attention_layernorm.weight"])
            g = h @ W[p + "mlp.gate_proj.weight"].T
            u = h @ W[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
        if last_only:
            x = x[:, -1:]
        return self.norm(x, W["model.norm.weight"]) @ self.head.T


def main():
    a = parse_args()
    m = Model(a.model)
    V = m.cfg["vocab_size"]
    rows = []
    with torch.inference_mode():
        for B in batches(a):
            ids = torch.randint(0, V, (B, a.prompt))
            pre, dec = [], []
            for r in range(a.reps + 1):
                t0 = time.perf_counter()
                m.forward(ids, {}, 0, last_only=True)
                if r:
                    pre.append(B * a.prompt / (time.perf_counter() - t0))
            for r in range(a.reps + 1):
                cache = {}
                logits = m.forward(ids, cache, 0, last_only=True)
                t0 = time.perf_counter()
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                for step in range(a.new - 1):
                    nxt = m.forward(nxt, cache, a.prompt + step)[:, -1].argmax(-1, keepdim=True)
                if r:
                    dec.append(B * (a.new - 1) / (time.perf_counter() - t0))
            rows += rows_for(B, a, pre, dec)
    print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
