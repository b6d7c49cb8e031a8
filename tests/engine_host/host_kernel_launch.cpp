// engine/kernel_launch.h for the host emulation builds: CPU tensors in bf16
// or f16 take the engine's kernel branches, whose launches then reach the
// reference launchers of this folder (test_engine_host) or the emulated
// kernels of tests/simt (test_engine_simt). No stream, no device.
#include "engine/kernel_launch.h"

namespace synthpert::engine {

bool kernels_apply(torch::Device device, torch::ScalarType dtype) {
  return device.is_cpu() && (dtype == torch::kBFloat16 || dtype == torch::kFloat16);
}

cudaStream_t kernel_stream(const torch::Tensor&) { return nullptr; }
// A handle nobody dereferences: the reference launchers ignore it and the
// emulated cuBLAS only requires one.
cublasHandle_t kernel_cublas(const torch::Tensor&) {
  static int placeholder;
  return reinterpret_cast<cublasHandle_t>(&placeholder);
}
// A small GPU, so a long row takes the split-K branch.
int kernel_sm_count(const torch::Tensor&) { return 2; }

kernels::DType kernel_dtype(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return kernels::DType::kBF16;
    case torch::kFloat16: return kernels::DType::kF16;
    default: return kernels::DType::kF32;
  }
}

void use_kernel_device(const torch::Tensor&) {}

}  // namespace synthpert::engine
