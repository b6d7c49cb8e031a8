// Rotary position embeddings in the Hugging Face "rotate_half" convention:
// the head dim is split into two halves (not interleaved pairs), and
//   x_rot = x * cos + rotate_half(x) * sin,  rotate_half([a, b]) = [-b, a].
#pragma once

#include "engine/config.h"
#include "engine/torch_compat.h"

namespace synthpert::engine {

// Inverse frequencies (head_dim / 2) in float32, with the config's scaling
// ("linear" divides by factor; "llama3" follows Meta's Llama-3.1 recipe:
// long wavelengths scaled by 1/factor, short ones kept, a smooth blend between).
torch::Tensor rope_inv_freq(const ModelConfig& c);

// cos and sin tables for positions_BT (int64): each (B, T, head_dim), float32.
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq,
                                                     const torch::Tensor& positions_BT);

// Applies RoPE to x_BHTD with cos/sin of shape (B, T, D).
torch::Tensor apply_rope(const torch::Tensor& x_BHTD, const torch::Tensor& cos_BTD,
                         const torch::Tensor& sin_BTD);

}  // namespace synthpert::engine
