// NF4 kernels and launchers (see nf4.h for the format).
//
// Bit-exactness with engine/nf4.cpp: the quantizer does the engine's fp32
// operations in the engine's order with explicitly rounded intrinsics
// (__fdiv_rn, __fmul_rn, __fsub_rn), so nvcc cannot contract them into FMAs,
// and scans the 16 codes in the same order with the same strict comparison.
// Dequantisation is one fp32 product rounded once to the dtype, as the
// engine's `codes[c] * absmax` followed by `.to(dtype)`.
#include "kernels/nf4.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <type_traits>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 65535u * 8u;
constexpr int kGemvRows = 8;  // x rows per fused-kernel pass

struct AbsmaxCode {
  float value[256];
};

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Thread 0 copies the 16 codes with constant indices (a dynamic index into
// a by-value kernel argument would make nvcc copy it to local memory).
__device__ __forceinline__ void copy_codes(const Nf4CodeTable& t, float* codes) {
  if (threadIdx.x == 0) {
#pragma unroll
    for (int c = 0; c < 16; ++c) codes[c] = t.value[c];
  }
}

// Index of the nearest of `count` codes to v; the first one on ties.
template <int count>
__device__ __forceinline__ int nearest_code(const float* codes, float v) {
  int best = 0;
  float best_d = fabsf(__fsub_rn(codes[0], v));
#pragma unroll 16
  for (int c = 1; c < count; ++c) {
    const float d = fabsf(__fsub_rn(codes[c], v));
    if (d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

template <typename T>
__device__ __forceinline__ float load_flat(const T* w, int64_t k, int64_t in_features, int64_t row_stride) {
  const int64_t o = k / in_features;
  return to_float(w[o * row_stride + (k - o * in_features)]);
}

// One warp per 64-value block: lane l owns values 2l and 2l+1, i.e. byte l.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const T* w, int64_t in_features, int64_t row_stride, int64_t blocks, Nf4CodeTable table,
                    uint8_t* packed, float* absmax) {
  __shared__ float codes[16];
  copy_codes(table, codes);
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (kThreads / 32);
  for (int64_t b = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; b < blocks; b += warps) {
    const int64_t k = b * kNf4Block + 2 * lane;
    const float v0 = load_flat(w, k, in_features, row_stride), v1 = load_flat(w, k + 1, in_features, row_stride);
    // fmaxf drops NaN like the engine's std::max(m, fabs(x)).
    float m = fmaxf(fabsf(v0), fabsf(v1));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    const float inv = m > 0.f ? __fdiv_rn(1.f, m) : 0.f;
    const int hi = nearest_code<16>(codes, __fmul_rn(v0, inv));
    const int lo = nearest_code<16>(codes, __fmul_rn(v1, inv));
    packed[b * 32 + lane] = uint8_t((hi << 4) | lo);
    if (lane == 0) absmax[b] = m;
  }
}

// offset = mean of the nb absmax values (fp64 sum; one block).
__global__ void __launch_bounds__(1024) absmax_mean_kernel(const float* absmax, int64_t blocks, float* offset) {
  __shared__ double part[32];
  double s = 0.0;
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) s += absmax[b];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += part[w];
    *offset = float(total / double(blocks));
  }
}

// One 256-thread block per 256 absmax values: scale = max |absmax - offset|,
// code = nearest dynamic-code index of (absmax - offset) * (1 / scale).
__global__ void __launch_bounds__(kNf4AbsmaxBlock)
    absmax_quantize_kernel(const float* absmax, int64_t blocks, const float* offset, AbsmaxCode table,
                           uint8_t* absmax_code, float* absmax_scale) {
  __shared__ float codes[256];
  __shared__ float warp_max[kNf4AbsmaxBlock / 32];
  codes[threadIdx.x] = table.value[threadIdx.x];
  const int64_t b = int64_t(blockIdx.x) * kNf4AbsmaxBlock + threadIdx.x;
  const float c = b < blocks ? __fsub_rn(absmax[b], *offset) : 0.f;
  float m = fabsf(c);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  m = 0.f;
  for (int w = 0; w < kNf4AbsmaxBlock / 32; ++w) m = fmaxf(m, warp_max[w]);
  const float inv = m > 0.f ? __fdiv_rn(1.f, m) : 0.f;
  if (b < blocks) absmax_code[b] = uint8_t(nearest_code<256>(codes, __fmul_rn(c, inv)));
  if (threadIdx.x == 0) absmax_scale[blockIdx.x] = m;
}

// The scales as the kernels read them; code8 is the shared-memory copy of the
// dynamic code (only filled when double quantised).
struct ScaleSource {
  const float* absmax;
  const uint8_t* code;
  const float* scale;
  const float* offset;
};

__device__ __forceinline__ float block_scale(const ScaleSource& s, const float* code8, int64_t b) {
  if (s.absmax) return s.absmax[b];
  return __fadd_rn(__fmul_rn(code8[s.code[b]], s.scale[b / kNf4AbsmaxBlock]), *s.offset);
}

// Copies the code tables into shared memory (blockDim.x >= 256).
__device__ __forceinline__ void load_tables(const Nf4CodeTable& t, const AbsmaxCode& t8, bool dq, float* codes,
                                            float* code8) {
  copy_codes(t, codes);
  if (dq) code8[threadIdx.x] = t8.value[threadIdx.x];
  __syncthreads();
}

__device__ __forceinline__ int nibble(const uint8_t* packed, int64_t k) {
  const uint8_t byte = packed[k >> 1];
  return (k & 1) ? (byte & 0xF) : (byte >> 4);
}

// 8 values to a 16-byte aligned address: one 16-byte store for bf16/f16,
// two for f32.
template <typename T>
__device__ __forceinline__ void store8(T* p, const float (&v)[8]) {
  if constexpr (sizeof(T) == 4) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    rowwise::store<T, 8>(p, v);
  }
}

