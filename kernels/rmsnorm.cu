// RMSNorm kernels and launchers (layouts and semantics in rmsnorm.h).
//
// Forward: one 256-thread block per row (grid-stride over rows). Rows of up
// to 4096 elements on the 8-wide path stay in registers between the sum of
// squares and the normalisation (read once); wider or unaligned rows are
// read twice, the second time mostly from L1/L2 (on an H200 that version
// moved 72% of HBM peak at 16384 x 4096; the register one is not yet
// measured).
//
// Backward: a grid of partial_blocks(rows) blocks, each walking its rows; per
// row one block reduction for sum(dy * w * n), and, when dweight is wanted,
// each thread adds dy * round(n) for the columns it owns into its own
// partial sums (no atomics: the column -> thread map is the same for every
// row). Rows of up to 4096 elements on the 8-wide path keep x, dy, w and
// those sums in registers (x and dy read once); others read x, dy and w twice
// and keep the sums in a shared-memory row. A second kernel sums the
// per-block rows in a fixed order, so dweight is deterministic: 32 columns per
// block, 8 lanes each summing every 8th partial row, then the 8 lane sums in
// lane order.
//
// On an H200 (benchmarks/results/kernels-nvidia-h200-2026-12-04.md) the
// backward moved 31% of HBM peak at 16384 x 4096 in its first form: every row
// read twice, at most 256 blocks (two per SM) and a reduction of 16 blocks,
// one thread per column walking 256 partial rows. The present form is not
// yet measured.
#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 256;
// Backward blocks: at least 16 rows each once rows are many (a partial row of
// C floats written and read back costs about what 1.3 rows of x, dy and dx
// move), at most 1024 (about 8 per SM on 132 SMs), and never fewer than
// min(rows, 256).
constexpr int64_t kMaxPartials = 1024;
constexpr int64_t kRowsPerPartial = 16;
constexpr int64_t kMinPartials = 256;
constexpr int kReduceCols = 32, kReduceLanes = kThreads / kReduceCols;
// Rows up to kThreads x 8 x kRegisterChunks = 4096 elements (the 8-wide path)
// stay in registers in both directions.
constexpr int kRegisterChunks = 2;

// y[c..c+V) = w * round(v * rstd), v being x[c..c+V) in fp32.
template <typename T, int V>
__device__ __forceinline__ void normalise_store(const T* w, float (&v)[V], float rstd, T* y) {
  float wv[V];
  rowwise::load<T, V>(w, wv);
#pragma unroll
  for (int i = 0; i < V; ++i) v[i] = wv[i] * rowwise::round_to<T>(v[i] * rstd);
  rowwise::store<T, V>(y, v);
}

// kChunks > 0: each thread keeps its kChunks slices of V elements of the row
// in registers (width <= kThreads * V * kChunks); 0: the row is read twice.
template <typename T, int V, int kChunks>
__global__ void __launch_bounds__(kThreads) rmsnorm_fwd_kernel(RmsNormForwardArgs a) {
  __shared__ float scratch[32];
  const T* w = static_cast<const T*>(a.weight);
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(a.x) + r * a.x_row_stride;
    T* y = static_cast<T*>(a.y) + r * a.y_row_stride;
    float ss = 0.f;
    float v[kChunks > 0 ? kChunks : 1][V];  // the row's slices (kChunks > 0 only)
    if constexpr (kChunks > 0) {
#pragma unroll
      for (int k = 0; k < kChunks; ++k) {
        const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
        if (c < a.width) {
          rowwise::load<T, V>(x + c, v[k]);
#pragma unroll
          for (int i = 0; i < V; ++i) ss += v[k][i] * v[k][i];
        }
      }
    } else {
      for (int64_t c = int64_t(threadIdx.x) * V; c < a.width; c += int64_t(blockDim.x) * V) {
        rowwise::load<T, V>(x + c, v[0]);
#pragma unroll
        for (int i = 0; i < V; ++i) ss += v[0][i] * v[0][i];
      }
    }
    const float rstd = rsqrtf(rowwise::block_sum(ss, scratch) / float(a.width) + a.eps);
    if (a.rstd && threadIdx.x == 0) a.rstd[r] = rstd;
    if constexpr (kChunks > 0) {
#pragma unroll
      for (int k = 0; k < kChunks; ++k) {
        const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
        if (c < a.width) normalise_store<T, V>(w + c, v[k], rstd, y + c);
      }
    } else {
      for (int64_t c = int64_t(threadIdx.x) * V; c < a.width; c += int64_t(blockDim.x) * V) {
        rowwise::load<T, V>(x + c, v[0]);  // second read, mostly from L1/L2
        normalise_store<T, V>(w + c, v[0], rstd, y + c);
      }
    }
  }
}

