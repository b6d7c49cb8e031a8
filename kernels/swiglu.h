// SwiGLU, forward and backward:  out = silu(gate) * up,  silu(g) = g / (1 + e^-g),
// with gate and up the outputs of the MLP's gate_proj and up_proj (the
// engine's layout, engine/model.cpp). Each operand has its own row stride, so
// both separate [R, I] buffers and the two halves of one fused [R, 2I]
// projection output (gate = base, up = base + I, row stride 2I) work; the
// gradients can likewise land in the halves of one [R, 2I] buffer.
//
// Legend: R rows (tokens), I intermediate width.
//   gate, up, out, dout, dgate, dup   [R, I]  dtype bf16 or f16, row strides in
//                                             elements, I contiguous
// fp32 arithmetic, one rounding per output. Backward:
//   dgate = dout * up * s * (1 + g * (1 - s)),  s = sigmoid(g)
//   dup   = dout * silu(g)
#pragma once

#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct SwigluForwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, width = 0;  // R, I
  const void* gate = nullptr;
  int64_t gate_row_stride = 0;
  const void* up = nullptr;
  int64_t up_row_stride = 0;
  void* out = nullptr;
  int64_t out_row_stride = 0;
};

struct SwigluBackwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, width = 0;
  const void* gate = nullptr;
  int64_t gate_row_stride = 0;
  const void* up = nullptr;
  int64_t up_row_stride = 0;
  const void* dout = nullptr;
  int64_t dout_row_stride = 0;
  void* dgate = nullptr;
  int64_t dgate_row_stride = 0;
  void* dup = nullptr;
  int64_t dup_row_stride = 0;
};

void swiglu_forward(const SwigluForwardArgs& args, cudaStream_t stream);
void swiglu_backward(const SwigluBackwardArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
