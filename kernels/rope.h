// Rotary position embedding, forward and backward, in the Hugging Face
// "rotate_half" convention the engine uses (engine/rope.cpp): channel i and
// i + D/2 of a head form a pair rotated by angle = position * inv_freq[i]:
//   y[i]       = x[i] * cos - x[i + D/2] * sin
//   y[i + D/2] = x[i + D/2] * cos + x[i] * sin
// The backward is the inverse rotation (angle -> -angle), so one kernel
// serves both. The angle is formed in fp32 exactly as Hugging Face and the
// engine do (float(position) * inv_freq), cos/sin in fp32 (sincosf, full
// range reduction), the rotation in fp32, one rounding on output.
//
// Legend: N tokens, H heads, D head dim (even).
//   x, y         [N, H, D]  dtype bf16 or f16, (token_stride, head_stride)
//                           in elements, D contiguous; y may alias x
//   positions_N  [N]        int64 position of each token (as the engine's)
//   inv_freq     [D / 2]    fp32; the engine passes rope_inv_freq(config),
//                           which carries any "linear" or "llama3" scaling
//                           (rope_inv_freq_llama3 below builds the latter)
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct RopeArgs {
  DType dtype = DType::kBF16;
  int64_t tokens = 0;  // N
  int heads = 0;       // H
  int head_dim = 0;    // D
  const void* x = nullptr;
  int64_t x_token_stride = 0, x_head_stride = 0;
  void* y = nullptr;
  int64_t y_token_stride = 0, y_head_stride = 0;
  const int64_t* positions = nullptr;  // device [N]
  const float* inv_freq = nullptr;     // device [D / 2]
  bool inverse = false;                // true: backward (dx from dy)
};

void rope_apply(const RopeArgs& args, cudaStream_t stream);

// Host helper: inverse frequencies theta^(-2i/D) in fp32, optionally with
// Llama 3.1's scaling (factor, low/high frequency factors, original context):
// wavelengths longer than original_ctx / low_freq_factor are divided by
// factor, those shorter than original_ctx / high_freq_factor kept, and the
// band between blended linearly in original_ctx / wavelength.
struct RopeLlama3Scaling {
  double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  double original_max_position_embeddings = 8192;
};
std::vector<float> rope_inv_freq(int head_dim, double theta);
std::vector<float> rope_inv_freq_llama3(int head_dim, double theta, const RopeLlama3Scaling& s);

}  // namespace synthpert::kernels