// The backward's per-slice steps, shared by both variants. With n = x * rstd:
//   dot      += sum dy * w * n                 (then mean_dot = dot / C)
//   dx        = rstd * (dy * w - n * mean_dot)
//   dweight  += dy * round(n)   (the forward multiplied w by n rounded to T,
//                                so its gradient uses the same value)
template <int V>
__device__ __forceinline__ float slice_dot(const float (&x)[V], const float (&dy)[V], const float (&w)[V], float rstd) {
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < V; ++i) dot += dy[i] * w[i] * (x[i] * rstd);
  return dot;
}
template <typename T, int V>
__device__ __forceinline__ void slice_dx_store(const float (&x)[V], const float (&dy)[V], const float (&w)[V], float rstd,
                                               float mean_dot, T* dx) {
  float out[V];
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = rstd * (dy[i] * w[i] - x[i] * rstd * mean_dot);
  rowwise::store<T, V>(dx, out);
}
template <typename T, int V>
__device__ __forceinline__ void slice_dweight(const float (&x)[V], const float (&dy)[V], float rstd, float* dw) {
#pragma unroll
  for (int i = 0; i < V; ++i) dw[i] += dy[i] * rowwise::round_to<T>(x[i] * rstd);
}

// Any width: x, dy and w are read twice per row (the second time mostly from
// L1/L2) and the block's dweight row lives in shared memory.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads) rmsnorm_bwd_kernel(RmsNormBackwardArgs a, float* partial_GC) {
  __shared__ float scratch[32];
  extern __shared__ float dw_row[];  // [C] when dweight is wanted
  const bool want_dw = a.dweight != nullptr;
  if (want_dw)
    for (int64_t c = threadIdx.x; c < a.width; c += blockDim.x) dw_row[c] = 0.f;
  __syncthreads();
  const T* w = static_cast<const T*>(a.weight);
  const float inv_width = 1.f / float(a.width);
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(a.x) + r * a.x_row_stride;
    const T* dy = static_cast<const T*>(a.dy) + r * a.dy_row_stride;
    T* dx = static_cast<T*>(a.dx) + r * a.dx_row_stride;
    const float rstd = a.rstd[r];
    float dot = 0.f;
    for (int64_t c = int64_t(threadIdx.x) * V; c < a.width; c += int64_t(blockDim.x) * V) {
      float xv[V], dyv[V], wv[V];
      rowwise::load<T, V>(x + c, xv);
      rowwise::load<T, V>(dy + c, dyv);
      rowwise::load<T, V>(w + c, wv);
      dot += slice_dot<V>(xv, dyv, wv, rstd);
      // No atomics: the column -> thread map is the same for every row.
      if (want_dw) slice_dweight<T, V>(xv, dyv, rstd, dw_row + c);
    }
    const float mean_dot = rowwise::block_sum(dot, scratch) * inv_width;
    for (int64_t c = int64_t(threadIdx.x) * V; c < a.width; c += int64_t(blockDim.x) * V) {
      float xv[V], dyv[V], wv[V];
      rowwise::load<T, V>(x + c, xv);
      rowwise::load<T, V>(dy + c, dyv);
      rowwise::load<T, V>(w + c, wv);
      slice_dx_store<T, V>(xv, dyv, wv, rstd, mean_dot, dx + c);
    }
  }
  if (want_dw) {
    __syncthreads();
    for (int64_t c = threadIdx.x; c < a.width; c += blockDim.x) partial_GC[blockIdx.x * a.width + c] = dw_row[c];
  }
}

// Rows of up to kThreads * 8 * kChunks elements on the 8-wide path: each
// thread keeps its kChunks slices of w (for the block's life), of x and dy
// (for one row) and of its dweight partial sums in registers, so x and dy are
// read once and dweight needs no shared memory. The dweight partials add the
// block's rows in the same order as the kernel above.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads) rmsnorm_bwd_registers_kernel(RmsNormBackwardArgs a, float* partial_GC) {
  constexpr int V = 8;
  __shared__ float scratch[32];
  const bool want_dw = a.dweight != nullptr;
  float wv[kChunks][V], dw[kChunks][V];
  bool owned[kChunks];  // this thread's slice k lies inside the row
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
    owned[k] = c < a.width;
