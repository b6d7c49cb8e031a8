#!/usr/bin/python3
"""Peer of bench_train on the CPU: LoRA training written the way a
straightforward PyTorch eager implementation would write it (autograd through
plain tensor ops, float32), for hosts without transformers/PEFT.

Same shapes and protocol as bench_train: LoRA r (alpha = r, so scale 1) on all
seven projections of every layer (A Kaiming-uniform, B zero, as PEFT
initialises them), random sequences of exactly --seq tokens, next-token loss on
every position, torch.optim.AdamW (lr 1e-4, no weight decay: the trainer's
defaults), gradient clipping at 1.0. tokens/s from the median step time after
the warm-up; peak memory is the process's peak resident set (ru_maxrss), as
bench_train reports it on the CPU.

Usage: peer_train_eager.py MODEL_DIR [--seq 512] [--batch 4] [--steps 5] [--warmup 1]
                           [--lora-r 16] [--name lora]
Prints {"threads": N, "rows": [{"name","unit","value"}]}.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

from plain_llama import PlainLlama

PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


class LoraLlama(PlainLlama):
    def __init__(self, model_dir, r):
        super().__init__(model_dir)  # frozen weights
        c = self.cfg
        self.lora = {}
        for l in range(c["num_hidden_layers"]):
            for proj in PROJECTIONS:
                name = f"model.layers.{l}.{proj}"
                out_f, in_f = self.W[name + ".weight"].shape
                a = torch.empty(r, in_f)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                self.lora[name] = (a.requires_grad_(), torch.zeros(out_f, r, requires_grad=True))

    def params(self):
        return [t for pair in self.lora.values() for t in pair]

    def linear(self, x, name):
        a, b = self.lora[name]
        return x @ self.W[name + ".weight"].T + (x @ a.T) @ b.T

    def loss(self, ids):
        B, T = ids.shape
        W, H, Hkv, D = self.W, self.H, self.Hkv, self.D
        pos = torch.arange(T)
        causal = torch.arange(T)[None, :] > torch.arange(T)[:, None]
        x = W["model.embed_tokens.weight"][ids]
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.norm(x, W[p + "input_layernorm.weight"])
            q = self.linear(h, p + "self_attn.q_proj").view(B, T, H, D).transpose(1, 2)
            k = self.linear(h, p + "self_attn.k_proj").view(B, T, Hkv, D).transpose(1, 2)
            v = self.linear(h, p + "self_attn.v_proj").view(B, T, Hkv, D).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = k.repeat_interleave(H // Hkv, 1)
            v = v.repeat_interleave(H // Hkv, 1)
            s = (q @ k.transpose(2, 3) / math.sqrt(D)).masked_fill(causal, float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * D)
            x = x + self.linear(o, p + "self_attn.o_proj")
            h = self.norm(x, W[p + "post_attention_layernorm.weight"])
            g, u = self.linear(h, p + "mlp.gate_proj"), self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(F.silu(g) * u, p + "mlp.down_proj")
        logits = self.norm(x, W["model.norm.weight"]) @ self.head.T
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--name", default="lora")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = LoraLlama(a.model, a.lora_r)
    opt = torch.optim.AdamW(model.params(), lr=1e-4, weight_decay=0.0)
    vocab = model.cfg["vocab_size"]
    times = []
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, vocab, (a.batch, a.seq))
        t0 = time.perf_counter()
        loss = model.loss(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.params(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"threads": torch.get_num_threads(), "rows": [
        {"name": f"{a.name} seq {a.seq} tokens/s", "unit": "tokens/s", "value": round(a.batch * a.seq / median, 1)},
        {"name": f"{a.name} seq {a.seq} peak memory", "unit": "bytes", "value": peak}]}))


if __name__ == "__main__":
    main()
