// Host-memory access to the bf16/f16 buffers the kernels' launchers take,
// for the host emulations of this folder.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <stdexcept>
#include <vector>

#include "kernels/common.cuh"

namespace synthpert::host_emulation {

inline double load(const void* base, int64_t index, kernels::DType t) {
  if (t == kernels::DType::kBF16) return static_cast<float>(static_cast<const c10::BFloat16*>(base)[index]);
  if (t == kernels::DType::kF16) return static_cast<float>(static_cast<const c10::Half*>(base)[index]);
  return static_cast<const float*>(base)[index];
}

inline void store(void* base, int64_t index, kernels::DType t, double v) {
  if (t == kernels::DType::kBF16) static_cast<c10::BFloat16*>(base)[index] = c10::BFloat16(static_cast<float>(v));
  else if (t == kernels::DType::kF16) static_cast<c10::Half*>(base)[index] = c10::Half(static_cast<float>(v));
  else static_cast<float*>(base)[index] = static_cast<float>(v);
}

// What the emulated lora_multi_apply was last called with, for tests that
// check which rows a caller hands to the gather kernel (host_ce_lora.cpp).
struct LoraMultiCalls {
  int count = 0;
  std::vector<int32_t> last_row_adapter;
};
LoraMultiCalls& lora_multi_calls();

// Rows of `width` elements `row_stride` apart -> contiguous doubles, and back.
inline std::vector<double> gather_rows(const void* data, int64_t row_stride, int64_t rows, int64_t width,
                                       kernels::DType t) {
  std::vector<double> out(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) out[r * width + c] = load(data, r * row_stride + c, t);
  return out;
}
inline void scatter_rows(const std::vector<double>& v, void* data, int64_t row_stride, int64_t rows, int64_t width,
                         kernels::DType t) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) store(data, r * row_stride + c, t, v[r * width + c]);
}

// A strided [N, heads, D] view (token and head strides in elements, unit
// stride in D) -> contiguous doubles, and back.
inline std::vector<double> gather_heads(const void* data, int64_t token_stride, int64_t head_stride, int64_t N,
                                        int heads, int D, kernels::DType t) {
  std::vector<double> out(static_cast<size_t>(N * heads * D));
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < D; ++d) out[(n * heads + h) * D + d] = load(data, n * token_stride + h * head_stride + d, t);
  return out;
}
inline void scatter_heads(const std::vector<double>& v, void* data, int64_t token_stride, int64_t head_stride,
                          int64_t N, int heads, int D, kernels::DType t) {
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < D; ++d) store(data, n * token_stride + h * head_stride + d, t, v[(n * heads + h) * D + d]);
}

}  // namespace synthpert::host_emulation
