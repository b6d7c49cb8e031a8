// A linear layer with a LoRA adapter as one autograd op: the engine's entry to
// kernels/lora's training path.
//
//   y = x W^T + s (x A^T) B^T     differentiable in x, A and B; W is frozen
//
// On CUDA in bf16/f16 the kernels accumulate the low-rank update into the
// base GEMM's output (no [N, O] temporary) and run the backward as five
// cuBLAS GEMMs; the op keeps only x and xa = x A^T. An NF4 base weight is
// dequantised into a scratch for each call, forward and backward. Elsewhere
// the op computes the same in torch math with the same explicit backward,
// which is what tests its wiring on CPU (tests/engine/test_lora_linear.cpp).
// Dropout on the adapter's input is not part of the op: Linear::forward keeps
// its torch expression when dropout is active.
#pragma once

#include <memory>

#include "engine/linear.h"

namespace synthpert::engine {

// x (N, K) -> y (N, O) for `base` (dense or NF4 weight, no bias) and its adapter.
torch::Tensor lora_linear(const torch::Tensor& x_NK, const Linear& base, const LoraWeights& lora);

}  // namespace synthpert::engine
