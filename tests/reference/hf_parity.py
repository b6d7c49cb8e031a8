#!/usr/bin/env python3
"""Logit parity of the synthpert engine against Hugging Face transformers.

Runs on a GPU host (python3 there has torch, transformers): for each
architecture it writes a random checkpoint with `synthpert init-model`, loads it
with transformers' AutoModelForCausalLM in float32, and compares all positions'
logits with `synthpert logits` (on the device given). Prints one JSON line per
case and exits non-zero if any max |diff| exceeds the tolerance.

Usage: hf_parity.py --synthpert build/synthpert [--device cpu|cuda] [--tol 1e-4] [--out FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM

# transformers 5 names from_pretrained's dtype argument "dtype" (torch_dtype is deprecated there).
DTYPE_KEY = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"

ODD = {"vocab_size": 101, "hidden_size": 72, "intermediate_size": 100, "num_hidden_layers": 2,
       "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 24, "rms_norm_eps": 1e-5,
       "max_position_embeddings": 512}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


def cases():
    yield "llama", dict(ODD, model_type="llama", tie_word_embeddings=False)
    yield "llama-tied", dict(ODD, model_type="llama", tie_word_embeddings=True)
    yield "llama3-rope", dict(ODD, model_type="llama", rope_theta=500000.0, rope_scaling=LLAMA3)
    yield "llama-biases", dict(ODD, model_type="llama", attention_bias=True, mlp_bias=True,
                               rope_scaling={"rope_type": "linear", "factor": 2.5})
    yield "qwen2", dict(ODD, model_type="qwen2", use_sliding_window=False)
    yield "qwen3", dict(ODD, model_type="qwen3", head_dim=20, num_key_value_heads=3,
                        tie_word_embeddings=True, attention_bias=False)
    yield "mistral-window", dict(ODD, model_type="mistral", sliding_window=5)
    yield "qwen2-window", dict(ODD, model_type="qwen2", num_hidden_layers=3, use_sliding_window=True,
                               sliding_window=4, max_window_layers=1)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr}")
    return r.stdout


def compare(a, cfg, ids):
    """Largest |our logits - transformers' logits| for one config."""
    with tempfile.TemporaryDirectory() as d:
        cfg_path = os.path.join(d, "in-config.json")
        json.dump(cfg, open(cfg_path, "w"))
        model_dir = os.path.join(d, "model")
        run([a.synthpert, "init-model", "--config", cfg_path, "--out", model_dir, "--jitter",
             "--seed", "3"])
        ours = json.loads(run([a.synthpert, "logits", "--model", model_dir, "--ids",
                               ",".join(map(str, ids)), "--device", a.device]))
        # sdpa/eager differ only in kernels; eager is the plainest oracle.
        hf = AutoModelForCausalLM.from_pretrained(model_dir, **{DTYPE_KEY: torch.float32},
                                                  attn_implementation="eager").to(a.device)
        # An explicit all-ones mask and no KV cache: the plainest forward, the
        # one whose arguments every transformers version reads the same way.
        x = torch.tensor([ids], device=a.device)
        with torch.no_grad():
            ref = hf(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0].float().cpu()
        return (torch.tensor(ours["logits"]) - ref).abs().max().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthpert", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--out")
    a = ap.parse_args()
    ids = [(i * 37 + 11) % 101 for i in range(23)]
    results, worst = [], 0.0
    for name, cfg in cases():
        # One case failing (our binary or transformers) is reported with its
        # error, and the others still run.
        try:
            diff = compare(a, cfg, ids)
            row = {"case": name, "device": a.device, "max_abs_diff": diff, "ok": diff <= a.tol}
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            diff = float("inf")
            # The innermost frames say which side failed, and where.
            where = traceback.format_exception(type(e), e, e.__traceback__)[-4:]
            row = {"case": name, "device": a.device, "error": f"{type(e).__name__}: {e}",
                   "traceback": "".join(where), "ok": False}
        worst = max(worst, diff)
        results.append(row)
        print(json.dumps(row), flush=True)
    if a.out:
        import transformers
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "tolerance": a.tol, "results": results}, open(a.out, "w"), indent=2)
    sys.exit(0 if worst <= a.tol else 1)


if __name__ == "__main__":
    main()
