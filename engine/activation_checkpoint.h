// Activation checkpointing: run a block without keeping its intermediate
// activations and recompute them during backward.
//
// The block's parameters are not inputs of the autograd node: in backward the
// block is re-run with grad enabled and backpropagated from inside the node
// ("reentrant" checkpointing), which accumulates gradients straight into the
// parameter leaves. The default generator of the input's device is restored to
// its forward-time state before the recompute, so dropout masks repeat.
#pragma once

#include <functional>

#include "engine/torch_compat.h"

namespace synthpert::engine {

using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// Returns block(x); only x is kept for backward. `x` must require grad (the
// caller makes a frozen embedding's output a leaf that does), else there is no
// backward to recompute in.
torch::Tensor checkpointed_block(const BlockFn& block, const torch::Tensor& x);

}  // namespace synthpert::engine
