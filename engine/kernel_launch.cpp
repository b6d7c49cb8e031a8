#include "engine/kernel_launch.h"

#include <map>
#include <mutex>

#include "common/error.h"

#if defined(SYNTHPERT_HAVE_KERNELS) && defined(SYNTHPERT_ENGINE_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

namespace synthpert::engine {

bool kernels_apply(torch::Device device, torch::ScalarType dtype) {
#if defined(SYNTHPERT_HAVE_KERNELS) && defined(SYNTHPERT_ENGINE_CUDA)
  return device.is_cuda() && (dtype == torch::kBFloat16 || dtype == torch::kFloat16);
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
  static std::mutex mu;
  static std::map<int, cublasHandle_t> handles;
  const int device = t.device().index();
  const std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  const KernelDeviceScope scope(t);
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

KernelDeviceScope::KernelDeviceScope(const torch::Tensor& t) {
  const int want = t.device().has_index() ? t.device().index() : 0;
  SP_CHECK(cudaGetDevice(&previous_) == cudaSuccess, "cudaGetDevice failed");
  if (previous_ != want) SP_CHECK(cudaSetDevice(want) == cudaSuccess, "cudaSetDevice(", want, ") failed");
}

KernelDeviceScope::~KernelDeviceScope() {
  int now = -1;
  if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

#endif

}  // namespace synthpert::engine
