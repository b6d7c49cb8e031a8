// RMSNorm, SwiGLU and RoPE as autograd ops: the engine's entry to
// kernels/rmsnorm, kernels/swiglu and kernels/rope.
//
// On CUDA in bf16/f16 the kernels run both directions in one launch each and
// keep only what the backward needs (x and the fp32 rstd for RMSNorm; gate
// and up for SwiGLU, the positions for RoPE) instead of torch's fp32
// intermediates or the (B, T, D) cos/sin tables. Elsewhere the ops
// compute the same in torch math with the same explicit backward, which is
// what tests their wiring on CPU (tests/engine/test_rowwise_ops.cpp). The
// engine calls them where the kernels apply (kernels_apply() of
// engine/kernel_launch.h) and keeps its plain torch expressions otherwise
// (engine/model.cpp).
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::engine {

// y = w * round_to_dtype(x * rstd), rstd = 1 / sqrt(mean(x^2) + eps) over the
// last axis (Hugging Face's Llama RMSNorm). Differentiable in x and weight.
torch::Tensor rms_norm_op(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// silu(gate) * up, elementwise; gate and up of one shape. Differentiable in both.
torch::Tensor swiglu_op(const torch::Tensor& gate, const torch::Tensor& up);

// Rotary embedding of x (B, T, heads, D) at positions (B, T) int64 with
// inverse frequencies (D / 2) float32 (rope_inv_freq), Hugging Face's
// rotate_half convention: angles in fp32, one rounding. Differentiable in x.
torch::Tensor rope_op(const torch::Tensor& x_BTHD, const torch::Tensor& positions_BT, const torch::Tensor& inv_freq);

}  // namespace synthpert::engine