// V = 32: a thread writes 32 consecutive values of one row (I % 32 == 0, so
// they share one row and one 64-value block: one scale) from one 16-byte load
// of packed codes; V = 8: 8 values from one 32-bit load (I % 8 == 0); V = 1:
// one value per thread. Wider threads amortise the scale (a dependent gather
// when double quantised) and the index arithmetic over more values.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    dequantize_kernel(const uint8_t* packed, ScaleSource src, Nf4CodeTable table, AbsmaxCode table8, int64_t n,
                      int64_t in_features, T* out, int64_t out_row_stride) {
  __shared__ float codes[16], code8[256];
  load_tables(table, table8, src.absmax == nullptr, codes, code8);
  const int64_t stride = int64_t(gridDim.x) * kThreads * V;
  for (int64_t k = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * V; k < n; k += stride) {
    const float s = block_scale(src, code8, k / kNf4Block);
    const int64_t o = k / in_features;
    T* dst = out + o * out_row_stride + (k - o * in_features);
    if constexpr (V >= 8) {
      constexpr int kWords = V / 8;  // 32-bit words of packed codes, 8 values each
      uint32_t q[kWords];
      if constexpr (kWords == 4) {
        const uint4 w4 = *reinterpret_cast<const uint4*>(packed + k / 2);
        q[0] = w4.x, q[1] = w4.y, q[2] = w4.z, q[3] = w4.w;
      } else {
        q[0] = *reinterpret_cast<const uint32_t*>(packed + k / 2);
      }
#pragma unroll
      for (int word = 0; word < kWords; ++word) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t byte = (q[word] >> (8 * j)) & 0xFFu;
          v[2 * j] = __fmul_rn(codes[byte >> 4], s);
          v[2 * j + 1] = __fmul_rn(codes[byte & 0xF], s);
        }
        store8(dst + 8 * word, v);
      }
    } else {
      *dst = from_float<T>(__fmul_rn(codes[nibble(packed, k)], s));
    }
  }
}

template <typename T>
__device__ __forceinline__ float dot8(const T* x, const float* w) {
  float xv[8];
  rowwise::load<T, 8>(x, xv);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) s = fmaf(xv[j], w[j], s);
  return s;
}

