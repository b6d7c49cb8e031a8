// What the engine's kernel entries share when they launch kernels/ code on a
// tensor's CUDA device: torch's current stream, a cuBLAS handle, the device.
// Compiled where the kernels are (SYNTHPERT_HAVE_KERNELS); without a CUDA
// libtorch (the CI compile check) the stream is the legacy default stream.
#pragma once

#if defined(SYNTHPERT_HAVE_KERNELS)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/torch_compat.h"

namespace synthpert::engine {

// The stream torch is using now on t's device.
cudaStream_t kernel_stream(const torch::Tensor& t);

// One cuBLAS handle per device, made on first use and kept for the process
// (kernels set its stream before they use it).
cublasHandle_t kernel_cublas(const torch::Tensor& t);

// Makes t's device the current one for its lifetime, then restores the last.
class KernelDeviceScope {
 public:
  explicit KernelDeviceScope(const torch::Tensor& t);
  ~KernelDeviceScope();
  KernelDeviceScope(const KernelDeviceScope&) = delete;
  KernelDeviceScope& operator=(const KernelDeviceScope&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace synthpert::engine
#endif
