// Helpers for the memory-bound row-wise kernels (RMSNorm, SwiGLU, RoPE, the
// cross-entropy row pass): vector loads/stores of V elements converted to
// fp32, a block-wide sum, and the launcher checks they share.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/common.cuh"

// Turns a runtime choice of the 8-wide or scalar path into the constant V.
#define SPK_VEC_SWITCH(vec8, CONST_NAME, ...) \
  [&] {                                      \
    if (vec8) {                              \
      constexpr int CONST_NAME = 8;          \
      return __VA_ARGS__();                  \
    } else {                                 \
      constexpr int CONST_NAME = 1;          \
      return __VA_ARGS__();                  \
    }                                        \
  }()

namespace synthpert::kernels::rowwise {

// V elements of T as fp32. V = 8 moves 16 bytes per access for bf16/f16 and
// needs 16-byte aligned addresses; V = 1 is the scalar path for odd widths,
// odd strides or unaligned views.
template <typename T, int V>
__device__ __forceinline__ void load(const T* p, float (&out)[V]) {
  if constexpr (V == 8 && sizeof(T) == 2) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = to_float(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = to_float(p[i]);
  }
}

template <typename T, int V>
__device__ __forceinline__ void store(T* p, const float (&in)[V]) {
  if constexpr (V == 8 && sizeof(T) == 2) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = from_float<T>(in[i]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = from_float<T>(in[i]);
  }
}

// Rounds through T and back (the value an eager op would have stored).
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_float(from_float<T>(v));
}

// Sum over the block; every thread gets the result. `scratch` holds 32 floats.
// Ends with a barrier, so scratch can be reused right after.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = (blockDim.x + 31) / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];  // same order in every thread
  __syncthreads();
  return total;
}

// The 8-wide path applies when every row start of every view is 16-byte aligned.
inline bool vec8_ok(const void* p, int64_t row_stride, int64_t width) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && row_stride % 8 == 0 && width % 8 == 0;
}

// A [rows, width] view with a row stride in elements (width contiguous).
inline void check_rows(const void* p, int64_t rows, int64_t width, int64_t row_stride, const char* op,
                       const char* name) {
  const std::string n(name);
  SPK_REQUIRE(p != nullptr || rows == 0, op, n + " must not be null");
  SPK_REQUIRE(row_stride >= width || rows <= 1, op,
              n + " row_stride (" + std::to_string(row_stride) + ") must be >= width (" + std::to_string(width) +
                  ") so rows do not overlap");
  SPK_REQUIRE(reinterpret_cast<uintptr_t>(p) % 2 == 0, op, n + " must be 2-byte aligned");
}

inline void check_half_dtype(DType t, const char* op) {
  SPK_REQUIRE(t == DType::kBF16 || t == DType::kF16, op, std::string("dtype must be bf16 or f16, got ") + dtype_name(t));
}

}  // namespace synthpert::kernels::rowwise