// y[n0 + r, o] = sum_i x[n0 + r, i] W[o, i] for r < rows (<= kGemvRows): one
// warp per output feature o. VEC: each lane takes 32 consecutive weights (one
// 16-byte load, one scale: I % 32 == 0 keeps them inside one 64-block) and
// x in 16-byte loads; otherwise one weight at a time.
template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads)
    gemv_kernel(const T* x, int64_t x_row_stride, int rows, const uint8_t* packed, ScaleSource src,
                Nf4CodeTable table, AbsmaxCode table8, int64_t out_features, int64_t in_features, T* y,
                int64_t y_row_stride) {
  __shared__ float codes[16], code8[256];
  load_tables(table, table8, src.absmax == nullptr, codes, code8);
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (kThreads / 32);
  for (int64_t o = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32; o < out_features; o += warps) {
    float acc[kGemvRows] = {};
    const int64_t row_k = o * in_features;
    if constexpr (VEC) {
      for (int64_t i = int64_t(lane) * 32; i < in_features; i += 32 * 32) {
        const uint4 q = *reinterpret_cast<const uint4*>(packed + (row_k + i) / 2);
        const float s = block_scale(src, code8, (row_k + i) / kNf4Block);
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
        float w[32];
#pragma unroll
        for (int j = 0; j < 16; ++j) {
          const uint32_t byte = (words[j / 4] >> (8 * (j % 4))) & 0xFFu;
          w[2 * j] = codes[byte >> 4] * s;
          w[2 * j + 1] = codes[byte & 0xF] * s;
        }
#pragma unroll
        for (int r = 0; r < kGemvRows; ++r) {
          if (r >= rows) break;
          const T* xr = x + r * x_row_stride + i;
          acc[r] += dot8(xr, w) + dot8(xr + 8, w + 8) + dot8(xr + 16, w + 16) + dot8(xr + 24, w + 24);
        }
      }
    } else {
      for (int64_t i = lane; i < in_features; i += 32) {
        const float w = codes[nibble(packed, row_k + i)] * block_scale(src, code8, (row_k + i) / kNf4Block);
#pragma unroll
        for (int r = 0; r < kGemvRows; ++r)
          if (r < rows) acc[r] = fmaf(to_float(x[r * x_row_stride + i]), w, acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
      if (lane == 0 && r < rows) y[r * y_row_stride + o] = from_float<T>(acc[r]);
    }
  }
}

unsigned grid_for(int64_t work_items, int per_block) {
  return std::max(1u, std::min<unsigned>(kMaxBlocks, ceil_div(work_items, per_block)));
}

ScaleSource source_of(const Nf4Scales& s) { return {s.absmax, s.absmax_code, s.absmax_scale, s.absmax_offset}; }

AbsmaxCode absmax_code_table(const Nf4Scales& s) {
  AbsmaxCode t{};
  std::copy(std::begin(s.absmax_codes.value), std::end(s.absmax_codes.value), t.value);
  return t;
}

void check_codes(const Nf4CodeTable& t, const char* op) {
  for (int i = 1; i < 16; ++i)
    SPK_REQUIRE(t.value[i - 1] < t.value[i], op,
                "codes must hold the 16 NF4 code values in ascending order (engine::nf4_code_values())");
}

int64_t check_shape(int64_t out_features, int64_t in_features, const char* op) {
  SPK_REQUIRE(out_features >= 0 && in_features > 0, op, "out_features must be >= 0 and in_features > 0");
  const int64_t n = out_features * in_features;
  SPK_REQUIRE(n % kNf4Block == 0, op,
              "out_features * in_features (" + std::to_string(n) + ") must be a multiple of 64 (the NF4 block)");
  return n;
}

void check_scales(const Nf4Scales& s, const char* op) {
  if (!s.double_quant()) return;
  SPK_REQUIRE(s.absmax_code && s.absmax_scale && s.absmax_offset, op,
              "scales need absmax, or absmax_code + absmax_scale + absmax_offset when double quantised");
  for (int i = 1; i < 256; ++i)
    SPK_REQUIRE(s.absmax_codes.value[i - 1] < s.absmax_codes.value[i], op,
                "scales.absmax_codes must hold the 256 values of the 8-bit code in ascending order "
                "(engine::nf4_absmax_code_values())");
}

}  // namespace

size_t nf4_quantize_workspace_bytes(int64_t out_features, int64_t in_features, bool double_quant) {
  if (!double_quant) return 0;
  return align256(size_t(std::max<int64_t>(0, out_features * in_features / kNf4Block)) * sizeof(float));
}

size_t nf4_matmul_workspace_bytes(int64_t rows, int64_t out_features, int64_t in_features) {
  if (rows <= kNf4FusedMaxRows) return 0;
  return align256(size_t(std::max<int64_t>(0, out_features)) * size_t(std::max<int64_t>(0, in_features)) * 2);
}

void nf4_quantize(const Nf4QuantizeArgs& a, cudaStream_t stream) {
  const char* op = "nf4_quantize";
  const int64_t n = check_shape(a.out_features, a.in_features, op);
  check_codes(a.codes, op);
  if (n == 0) return;
  SPK_REQUIRE(a.weight != nullptr && (a.weight_row_stride >= a.in_features || a.out_features == 1), op,
              "weight must be an [out_features, in_features] view with row stride >= in_features");
  SPK_REQUIRE(a.packed != nullptr, op, "packed must hold out_features * in_features / 2 bytes");
  check_scales(a.scales, op);
  const bool dq = a.scales.double_quant();
  SPK_REQUIRE(!dq || (a.workspace && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0), op,
              "double quantisation needs a 256-byte aligned workspace of nf4_quantize_workspace_bytes()");
  const int64_t blocks = n / kNf4Block;
  float* absmax = dq ? static_cast<float*>(a.workspace) : a.scales.absmax;
  const unsigned grid = grid_for(blocks, kThreads / 32);
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    quantize_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(a.weight), a.in_features,
                                                      a.weight_row_stride, blocks, a.codes, a.packed, absmax);
  };
  switch (a.dtype) {
    case DType::kBF16: launch(__nv_bfloat16{}); break;
    case DType::kF16: launch(__half{}); break;
    case DType::kF32: launch(float{}); break;
  }
  SPK_CHECK_LAUNCH(op);
  if (!dq) return;
  absmax_mean_kernel<<<1, 1024, 0, stream>>>(absmax, blocks, a.scales.absmax_offset);
  SPK_CHECK_LAUNCH(op);
  absmax_quantize_kernel<<<ceil_div(blocks, kNf4AbsmaxBlock), kNf4AbsmaxBlock, 0, stream>>>(
      absmax, blocks, a.scales.absmax_offset, absmax_code_table(a.scales), a.scales.absmax_code, a.scales.absmax_scale);
  SPK_CHECK_LAUNCH(op);
}

