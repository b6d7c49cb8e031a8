#!/usr/bin/python3
"""Reference forward pass for Llama / Qwen2 / Qwen3 / Mistral checkpoints.

An independent oracle for the C++ engine: written from the Hugging Face
modeling code's semantics (rotate_half RoPE, llama3 frequency scaling, RMSNorm
computed in float32, grouped-query attention, Qwen3 per-head q/k norms, Mistral
sliding window), with its own safetensors parser (numpy), in float64 unless
--dtype says otherwise. Runs with Debian's python3-torch (1.13).

Usage: llama_ref.py --model DIR --ids 1,2,3[;4,5] --out FILE
Writes FILE as raw little-endian float32 logits, one sequence after another
(each (T, V)); left-padded batches are not needed here: sequences run one by one.
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bf16",
          "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = raw[base + begin: base + end]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(arr.astype(np.float64).reshape(info["shape"]))
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for f in files:
        weights.update(read_safetensors(os.path.join(model_dir, f)))
    return weights


def inv_freq(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        return freq / scaling["factor"]
    if kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        out = []
        for f in freq.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old / high:
                out.append(f)
            elif wavelen > old / low:
                out.append(f / factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        return torch.tensor(out, dtype=torch.float64)
    return freq


def rms_norm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rope(x, pos, freq):
    # x: (heads, T, D); first half / second half rotation.
    angles = pos[:, None].double() * freq[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], -1)
    sin = torch.cat([angles.sin(), angles.sin()], -1)
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def forward(cfg, W, ids):
    mt = cfg["model_type"]
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    window, first_windowed = 0, 0
    if mt == "mistral":
        window = cfg.get("sliding_window") or 0
    elif mt in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        # Qwen: only layers from max_window_layers on use the window.
        window = cfg.get("sliding_window") or 0
        first_windowed = cfg.get("max_window_layers", cfg["num_hidden_layers"])
    T = len(ids)
    pos = torch.arange(T)
    freq = inv_freq(cfg, D)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    i_idx = torch.arange(T)[:, None]
    j_idx = torch.arange(T)[None, :]
    causal = j_idx <= i_idx
    windowed = causal & ((i_idx - j_idx) < window) if window else causal

    def lin(name, v):
        y = v @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        allowed = windowed if l >= first_windowed else causal
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(T, H, D).transpose(0, 1)
        k = lin(p + "self_attn.k_proj", h).view(T, Hkv, D).transpose(0, 1)
        v = lin(p + "self_attn.v_proj", h).view(T, Hkv, D).transpose(0, 1)
        if mt == "qwen3":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = rope(q, pos, freq)
        k = rope(k, pos, freq)
        rep = H // Hkv
        out = torch.empty(H, T, D, dtype=torch.float64)
        for head in range(H):
            kv = head // rep
            s = (q[head] @ k[kv].T) / math.sqrt(D)
            s = s.masked_fill(~allowed, float("-inf"))
            out[head] = torch.softmax(s, -1) @ v[kv]
        x = x + lin(p + "self_attn.o_proj", out.transpose(0, 1).reshape(T, H * D))
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = lin(p + "mlp.gate_proj", h)
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(g) * lin(p + "mlp.up_proj", h))
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated ids; ';' separates sequences")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = load_weights(a.model)
    with open(a.out, "wb") as f:
        for seq in a.ids.split(";"):
            logits = forward(cfg, W, [int(t) for t in seq.split(",")])
            f.write(logits.to(torch.float32).numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
