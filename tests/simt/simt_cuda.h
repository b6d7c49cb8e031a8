// Prelude force-included (-include) when a kernels/*.cu file is compiled as
// host C++ for the emulation (see simt_runtime.h): the CUDA headers first,
// so their include guards hold, then the execution-space keywords, builtins
// and device intrinsics the kernels use, mapped onto the emulation.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "tests/simt/simt_runtime.h"

#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __grid_constant__
#undef __shared__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Kernel parameters are copied into the launch's closure and passed by const
// reference already; the address of one (a TMA map's) stays valid.
#define __grid_constant__
// One block runs at a time, so a function static is the block's shared copy.
#define __shared__ static

#define threadIdx (::synthpert::simt::place().thread)
#define blockIdx (::synthpert::simt::place().block)
#define blockDim (::synthpert::simt::place().block_dim)
#define gridDim (::synthpert::simt::place().grid_dim)

// The runtime's function-pointer overloads (nvcc declares them as templates).
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
template <typename... P>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, void (*kernel)(P...)) {
  return cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(kernel));
}

inline void __syncthreads() { ::synthpert::simt::sync_threads(); }

[[noreturn]] inline void __trap() { throw ::synthpert::simt::KernelFault("__trap()"); }

namespace synthpert::simt {
inline int linear_thread_id() {
  const ThreadPlace& p = place();
  return int((p.thread.z * p.block_dim.y + p.thread.y) * p.block_dim.x + p.thread.x);
}
inline int lane_id() { return linear_thread_id() % 32; }
template <typename T>
T shuffle_from(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 16, "shuffled values are at most 16 bytes");
  T out;
  warp_exchange(mask, &v, &out, sizeof(T), src);
  return out;
}
}  // namespace synthpert::simt

// Lane arithmetic as the CUDA programming guide describes the shuffles:
// `width` splits the warp into segments; down/up stay inside the caller's
// segment (else the caller's own value), xor may read earlier segments but
// not later ones.
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = ::synthpert::simt::lane_id(), base = lane & ~(width - 1);
  const int src = lane ^ lane_mask;
  return ::synthpert::simt::shuffle_from(mask, v, src >= base + width ? lane : src);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::synthpert::simt::lane_id(), base = lane & ~(width - 1);
  const int src = lane + int(delta);
  return ::synthpert::simt::shuffle_from(mask, v, src >= base + width ? lane : src);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::synthpert::simt::lane_id(), base = lane & ~(width - 1);
  const int src = lane - int(delta);
  return ::synthpert::simt::shuffle_from(mask, v, src < base ? lane : src);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = ::synthpert::simt::lane_id(), base = lane & ~(width - 1);
  return ::synthpert::simt::shuffle_from(mask, v, base + (src_lane & (width - 1)));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)::synthpert::simt::shuffle_from(mask, 0, ::synthpert::simt::lane_id());
}

// Device math: the host's IEEE operations (the device's fast approximations
// differ in the last bits, which the kernels' tolerances already allow).
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.f / a; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }

// Atomics: relaxed, as CUDA's are. The fibers run one at a time, so a plain
// read-modify-write would give the same numbers, but the ThreadSanitizer
// build must see an atomic access, which races with no other atomic one.
template <typename T>
T atomicAdd(T* address, T value) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T sum = old + value;
  while (!__atomic_compare_exchange(address, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) sum = old + value;
  return old;
}

// CUDA's integer min/max overloads (device code calls them unqualified).
#define SIMT_MINMAX(T)                              \
  inline T min(T a, T b) { return a < b ? a : b; } \
  inline T max(T a, T b) { return a < b ? b : a; }
SIMT_MINMAX(int)
SIMT_MINMAX(unsigned)
SIMT_MINMAX(long)
SIMT_MINMAX(unsigned long)
SIMT_MINMAX(long long)
SIMT_MINMAX(unsigned long long)
#undef SIMT_MINMAX
