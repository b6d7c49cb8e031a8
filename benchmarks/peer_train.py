#!/usr/bin/env python3
"""Peer of bench_train: Hugging Face transformers + PEFT LoRA training speed.

Same shapes as bench_train: LoRA r (alpha = r) on all seven projections,
random sequences of exactly --seq tokens, loss on every token, AdamW, SDPA
attention, bf16 weights. Prints {"rows":[{"name","unit","value"}]} with
tokens/s (median step time after warm-up) and torch.cuda.max_memory_allocated
over the timed steps.

Usage: peer_train.py MODEL_DIR [--seq 2048] [--batch 1] [--steps 10] [--warmup 2]
                     [--lora-r 32] [--dtype bf16] [--gradient-checkpointing] [--name lora]
"""
import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
import transformers
from transformers import AutoModelForCausalLM

# transformers 5 names from_pretrained's dtype argument "dtype" (torch_dtype is deprecated there).
DTYPE_KEY = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lora-r", type=int, default=32)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--name", default="lora")
    a = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    model = AutoModelForCausalLM.from_pretrained(a.model, **{DTYPE_KEY: dtype}, attn_implementation="sdpa").cuda()
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=a.lora_r, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    times = []
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            torch.cuda.reset_peak_memory_stats()
        ids = torch.randint(0, vocab, (a.batch, a.seq), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        torch.cuda.synchronize()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    name = f"{a.name} seq {a.seq}"
    print(json.dumps({"rows": [
        {"name": name + " tokens/s", "unit": "tokens/s", "value": a.batch * a.seq / median},
        {"name": name + " peak memory", "unit": "bytes", "value": torch.cuda.max_memory_allocated()}]}))


if __name__ == "__main__":
    main()