void nf4_dequantize(const Nf4DequantizeArgs& a, cudaStream_t stream) {
  const char* op = "nf4_dequantize";
  SPK_REQUIRE(a.dtype == DType::kBF16 || a.dtype == DType::kF16 || a.dtype == DType::kF32, op,
              std::string("dtype must be bf16, f16 or f32, got ") + dtype_name(a.dtype));
  const int64_t n = check_shape(a.out_features, a.in_features, op);
  check_codes(a.codes, op);
  if (n == 0) return;
  SPK_REQUIRE(a.packed != nullptr, op, "packed must not be null");
  check_scales(a.scales, op);
  rowwise::check_rows(a.out, a.out_features, a.in_features, a.out_row_stride, op, "out");
  SPK_REQUIRE(a.dtype != DType::kF32 || reinterpret_cast<uintptr_t>(a.out) % 4 == 0, op,
              "out must be 4-byte aligned for f32");
  // For f32 the 8-wide path's 16-byte alignment holds as well: rows start at
  // multiples of 8 elements (32 bytes) from a 16-byte aligned base.
  const bool vec8 = rowwise::vec8_ok(a.out, a.out_row_stride, a.in_features) &&
                    reinterpret_cast<uintptr_t>(a.packed) % 4 == 0;
  const bool vec32 = vec8 && a.in_features % 32 == 0 && reinterpret_cast<uintptr_t>(a.packed) % 16 == 0;
  const AbsmaxCode table8 = a.scales.double_quant() ? absmax_code_table(a.scales) : AbsmaxCode{};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto width) {
      constexpr int V = decltype(width)::value;
      dequantize_kernel<T, V><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(
          a.packed, source_of(a.scales), a.codes, table8, n, a.in_features, static_cast<T*>(a.out),
          a.out_row_stride);
    };
    if (vec32)
      launch(std::integral_constant<int, 32>{});
    else if (vec8)
      launch(std::integral_constant<int, 8>{});
    else
      launch(std::integral_constant<int, 1>{});
  };
  switch (a.dtype) {
    case DType::kBF16: run(__nv_bfloat16{}); break;
    case DType::kF16: run(__half{}); break;
    case DType::kF32: run(float{}); break;
  }
  SPK_CHECK_LAUNCH(op);
}

