// The CUDA runtime and cuBLAS calls kernels/ and its tests make, answered on
// the host for the emulation build (tests/simt/): "device" memory is host
// memory, every call is synchronous, and one emulated device reports compute
// capability 9.0. The signatures come from the real headers, so a mismatch
// does not compile. Linked instead of cudart and cuBLAS.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "tests/simt/simt_runtime.h"
#include "tests/simt/simt_tensor_map.h"

namespace {

std::mutex g_mutex;
std::string g_last_fault;  // the text behind cudaErrorLaunchFailure

cudaError_t pending_launch_error() {
  if (!synthpert::simt::has_launch_error()) return cudaSuccess;
  const std::string fault = synthpert::simt::take_launch_error();
  std::fprintf(stderr, "simt: kernel launch failed: %s\n", fault.c_str());
  std::lock_guard<std::mutex> lock(g_mutex);
  g_last_fault = "unspecified launch failure (emulated: " + fault + ")";
  return cudaErrorLaunchFailure;
}

// Streams are only compared and passed on; each is a distinct address.
struct EmulatedStream {
  int unused;
};

float load_element(const void* base, cudaDataType type, size_t index) {
  switch (type) {
    case CUDA_R_32F: return static_cast<const float*>(base)[index];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(base)[index]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    default: std::abort();
  }
}

void store_element(void* base, cudaDataType type, size_t index, float v) {
  switch (type) {
    case CUDA_R_32F: static_cast<float*>(base)[index] = v; break;
    case CUDA_R_16F: static_cast<__half*>(base)[index] = __float2half_rn(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(v); break;
    default: std::abort();
  }
}

bool supported(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

}  // namespace

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 4; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(synthpert::simt::kOptInSharedLimit); return cudaSuccess;
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  // 256-byte aligned like the driver's; exactly `bytes` long, so that the
  // address sanitizer sees an access one past the end.
  if (posix_memalign(ptr, 256, bytes == 0 ? 1 : bytes) != 0) return cudaErrorMemoryAllocation;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (bytes) std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) { return cudaMemset(dst, value, bytes); }

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = reinterpret_cast<cudaStream_t>(new EmulatedStream{});
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) { return cudaStreamCreate(stream); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<EmulatedStream*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return pending_launch_error(); }

cudaError_t cudaDeviceSynchronize() { return pending_launch_error(); }

cudaError_t cudaGetLastError() { return pending_launch_error(); }

cudaError_t cudaPeekAtLastError() {
  return synthpert::simt::has_launch_error() ? cudaErrorLaunchFailure : cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorLaunchFailure: {
      std::lock_guard<std::mutex> lock(g_mutex);
      return g_last_fault.c_str();  // stable until the next failure
    }
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return "emulated CUDA error";
  }
}

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > synthpert::simt::kOptInSharedLimit) return cudaErrorInvalidValue;
    synthpert::simt::set_dynamic_shared_limit(kernel, size_t(value));
  }
  return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void*) {
  std::memset(attr, 0, sizeof(*attr));
  attr->maxThreadsPerBlock = 1024;
  // The emulated device is compute capability 9.0 and runs the sm_90a code
  // too (the wgmma attention forward, include/kernels/attention_wgmma_ptx.cuh).
  attr->ptxVersion = attr->binaryVersion = 90;
  return cudaSuccess;
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = reinterpret_cast<cublasHandle_t>(new EmulatedStream{});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete reinterpret_cast<EmulatedStream*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }

// Column-major C = alpha op(A) op(B) + beta C with fp32 accumulation, as
// CUBLAS_COMPUTE_32F; C is not read when beta is 0.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute != CUBLAS_COMPUTE_32F || !supported(Atype) || !supported(Btype) || !supported(Ctype))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      float acc = 0.f;
      for (int l = 0; l < k; ++l) {
        const size_t ai = ta ? size_t(l) + size_t(i) * lda : size_t(i) + size_t(l) * lda;
        const size_t bi = tb ? size_t(j) + size_t(l) * ldb : size_t(l) + size_t(j) * ldb;
        acc += load_element(A, Atype, ai) * load_element(B, Btype, bi);
      }
      const size_t ci = size_t(i) + size_t(j) * ldc;
      const float prior = be == 0.f ? 0.f : be * load_element(C, Ctype, ci);
      store_element(C, Ctype, ci, al * acc + prior);
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// Driver entry points, as a device build would get them without linking the
// driver: only cuTensorMapEncodeTiled, answered by the emulation's encoder.
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** function, unsigned int cuda_version,
                                             unsigned long long, cudaDriverEntryPointQueryResult* status) {
  if (std::strcmp(symbol, "cuTensorMapEncodeTiled") == 0 && cuda_version >= 12000) {
    *function = reinterpret_cast<void*>(&synthpert::simt::encode_tensor_map_tiled);
    if (status) *status = cudaDriverEntryPointSuccess;
    return cudaSuccess;
  }
  *function = nullptr;
  if (status) *status = cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}
