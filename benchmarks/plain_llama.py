"""What the CPU peers (peer_engine.py, peer_train_eager.py) share: a
Llama-family checkpoint's weights in float32 and its per-token ops (RMSNorm,
RoPE) written in plain PyTorch, the way a straightforward implementation
would write them."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from llama_ref import inv_freq, load_weights  # noqa: E402


class PlainLlama:
    def __init__(self, model_dir):
        self.cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.W = {k: v.float() for k, v in load_weights(model_dir).items()}
        c = self.cfg
        self.H = c["num_attention_heads"]
        self.Hkv = c.get("num_key_value_heads") or self.H
        self.D = c.get("head_dim") or c["hidden_size"] // self.H
        self.freq = inv_freq(c, self.D).float()
        self.head = self.W["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else self.W["lm_head.weight"]

    def norm(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]))

    def rope(self, x, pos):
        ang = pos[:, None].float() * self.freq[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin
