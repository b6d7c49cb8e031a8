// The LM head and its cross-entropy in one differentiable op, without the
// (tokens x vocab) logits: the engine's entry to kernels/fused_linear_ce.
//
// Both paths compute, in chunks of tokens, the chunk's float32 logits, the
// per-token loss and, already in the forward, the gradients for an upstream
// gradient of 1: dlogits = softmax - onehot, dhidden = dlogits W, and (when
// the weight is trained) dweight = dlogits^T hidden. The backward only scales
// them by the upstream gradient. On CUDA in bf16/f16 the chunks run in
// kernels/fused_linear_ce (cuBLAS GEMMs and a row kernel); elsewhere in torch
// math, which is what tests the op's wiring on CPU
// (tests/engine/test_linear_cross_entropy.cpp). engine/kernel_launch.h's
// kernels_apply() says which configurations take the kernel.
//
// Legend: N tokens, C hidden size, V vocab.
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::engine {

// sum_n -log softmax(hidden_n W^T)[target_n] over targets != ignore_index, a
// float32 scalar. hidden (N, C) and weight (V, C) share a dtype and device;
// targets (N) int64. Differentiable in hidden and in weight.
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden_NC, const torch::Tensor& weight_VC,
                                       const torch::Tensor& targets_N, int64_t ignore_index = -100);

}  // namespace synthpert::engine