void nf4_matmul(const Nf4MatmulArgs& a, cudaStream_t stream) {
  const char* op = "nf4_matmul";
  rowwise::check_half_dtype(a.dtype, op);
  SPK_REQUIRE(a.rows >= 0, op, "rows must be >= 0");
  const int64_t n = check_shape(a.out_features, a.in_features, op);
  check_codes(a.codes, op);
  if (a.rows == 0 || n == 0) return;
  rowwise::check_rows(a.x, a.rows, a.in_features, a.x_row_stride, op, "x");
  rowwise::check_rows(a.y, a.rows, a.out_features, a.y_row_stride, op, "y");
  SPK_REQUIRE(a.packed != nullptr, op, "packed must not be null");
  check_scales(a.scales, op);
  const ScaleSource src = source_of(a.scales);
  const AbsmaxCode table8 = a.scales.double_quant() ? absmax_code_table(a.scales) : AbsmaxCode{};

  if (a.rows <= kNf4FusedMaxRows) {
    const bool vec = a.in_features % 32 == 0 && rowwise::vec8_ok(a.x, a.x_row_stride, a.in_features) &&
                     reinterpret_cast<uintptr_t>(a.packed) % 16 == 0;
    const unsigned grid = grid_for(a.out_features, kThreads / 32);
    SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
      for (int64_t r0 = 0; r0 < a.rows; r0 += kGemvRows) {
        const T* x = static_cast<const T*>(a.x) + r0 * a.x_row_stride;
        T* y = static_cast<T*>(a.y) + r0 * a.y_row_stride;
        const int rows = int(std::min<int64_t>(kGemvRows, a.rows - r0));
        if (vec)
          gemv_kernel<T, true><<<grid, kThreads, 0, stream>>>(x, a.x_row_stride, rows, a.packed, src, a.codes, table8,
                                                              a.out_features, a.in_features, y, a.y_row_stride);
        else
          gemv_kernel<T, false><<<grid, kThreads, 0, stream>>>(x, a.x_row_stride, rows, a.packed, src, a.codes,
                                                               table8, a.out_features, a.in_features, y,
                                                               a.y_row_stride);
      }
    });
    SPK_CHECK_LAUNCH(op);
    return;
  }

  SPK_REQUIRE(a.out_features <= INT32_MAX && a.in_features <= INT32_MAX && a.rows <= INT32_MAX, op,
              "sizes must fit cuBLAS int sizes");
  SPK_REQUIRE(a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, op,
              "more than 16 rows need a 256-byte aligned workspace of nf4_matmul_workspace_bytes()");
  SPK_REQUIRE(a.cublas != nullptr, op, "more than 16 rows need a cuBLAS handle");
  Nf4DequantizeArgs d;
  d.dtype = a.dtype;
  d.out_features = a.out_features;
  d.in_features = a.in_features;
  d.packed = a.packed;
  d.scales = a.scales;
  d.codes = a.codes;
  d.out = a.workspace;
  d.out_row_stride = a.in_features;
  nf4_dequantize(d, stream);
  SPK_REQUIRE(cublasSetStream(a.cublas, stream) == CUBLAS_STATUS_SUCCESS, op, "cublasSetStream failed");
  // Row-major y[N, O] = x[N, I] W[O, I]^T is column-major y^T = W x^T.
  const cudaDataType_t t = a.dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float one = 1.f, zero = 0.f;
  const cublasStatus_t st =
      cublasGemmEx(a.cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(a.out_features), int(a.rows), int(a.in_features), &one,
                   a.workspace, t, int(a.in_features), a.x, t, int(a.x_row_stride), &zero, a.y, t,
                   int(a.y_row_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  SPK_REQUIRE(st == CUBLAS_STATUS_SUCCESS, op, "GEMM failed with cuBLAS status " + std::to_string(int(st)));
}

}  // namespace synthpert::kernels
