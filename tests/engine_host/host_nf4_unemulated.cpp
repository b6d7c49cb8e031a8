// kernels/nf4.h's launchers are not emulated on the host yet. engine/nf4_linear.cpp
// only calls them for CUDA tensors, which this build never has; these
// definitions keep the link independent of the optimiser removing those calls.
#include <stdexcept>

#include "kernels/nf4.h"

namespace synthpert::kernels {

size_t nf4_matmul_workspace_bytes(int64_t, int64_t, int64_t) { throw std::logic_error("nf4: not emulated on the host"); }
void nf4_quantize(const Nf4QuantizeArgs&, cudaStream_t) { throw std::logic_error("nf4: not emulated on the host"); }
void nf4_dequantize(const Nf4DequantizeArgs&, cudaStream_t) { throw std::logic_error("nf4: not emulated on the host"); }
void nf4_matmul(const Nf4MatmulArgs&, cudaStream_t) { throw std::logic_error("nf4: not emulated on the host"); }

}  // namespace synthpert::kernels