#pragma unroll
    for (int i = 0; i < V; ++i) wv[k][i] = dw[k][i] = 0.f;
    if (owned[k]) rowwise::load<T, V>(static_cast<const T*>(a.weight) + c, wv[k]);
  }
  const float inv_width = 1.f / float(a.width);
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(a.x) + r * a.x_row_stride;
    const T* dy = static_cast<const T*>(a.dy) + r * a.dy_row_stride;
    T* dx = static_cast<T*>(a.dx) + r * a.dx_row_stride;
    const float rstd = a.rstd[r];
    float xv[kChunks][V], dyv[kChunks][V];
    float dot = 0.f;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
      if (owned[k]) {
        rowwise::load<T, V>(x + c, xv[k]);
        rowwise::load<T, V>(dy + c, dyv[k]);
        dot += slice_dot<V>(xv[k], dyv[k], wv[k], rstd);
      }
    }
    const float mean_dot = rowwise::block_sum(dot, scratch) * inv_width;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
      if (owned[k]) {
        slice_dx_store<T, V>(xv[k], dyv[k], wv[k], rstd, mean_dot, dx + c);
        if (want_dw) slice_dweight<T, V>(xv[k], dyv[k], rstd, dw[k]);
      }
    }
  }
  if (want_dw) {
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int64_t c = (int64_t(threadIdx.x) + int64_t(k) * blockDim.x) * V;
      if (owned[k]) {
        // C % 8 == 0 and a 16-byte aligned workspace: two 16-byte stores.
        float4* p = reinterpret_cast<float4*>(partial_GC + blockIdx.x * a.width + c);
        p[0] = make_float4(dw[k][0], dw[k][1], dw[k][2], dw[k][3]);
        p[1] = make_float4(dw[k][4], dw[k][5], dw[k][6], dw[k][7]);
      }
    }
  }
}

// dweight[c] = sum over the G partial rows: lane l of column c sums rows
// l, l + 8, ... in order, then the 8 lane sums are added in lane order.
__global__ void __launch_bounds__(kThreads)
    rmsnorm_dweight_reduce_kernel(const float* partial_GC, int64_t blocks, int64_t width, float* dweight) {
  __shared__ float lane_sum[kReduceLanes][kReduceCols];
  const int col = int(threadIdx.x) % kReduceCols, lane = int(threadIdx.x) / kReduceCols;
  const int64_t c = int64_t(blockIdx.x) * kReduceCols + col;
  float s = 0.f;
  if (c < width) {
#pragma unroll 4
    for (int64_t g = lane; g < blocks; g += kReduceLanes) s += partial_GC[g * width + c];
  }
  lane_sum[lane][col] = s;
  __syncthreads();
  if (lane == 0 && c < width) {
    float total = 0.f;
#pragma unroll
    for (int l = 0; l < kReduceLanes; ++l) total += lane_sum[l][col];
    dweight[c] = total;
  }
}

int64_t partial_blocks(int64_t rows) {
  const int64_t wide = std::max((rows + kRowsPerPartial - 1) / kRowsPerPartial, std::min(rows, kMinPartials));
  return std::max<int64_t>(1, std::min(wide, kMaxPartials));
}

}  // namespace

size_t rmsnorm_backward_workspace_bytes(int64_t rows, int64_t width) {
  return size_t(partial_blocks(rows)) * size_t(std::max<int64_t>(width, 0)) * sizeof(float);
}

