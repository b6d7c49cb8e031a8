// fp64 CPU reference for kernels/swiglu.cu: out = silu(gate) * up and its
// gradients. Legend: R rows, I width; buffers contiguous [R, I].
#pragma once

#include <vector>

namespace synthpert::reference {

std::vector<double> swiglu_forward_ref(const std::vector<double>& gate, const std::vector<double>& up);

struct SwigluGrads {
  std::vector<double> dgate, dup;
};
SwigluGrads swiglu_backward_ref(const std::vector<double>& gate, const std::vector<double>& up,
                                const std::vector<double>& dout);

}  // namespace synthpert::reference
