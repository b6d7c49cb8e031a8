// Shared helpers for kernels/: error checks, dtype tags and conversions.
//
// Legend used across kernels/: B batch, T tokens (query), S tokens (key),
// H query heads, Hkv key/value heads, D head dim, C channels, V vocab, R rank.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace synthpert::kernels {

// Element types a launcher accepts; kernels are instantiated per type.
enum class DType { kF32, kF16, kBF16 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
  }
  return "?";
}

// Thrown by launchers for violated preconditions and failed launches; the
// message names the op, the tensor and the rule.
class KernelError : public std::runtime_error {
 public:
  explicit KernelError(const std::string& what) : std::runtime_error(what) {}
};

inline void check_cuda(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess)
    throw KernelError(std::string(op) + ": " + what + ": " + cudaGetErrorString(err));
}

// Checks a precondition inside a launcher.
#define SPK_REQUIRE(cond, op, msg)                                                      \
  do {                                                                                \
    if (!(cond)) throw ::synthpert::kernels::KernelError(std::string(op) + ": " + (msg)); \
  } while (0)

// Checks the launch that just happened (configuration errors surface here;
// asynchronous faults surface at the next synchronising call).
#define SPK_CHECK_LAUNCH(op) ::synthpert::kernels::check_cuda(cudaGetLastError(), op, "kernel launch")

// Turns a bf16/f16 DType into the element type TYPE_NAME for the lambda;
// another dtype throws "<op>: dtype must be bf16 or f16" (launchers check first).
#define SPK_HALF_DTYPE_SWITCH(dtype, op, TYPE_NAME, ...)                                 \
  [&] {                                                                                \
    if ((dtype) == ::synthpert::kernels::DType::kBF16) {                               \
      using TYPE_NAME = __nv_bfloat16;                                                 \
      return __VA_ARGS__();                                                            \
    } else if ((dtype) == ::synthpert::kernels::DType::kF16) {                         \
      using TYPE_NAME = __half;                                                        \
      return __VA_ARGS__();                                                            \
    }                                                                                  \
    throw ::synthpert::kernels::KernelError(std::string(op) + ": dtype must be bf16 or f16"); \
  }()

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

}  // namespace synthpert::kernels
