// LoRA linear layers on the GPU.
//
// Training (one adapter):  y = x W^T + s (x A^T) B^T,  s = lora_alpha / r
//   forward   xa = x A^T              (saved for the backward, dtype)
//             y  = x W^T              cuBLAS, beta = 0
//             y += s xa B^T           cuBLAS, beta = 1: the low-rank update is
//                                     accumulated into y, no [N, O] temporary
//   backward  dB  (+)= s dy^T xa      fp32
//             dxa  = s dy B           [N, R] workspace, dtype
//             dA  (+)= dxa^T x        fp32
//             dx   = dy W             cuBLAS, beta = 0
//             dx  += dxa A            cuBLAS, beta = 1 (the low-rank part
//                                     accumulated into the base dx)
//   W is frozen (no dW). For QLoRA, W is the NF4 weight dequantised into a
//   scratch by nf4_dequantize (kernels/nf4.h) before each call.
//
// Serving (many adapters in one batch, Punica/S-LoRA-style gather GEMM):
//   y[n] += s_i (x[n] A_i^T) B_i^T,  i = row_adapter[n]
//   shrink    xa[n, :] = x[n] A_i^T   one block per row, fp32 [N, R] workspace
//   expand    y[n, o] += s_i xa[n] . B_i[o]   one thread per output
//   row_adapter[n] = -1 leaves the row untouched; an index outside
//   [-1, num_adapters) sets the row of y to NaN (visible, never silent).
//   The base GEMM y = x W^T is the caller's (one cuBLAS call for the batch).
//   A segment of rows sharing an adapter is simply a run of equal indices;
//   sorting rows by adapter makes the adapters' reads hit L2.
//
// Legend: N rows (tokens), K in_features, O out_features, R rank, M adapters.
//   x [N, K], y [N, O], dy [N, O], dx [N, K]   dtype, row strides in elements
//   W [O, K], A [R, K], B [O, R]               dtype, row strides in elements
//   xa [N, R]                                  dtype, contiguous (training)
//   dA [R, K], dB [O, R]                       fp32, contiguous, += when accumulate
//   A_all [M, R, K], B_all [M, O, R]           dtype, adapter and row strides
//   scales [M] fp32, row_adapter [N] int32     device arrays (serving)
// bf16 or f16; all GEMMs accumulate in fp32 (CUBLAS_COMPUTE_32F).
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct LoraForwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, in_features = 0, out_features = 0, rank = 0;  // N, K, O, R
  float scale = 1.f;                                              // s
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* weight = nullptr;  // W
  int64_t weight_row_stride = 0;
  const void* lora_a = nullptr;  // A
  int64_t lora_a_row_stride = 0;
  const void* lora_b = nullptr;  // B
  int64_t lora_b_row_stride = 0;
  void* y = nullptr;
  int64_t y_row_stride = 0;
  void* xa = nullptr;               // [N, R] contiguous, written (keep for the backward)
  cublasHandle_t cublas = nullptr;  // its stream is set to the launch stream
};

struct LoraBackwardArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, in_features = 0, out_features = 0, rank = 0;
  float scale = 1.f;
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* weight = nullptr;
  int64_t weight_row_stride = 0;
  const void* lora_a = nullptr;
  int64_t lora_a_row_stride = 0;
  const void* lora_b = nullptr;
  int64_t lora_b_row_stride = 0;
  const void* xa = nullptr;  // from the forward
  const void* dy = nullptr;
  int64_t dy_row_stride = 0;
  void* dx = nullptr;  // optional
  int64_t dx_row_stride = 0;
  float* grad_a = nullptr;  // dA [R, K] fp32
  float* grad_b = nullptr;  // dB [O, R] fp32
  bool accumulate = false;  // dA, dB += (gradient accumulation) instead of =
  void* workspace = nullptr;  // lora_backward_workspace_bytes(), 256-byte aligned
  cublasHandle_t cublas = nullptr;
};

// dxa [N, R] in the dtype.
size_t lora_backward_workspace_bytes(int64_t rows, int64_t rank);

void lora_forward(const LoraForwardArgs& args, cudaStream_t stream);
void lora_backward(const LoraBackwardArgs& args, cudaStream_t stream);

// Largest rank of the serving kernels (xa of a row is staged in shared memory).
constexpr int64_t kLoraMaxServingRank = 256;

struct LoraMultiArgs {
  DType dtype = DType::kBF16;
  int64_t rows = 0, in_features = 0, out_features = 0, rank = 0, num_adapters = 0;  // N, K, O, R, M
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* lora_a = nullptr;  // A_all
  int64_t lora_a_adapter_stride = 0, lora_a_row_stride = 0;
  const void* lora_b = nullptr;  // B_all
  int64_t lora_b_adapter_stride = 0, lora_b_row_stride = 0;
  const float* scales = nullptr;          // [M]
  const int32_t* row_adapter = nullptr;   // [N]
  void* y = nullptr;                      // [N, O], accumulated
  int64_t y_row_stride = 0;
  void* workspace = nullptr;  // lora_multi_workspace_bytes(), 256-byte aligned
};

// xa [N, R] fp32.
size_t lora_multi_workspace_bytes(int64_t rows, int64_t rank);

void lora_multi_apply(const LoraMultiArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
