#include "engine/kernel_launch.h"

#include <map>

#include "common/error.h"

#if defined(SYNTHPERT_HAVE_KERNELS) && defined(SYNTHPERT_ENGINE_CUDA)
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <cstdio>

#include "kernels/device_support.h"
#endif

namespace synthpert::engine {

#if defined(SYNTHPERT_HAVE_KERNELS) && defined(SYNTHPERT_ENGINE_CUDA)
namespace {

// Asked once per device (kernels/device_support.h): a device this build has
// no code for runs torch's ops, with one warning, instead of failing at its
// first launch.
bool device_runs_kernels(int device) {
  constexpr int kKnown = 64;
  static std::atomic<int8_t> known[kKnown] = {};  // 0 not asked, 1 yes, -1 no
  if (device >= 0 && device < kKnown && known[device] != 0) return known[device] > 0;
  const bool yes = kernels::device_has_kernel_image(device);
  if (device >= 0 && device < kKnown && known[device].exchange(yes ? 1 : -1) == 0 && !yes) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    std::fprintf(stderr,
                 "synthpert: warning: cuda:%d (compute capability %d.%d) has no code in this build's kernels "
                 "(SYNTHPERT_CUDA_ARCHS); torch's ops run in their place\n",
                 device, major, minor);
  }
  return yes;
}

}  // namespace
#endif

bool kernels_apply(torch::Device device, torch::ScalarType dtype) {
#if defined(SYNTHPERT_HAVE_KERNELS) && defined(SYNTHPERT_ENGINE_CUDA)
  if (!device.is_cuda() || (dtype != torch::kBFloat16 && dtype != torch::kFloat16)) return false;
  int index = device.has_index() ? device.index() : -1;
  if (index < 0 && cudaGetDevice(&index) != cudaSuccess) return false;
  return device_runs_kernels(index);
#else
  (void)device, (void)dtype;
  return false;
#endif
}

#if defined(SYNTHPERT_HAVE_KERNELS)
kernels::DType kernel_dtype(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return kernels::DType::kBF16;
    case torch::kFloat16: return kernels::DType::kF16;
    default: return kernels::DType::kF32;
  }
}

cudaStream_t kernel_stream(const torch::Tensor& t) {
#if defined(SYNTHPERT_ENGINE_CUDA)
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
#else
  (void)t;
  return nullptr;
#endif
}

cublasHandle_t kernel_cublas(const torch::Tensor& t) {
  // Per thread: a launch sets the handle's stream and then runs its GEMMs, so
  // two threads sharing one handle could run on each other's stream. The
  // handles live as long as the process (destroying one at thread exit can
  // run after the CUDA context is gone).
  thread_local std::map<int, cublasHandle_t> handles;
  const int device = t.device().has_index() ? t.device().index() : 0;
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  use_kernel_device(t);
  cublasHandle_t h = nullptr;
  SP_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed on cuda:", device);
  handles[device] = h;
  return h;
}

int kernel_sm_count(const torch::Tensor& t) {
  const int device = t.device().has_index() ? t.device().index() : 0;
  int count = 0;
  SP_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) == cudaSuccess,
           "cudaDeviceGetAttribute(multiProcessorCount) failed on cuda:", device);
  return count;
}

void use_kernel_device(const torch::Tensor& t) {
  const int want = t.device().has_index() ? t.device().index() : 0;
  int now = -1;
  SP_CHECK(cudaGetDevice(&now) == cudaSuccess, "cudaGetDevice failed");
  if (now != want) SP_CHECK(cudaSetDevice(want) == cudaSuccess, "cudaSetDevice(", want, ") failed");
}

#endif

}  // namespace synthpert::engine