void rmsnorm_forward(const RmsNormForwardArgs& a, cudaStream_t stream) {
  const char* op = "rmsnorm_forward";
  rowwise::check_half_dtype(a.dtype, op);
  SPK_REQUIRE(a.rows >= 0, op, "rows must be >= 0");
  SPK_REQUIRE(a.width > 0, op, "width must be > 0");
  SPK_REQUIRE(std::isfinite(a.eps) && a.eps >= 0.f, op, "eps must be finite and >= 0");
  if (a.rows == 0) return;
  rowwise::check_rows(a.x, a.rows, a.width, a.x_row_stride, op, "x");
  rowwise::check_rows(a.y, a.rows, a.width, a.y_row_stride, op, "y");
  rowwise::check_rows(a.weight, 1, a.width, a.width, op, "weight");
  const bool vec8 = rowwise::vec8_ok(a.x, a.x_row_stride, a.width) && rowwise::vec8_ok(a.y, a.y_row_stride, a.width) &&
                    rowwise::vec8_ok(a.weight, 0, a.width);
  const unsigned grid = unsigned(std::min<int64_t>(a.rows, 65535 * 8));
  const bool in_registers = vec8 && a.width <= int64_t(kThreads) * 8 * kRegisterChunks;
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    if (in_registers)
      rmsnorm_fwd_kernel<T, 8, kRegisterChunks><<<grid, kThreads, 0, stream>>>(a);
    else
      SPK_VEC_SWITCH(vec8, V, [&] { rmsnorm_fwd_kernel<T, V, 0><<<grid, kThreads, 0, stream>>>(a); });
  });
  SPK_CHECK_LAUNCH(op);
}

void rmsnorm_backward(const RmsNormBackwardArgs& a, cudaStream_t stream) {
  const char* op = "rmsnorm_backward";
  rowwise::check_half_dtype(a.dtype, op);
  SPK_REQUIRE(a.rows >= 0, op, "rows must be >= 0");
  SPK_REQUIRE(a.width > 0, op, "width must be > 0");
  const bool want_dw = a.dweight != nullptr;
  SPK_REQUIRE(!want_dw || a.width <= kRmsNormMaxDweightWidth, op,
              "width must be <= " + std::to_string(kRmsNormMaxDweightWidth) + " when dweight is computed");
  SPK_REQUIRE(!want_dw || a.rows == 0 || (a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 16 == 0),
              op, "workspace must be 16-byte aligned and hold rmsnorm_backward_workspace_bytes() when dweight is set");
  if (a.rows == 0) {
    if (want_dw) check_cuda(cudaMemsetAsync(a.dweight, 0, size_t(a.width) * sizeof(float), stream), op, "zero dweight");
    return;
  }
  rowwise::check_rows(a.x, a.rows, a.width, a.x_row_stride, op, "x");
  rowwise::check_rows(a.dy, a.rows, a.width, a.dy_row_stride, op, "dy");
  rowwise::check_rows(a.dx, a.rows, a.width, a.dx_row_stride, op, "dx");
  rowwise::check_rows(a.weight, 1, a.width, a.width, op, "weight");
  SPK_REQUIRE(a.rstd != nullptr, op, "rstd must be the forward's [rows] fp32 output");
  const bool vec8 = rowwise::vec8_ok(a.x, a.x_row_stride, a.width) && rowwise::vec8_ok(a.dy, a.dy_row_stride, a.width) &&
                    rowwise::vec8_ok(a.dx, a.dx_row_stride, a.width) && rowwise::vec8_ok(a.weight, 0, a.width);
  const int64_t blocks = partial_blocks(a.rows);
  float* partial = static_cast<float*>(a.workspace);
  const bool in_registers = vec8 && a.width <= int64_t(kThreads) * 8 * kRegisterChunks;
  const size_t smem = want_dw && !in_registers ? size_t(a.width) * sizeof(float) : 0;
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    if (in_registers) {
      rmsnorm_bwd_registers_kernel<T, kRegisterChunks><<<unsigned(blocks), kThreads, 0, stream>>>(a, partial);
      return;
    }
    SPK_VEC_SWITCH(vec8, V, [&] {
      auto kernel = rmsnorm_bwd_kernel<T, V>;
      // The dweight row (up to 48 KiB at the widest C) plus the static
      // scratch passes the 48 KiB a launch gets without opting in.
      if (smem > 0)
        check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), op,
                   "setting dynamic shared memory");
      kernel<<<unsigned(blocks), kThreads, smem, stream>>>(a, partial);
    });
  });
  SPK_CHECK_LAUNCH(op);
  if (want_dw) {
    rmsnorm_dweight_reduce_kernel<<<ceil_div(a.width, kReduceCols), kThreads, 0, stream>>>(partial, blocks, a.width,
                                                                                         a.dweight);
    SPK_CHECK_LAUNCH(op);
  }
}

}  // namespace synthpert::kernels
