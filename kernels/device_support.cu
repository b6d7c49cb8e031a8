#include "kernels/device_support.h"

#include <cuda_runtime.h>

namespace synthpert::kernels {
namespace {

// Compiled for the same architectures as every other kernel of the library,
// so whether its image loads says whether theirs do.
__global__ void image_probe_kernel() {}

}  // namespace

bool device_has_kernel_image(int device) {
  // An ordinal outside the devices is answered here rather than by a failing
  // cudaSetDevice: no CUDA call errs, so compute-sanitizer reports nothing.
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (device < 0 || device >= count) return false;
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (previous != device && cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  cudaFuncAttributes attributes{};
  const cudaError_t err = cudaFuncGetAttributes(&attributes, image_probe_kernel);
  // A missing image is not a sticky error; cleared, torch's next check of
  // the last error does not see it.
  if (err != cudaSuccess) cudaGetLastError();
  if (previous != device) cudaSetDevice(previous);
  return err == cudaSuccess;
}

}  // namespace synthpert::kernels
