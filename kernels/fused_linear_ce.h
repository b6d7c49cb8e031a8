// Fused linear + cross-entropy (the LM head and its loss) forward and
// backward, processed in chunks of tokens so the [tokens, vocab] logits are
// never materialised: per chunk, cuBLAS computes the chunk's fp32 logits, a
// row kernel turns them into per-token loss and logsumexp and, in place of
// the logits' gradient, writes (softmax - onehot) * grad_scale in the dtype;
// two more cuBLAS GEMMs turn that into the chunk's rows of dhidden and add
// its share of dweight.
//
// Legend: N tokens, C hidden size, V vocab size, M chunk_tokens.
//   hidden    [N, C]  dtype (bf16 or f16), row stride in elements
//   weight    [V, C]  dtype, row stride in elements (the lm_head / tied embedding)
//   targets   [N]     int64; ignore_index marks tokens without loss (prompt, padding)
//   loss_N    [N]     fp32 per-token loss, 0 for ignored tokens
//   lse_N     [N]     fp32 logsumexp of the token's logits (optional)
//   dhidden   [N, C]  dtype: d(sum_n grad_scale * loss_n) / d hidden (optional)
//   dweight   [V, C]  fp32, ACCUMULATED (+=): the same for weight (optional;
//                     fp32 because the trainer keeps fp32 gradients, and a
//                     frozen lm_head, as in LoRA, passes nullptr)
// grad_scale is the upstream gradient of every token's loss, e.g.
// 1 / (number of non-ignored tokens) for a mean; the caller knows that count
// from its batch, so the kernels never synchronise to count. A target outside
// [0, V) that is not ignore_index yields a NaN loss (visible, never silent).
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct FusedLinearCrossEntropyArgs {
  DType dtype = DType::kBF16;
  int64_t tokens = 0, hidden_size = 0, vocab = 0;  // N, C, V
  const void* hidden = nullptr;
  int64_t hidden_row_stride = 0;
  const void* weight = nullptr;
  int64_t weight_row_stride = 0;
  const int64_t* targets = nullptr;
  int64_t ignore_index = -100;
  float* loss = nullptr;   // [N]
  float* lse = nullptr;    // [N], optional
  float grad_scale = 1.f;
  void* dhidden = nullptr;  // [N, C], optional
  int64_t dhidden_row_stride = 0;
  float* dweight = nullptr;  // [V, C] fp32 contiguous, accumulated, optional
  int64_t chunk_tokens = 1024;  // M
  void* workspace = nullptr;    // fused_linear_ce_workspace_bytes(), 256-byte aligned
  cublasHandle_t cublas = nullptr;  // its stream is set to the launch stream
};

// fp32 logits [M, V] and their gradient [M, V] in the dtype.
size_t fused_linear_ce_workspace_bytes(int64_t chunk_tokens, int64_t vocab);

// Forward always; the gradients when dhidden or dweight is given.
void fused_linear_cross_entropy(const FusedLinearCrossEntropyArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
