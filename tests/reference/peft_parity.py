#!/usr/bin/env python3
"""GPU-host parity of the trainer with Hugging Face transformers + PEFT.

Run on a GPU host after building (docs/trainer.md):
    python3 tests/reference/peft_parity.py --build build
Checks, on a random-init odd-shaped Llama written by `synthpert init-model`:
  1. loss and LoRA gradients of one global batch: ours (`train --grad-dump`)
     vs transformers + PEFT, in float32 (tolerance 1e-5 relative) and in bf16
     (our bf16 error against PEFT's float32 must be at most 2x PEFT's own bf16
     error, plus 1e-3 of headroom for tiny values: the rule of DESIGN.md 5);
  2. an adapter we trained loads in PEFT and gives our logits (1e-4);
  3. the NCCL backend runs (world size 1 on one GPU) and gives the losses of
     the run without a process group.
Prints one JSON line per check as it ends (so a run cut short keeps what
finished) and a JSON summary; exits 1 if any check fails. A check that fails
or hangs (each command has a time limit) does not stop the others.
Needs: python3 with torch (CUDA), transformers, peft, safetensors.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
import transformers
from transformers import AutoModelForCausalLM

# transformers 5 names from_pretrained's dtype argument "dtype" (torch_dtype is deprecated there).
DTYPE_KEY = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Head dim 64 (with 2 query heads over 1 kv head, q width 128 != hidden 96):
# a size the attention kernels take, so the bf16 run on CUDA goes through the
# engine's kernel paths (packed attention, RMSNorm/RoPE/SwiGLU, LoRA, fused
# cross-entropy) and the float32 run through plain torch ops.
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 101,
          "hidden_size": 96, "intermediate_size": 160, "num_hidden_layers": 2,
          "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
          "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}


def run(cmd, env=None, timeout=120):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"no answer in {timeout} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise RuntimeError(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def load_hf(model_dir, dtype):
    return AutoModelForCausalLM.from_pretrained(model_dir, **{DTYPE_KEY: dtype})


def make_data(path, n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = rng.randint(8, 40)
        prompt = rng.randint(1, length - 2)
        ids = [rng.randrange(101) for _ in range(length)]
        rows.append({"ids": ids, "loss_mask": [0] * prompt + [1] * (length - prompt)})
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def hf_loss_and_grads(model_dir, adapter, rows, dtype, device):
    base = load_hf(model_dir, dtype).to(device)
    model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
    T = max(len(r["ids"]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    attn = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        attn[i, :n] = 1
        labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(r["ids"], r["loss_mask"])])
    out = model(input_ids=ids.to(device), attention_mask=attn.to(device), labels=labels.to(device))
    out.loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.grad is not None and "lora_" in name:
            grads[name.replace(".default", "")] = p.grad.float().cpu()
    return out.loss.item(), grads


def rel_err(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b) / max(b[k].abs().max().item() for k in b)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    exe = os.path.abspath(os.path.join(a.build, "synthpert"))
    w = a.workdir or tempfile.mkdtemp(prefix="peft-parity-")
    os.makedirs(w, exist_ok=True)
    cfg_path = os.path.join(w, "config.json")
    json.dump(CONFIG, open(cfg_path, "w"))
    model_dir = os.path.join(w, "model")
    run([exe, "init-model", "--config", cfg_path, "--out", model_dir, "--seed", "1", "--jitter"])
    data = os.path.join(w, "data.jsonl")
    rows = make_data(data, 6, 0)

    # A PEFT adapter with random B (B = 0 would zero A's gradients).
    torch.manual_seed(0)
    base = load_hf(model_dir, torch.float32)
    peft = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS))
    for n, p in peft.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.05)
    init = os.path.join(w, "init")
    peft.save_pretrained(init)

    results, ok = {}, True

    def check(name, fn):
        # One check's failure (or a hang, cut by run's time limit) is its own
        # result; the checks after it still run.
        nonlocal ok
        try:
            passed = bool(fn())
        except Exception as e:  # noqa: BLE001 - any failure is this check's result
            results.setdefault(name, {})["error"] = str(e)[-2000:]
            passed = False
        results.setdefault(name, {})["ok"] = passed
        ok &= passed
        print(json.dumps({"check": name, **results[name]}), flush=True)

    def ours(dtype, tag, extra=(), env=None):
        out = os.path.join(w, tag)
        dump = os.path.join(w, tag + "-grads.safetensors")
        summary = json.loads(run([exe, "train", "--model", model_dir, "--data", data, "--out", out,
                                  "--init-adapter", init, "--batch", str(len(rows)), "--max-steps", "1",
                                  "--lr", "0", "--max-grad-norm", "0", "--val-fraction", "0",
                                  "--no-progress", "--dtype", dtype, "--device", a.device,
                                  "--grad-dump", dump, *extra], env=env))
        return summary, load_file(dump)

    # 1. Loss and gradients.
    ref = {}

    def f32_check():
        s32, g32 = ours("f32", "ours-f32")
        ref["s32"] = s32
        ref["l"], ref["g"] = hf_loss_and_grads(model_dir, init, rows, torch.float32, a.device)
        missing = sorted(set(ref["g"]) - set(g32))
        if missing:
            raise RuntimeError(f"no gradient of ours for PEFT's {missing[:6]}")
        results["f32"] = {"loss_ours": s32["final_loss"], "loss_peft": ref["l"], "grad_rel_err": rel_err(g32, ref["g"])}
        return abs(s32["final_loss"] - ref["l"]) <= 1e-5 * abs(ref["l"]) and results["f32"]["grad_rel_err"] <= 1e-5

    def bf16_check():
        if "g" not in ref:
            raise RuntimeError("needs the float32 reference of check f32")
        l_bf, g_bf = hf_loss_and_grads(model_dir, init, rows, torch.bfloat16, a.device)
        s16, g16 = ours("bf16", "ours-bf16")
        peer_err = rel_err(g_bf, ref["g"])
        our_err = rel_err(g16, ref["g"])
        results["bf16"] = {"loss_ours": s16["final_loss"], "loss_peft_bf16": l_bf, "loss_peft_f32": ref["l"],
                           "grad_rel_err_ours": our_err, "grad_rel_err_peft_bf16": peer_err}
        return abs(s16["final_loss"] - ref["l"]) <= 2 * abs(l_bf - ref["l"]) + 1e-3 and our_err <= 2 * peer_err + 1e-3

    # 2. An adapter we trained loads in PEFT with our logits.
    def adapter_check():
        trained = os.path.join(w, "trained")
        run([exe, "train", "--model", model_dir, "--data", data, "--out", trained, "--init-adapter", init,
             "--batch", "3", "--max-steps", "3", "--lr", "1e-2", "--val-fraction", "0", "--no-progress",
             "--device", a.device])
        probe = rows[0]["ids"]
        ours_logits = torch.tensor(json.loads(run([exe, "logits", "--model", model_dir, "--adapter",
                                                   os.path.join(trained, "adapter"), "--device", a.device,
                                                   "--ids", ",".join(map(str, probe))]))["logits"])
        base = load_hf(model_dir, torch.float32).to(a.device)
        loaded = PeftModel.from_pretrained(base, os.path.join(trained, "adapter"))
        with torch.no_grad():
            peft_logits = loaded(input_ids=torch.tensor([probe], device=a.device)).logits[0].float().cpu()
        diff = (ours_logits - peft_logits).abs().max().item()
        results["adapter_in_peft"] = {"logits_max_diff": diff}
        return diff <= 1e-4

    # 3. NCCL with a world of one gives the plain run's loss.
    def nccl_check():
        if "s32" not in ref:
            raise RuntimeError("needs the float32 run of check f32")
        env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(free_port()))
        sn, _ = ours("f32", "ours-nccl", env=env)
        results["nccl"] = {"backend": sn["backend"], "loss": sn["final_loss"]}
        return sn["backend"] == "nccl" and abs(sn["final_loss"] - ref["s32"]["final_loss"]) <= 1e-6

    check("f32", f32_check)
    check("bf16", bf16_check)
    check("adapter_in_peft", adapter_check)
    if a.device.startswith("cuda"):
        check("nccl", nccl_check)
    results["ok"] = bool(ok)
    print(json.dumps(results, indent=2), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
