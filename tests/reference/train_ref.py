#!/usr/bin/python3
"""Reference SFT training run: the oracle of the trainer's golden test.

Independent of the C++ trainer: the forward is tests/reference/llama_ref.py
(float64 by default), LoRA is applied as W + scale * B @ A, the loss is the
mean next-token cross-entropy over every loss-masked target of the global
batch (each example on its own, so no packing or padding is involved), the
optimizer is torch.optim.AdamW (weight decay on matrices only, as Hugging
Face's Trainer does), the schedule a LambdaLR with Hugging Face's warmup
formulas, clipping torch.nn.utils.clip_grad_norm_.

Data order (docs/trainer.md): epoch e visits a Fisher-Yates permutation keyed
by (seed, e) on a splitmix64-style generator; step s of an epoch takes
positions [s*G, (s+1)*G) with G = batch * grad_accum * world.

Usage:
  train_ref.py --model DIR --data FILE.jsonl (--adapter DIR | --full) --steps N
               --global-batch G --seed S --lr X [--schedule linear|cosine|constant]
               [--warmup N] [--weight-decay X] [--max-grad-norm X] [--grad-steps 1,2]
               --out FILE.json
Writes {"losses":[...], "grads":{"STEP":{"name":[flat values]}}} with the
gradients before clipping (LoRA: PEFT key names; full: Hugging Face names).
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

M64 = (1 << 64) - 1


def mix_seed(a, b):
    x = (a ^ ((b + 0x9E3779B97F4A7C15 + ((a << 6) & M64) + (a >> 2)) & M64)) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def permutation(n, seed, stream):
    p = list(range(n))
    key = mix_seed(seed, stream)
    for i in range(n - 1, 0, -1):
        j = (mix_seed(key, i) * (i + 1)) >> 64
        p[i], p[j] = p[j], p[i]
    return p


def step_examples(n, global_batch, seed, step):
    per_epoch = (n + global_batch - 1) // global_batch
    epoch, within = divmod(step, per_epoch)
    perm = permutation(n, seed, epoch)
    return perm[within * global_batch:(within + 1) * global_batch]


def lr_lambda(kind, warmup, total):
    def f(k):
        if k < warmup:
            return k / warmup
        if kind == "constant":
            return 1.0
        span = max(1, total - warmup)
        if kind == "linear":
            return max(0.0, (total - k) / span)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (k - warmup) / span)))
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--global-batch", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--schedule", default="linear")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--grad-steps", default="1")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    base = {k: v.to(dtype) for k, v in llama_ref.load_weights(a.model).items()}
    examples = [json.loads(line) for line in open(a.data) if line.strip()]

    named = []  # (name, leaf tensor), the trained parameters
    lora = {}   # module -> (A, B, scale)
    if a.full:
        for k, v in base.items():
            v.requires_grad_(True)
            named.append((k, v))
    else:
        acfg = json.load(open(os.path.join(a.adapter, "adapter_config.json")))
        r, alpha = acfg["r"], acfg["lora_alpha"]
        scale = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
        tensors = llama_ref.read_safetensors(os.path.join(a.adapter, "adapter_model.safetensors"))
        for k in sorted(tensors):
            t = tensors[k].to(dtype).requires_grad_(True)
            named.append((k, t))
            module = k[len("base_model.model."):-len(".lora_A.weight")]
            A, B, _ = lora.get(module, (None, None, scale))
            lora[module] = (t, B, scale) if ".lora_A." in k else (A, t, scale)

    decay = [p for n, p in named if p.dim() >= 2]
    no_decay = [p for n, p in named if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": a.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(a.schedule, a.warmup, a.steps))
    grad_steps = {int(s) for s in a.grad_steps.split(",") if s}

    losses, grads = [], {}
    for step in range(a.steps):
        W = dict(base)
        for module, (A, B, scale) in lora.items():
            W[module + ".weight"] = base[module + ".weight"] + scale * (B @ A)
        total, count = 0.0, 0
        for i in step_examples(len(examples), a.global_batch, a.seed, step):
            ids, mask = examples[i]["ids"], examples[i]["loss_mask"]
            logits = llama_ref.forward(cfg, W, ids)
            logp = torch.log_softmax(logits, -1)
            for t in range(len(ids) - 1):
                if mask[t + 1]:
                    total = total - logp[t, ids[t + 1]]
                    count += 1
        loss = total / count
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        if step + 1 in grad_steps:
            grads[str(step + 1)] = {n: p.grad.reshape(-1).tolist() for n, p in named}
        if a.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for _, p in named], a.max_grad_norm)
        opt.step()
        sched.step()
    json.dump({"losses": losses, "grads": grads}, open(a.out, "w"))


if __name__ == "__main__":
    main()
