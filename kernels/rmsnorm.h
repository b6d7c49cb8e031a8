// RMSNorm forward and backward, as Llama/Qwen/Mistral (and engine/model.cpp)
// define it:  y = w * round(x * rstd),  rstd = 1 / sqrt(mean(x^2) + eps),
// with the inner rounding to the input dtype that Hugging Face's
// `hidden_states.to(input_dtype)` applies before the weight multiply.
//
// Legend: R rows (tokens, or tokens x heads for Qwen3's q/k norm), C width.
//   x, y, dy, dx   [R, C]  dtype bf16 or f16, each with its own row stride
//                          (elements); the C axis is contiguous
//   weight         [C]     same dtype, contiguous
//   rstd_R         [R]     fp32, written by forward, read by backward
//   dweight_C      [C]     fp32 (the trainer keeps fp32 gradients), written
// Statistics and arithmetic are fp32; outputs are rounded once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct RmsNormForwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, width = 0;
  float eps = 1e-6f;
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* weight = nullptr;
  void* y = nullptr;
  int64_t y_row_stride = 0;
  float* rstd = nullptr;  // optional (nullptr: not saved, e.g. inference)
};

struct RmsNormBackwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, width = 0;
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* weight = nullptr;
  const float* rstd = nullptr;  // from the forward
  const void* dy = nullptr;
  int64_t dy_row_stride = 0;
  void* dx = nullptr;
  int64_t dx_row_stride = 0;
  float* dweight = nullptr;     // optional (nullptr: frozen weight)
  void* workspace = nullptr;    // rmsnorm_backward_workspace_bytes(); only with dweight
};

// Per-block partial sums of dweight: [G, C] fp32, G = min(1024, max(ceil(R / 16), min(R, 256))).
size_t rmsnorm_backward_workspace_bytes(int64_t rows, int64_t width);

// Widest C for which dweight can be computed (the per-block partial row lives
// in shared memory).
constexpr int64_t kRmsNormMaxDweightWidth = 12288;

void rmsnorm_forward(const RmsNormForwardArgs& args, cudaStream_t stream);
void rmsnorm_backward(const RmsNormBackwardArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
