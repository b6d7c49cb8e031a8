// NF4 weights on the device that holds them, and the QLoRA base-layer op.
//
// On CUDA, quantisation, dequantisation and y = x W^T run in kernels/nf4
// (the same format as engine/nf4, byte for byte); on the CPU in engine/nf4.
//
// nf4_linear keeps only the 4-bit weight for its backward (dx = dy W, with W
// dequantised again there), never a dense copy: autograd through
// x.mm(dequantised W^T) would hold every layer's dense weight until the
// backward, which is the memory QLoRA exists to save. The base weight is
// frozen, so the op has no weight gradient.
#pragma once

#include <memory>

#include "engine/nf4.h"

namespace synthpert::engine {

// Quantises on the weight's device (CUDA kernel, or engine/nf4 on the CPU),
// with double-quantised scales when asked (engine/nf4.h).
Nf4Weight nf4_quantize_device(const torch::Tensor& weight_OI, bool double_quant = false);

// Dense (O, I) weight in w.dtype, on the device of w.packed.
torch::Tensor nf4_dequantize_device(const Nf4Weight& w);

// y = x W^T over the last axis of x; differentiable in x.
torch::Tensor nf4_linear(const torch::Tensor& x, const std::shared_ptr<const Nf4Weight>& w);

}  // namespace synthpert::engine
