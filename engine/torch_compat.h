// The one place that knows which libtorch we build against.
//
// CI uses Debian's libtorch 1.13 (CPU); GPU hosts use the libtorch inside
// PyTorch 2.11. Engine code stays on the stable core of the C++ API; anything
// that differs between versions is wrapped here.
//
// <torch/types.h> (ATen + autograd-aware factories) is enough for the engine
// and compiles in about half the time of <torch/torch.h>.
#pragma once

#include <torch/types.h>
#include <torch/version.h>

#define SYNTHPERT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace synthpert::engine {

// Inference-only scope: no autograd bookkeeping (generation, logits, eval).
using InferenceGuard = c10::InferenceMode;

}  // namespace synthpert::engine
