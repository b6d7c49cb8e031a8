// SwiGLU kernels and launchers (see swiglu.h). Purely elementwise: a 2-D
// grid (column chunks x rows) so no thread divides by the width; 8-wide
// 16-byte accesses when every view allows them, scalar otherwise.
#include "kernels/swiglu.h"

#include <algorithm>
#include <string>

#include "kernels/rowwise.cuh"

namespace synthpert::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + __expf(-g)); }

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) swiglu_fwd_kernel(SwigluForwardArgs a) {
  const int64_t c = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (c >= a.width) return;
  for (int64_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    float g[V], u[V];
    rowwise::load<T, V>(static_cast<const T*>(a.gate) + r * a.gate_row_stride + c, g);
    rowwise::load<T, V>(static_cast<const T*>(a.up) + r * a.up_row_stride + c, u);
#pragma unroll
    for (int i = 0; i < V; ++i) g[i] = g[i] * sigmoid(g[i]) * u[i];
    rowwise::store<T, V>(static_cast<T*>(a.out) + r * a.out_row_stride + c, g);
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) swiglu_bwd_kernel(SwigluBackwardArgs a) {
  const int64_t c = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (c >= a.width) return;
  for (int64_t r = blockIdx.y; r < a.rows; r += gridDim.y) {
    float g[V], u[V], d[V], dg[V], du[V];
    rowwise::load<T, V>(static_cast<const T*>(a.gate) + r * a.gate_row_stride + c, g);
    rowwise::load<T, V>(static_cast<const T*>(a.up) + r * a.up_row_stride + c, u);
    rowwise::load<T, V>(static_cast<const T*>(a.dout) + r * a.dout_row_stride + c, d);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float s = sigmoid(g[i]);
      du[i] = d[i] * g[i] * s;
      dg[i] = d[i] * u[i] * s * (1.f + g[i] * (1.f - s));
    }
    rowwise::store<T, V>(static_cast<T*>(a.dgate) + r * a.dgate_row_stride + c, dg);
    rowwise::store<T, V>(static_cast<T*>(a.dup) + r * a.dup_row_stride + c, du);
  }
}

template <typename Args>
dim3 grid_for(const Args& a, bool vec8) {
  const int64_t per_row = vec8 ? a.width / 8 : a.width;
  return dim3(ceil_div(per_row, kThreads), unsigned(std::min(a.rows, kMaxGridY)));
}

void check_shape(DType dtype, int64_t rows, int64_t width, const char* op) {
  rowwise::check_half_dtype(dtype, op);
  SPK_REQUIRE(rows >= 0, op, "rows must be >= 0");
  SPK_REQUIRE(width > 0, op, "width must be > 0");
}

}  // namespace

void swiglu_forward(const SwigluForwardArgs& a, cudaStream_t stream) {
  const char* op = "swiglu_forward";
  check_shape(a.dtype, a.rows, a.width, op);
  if (a.rows == 0) return;
  rowwise::check_rows(a.gate, a.rows, a.width, a.gate_row_stride, op, "gate");
  rowwise::check_rows(a.up, a.rows, a.width, a.up_row_stride, op, "up");
  rowwise::check_rows(a.out, a.rows, a.width, a.out_row_stride, op, "out");
  const bool vec8 = rowwise::vec8_ok(a.gate, a.gate_row_stride, a.width) &&
                    rowwise::vec8_ok(a.up, a.up_row_stride, a.width) &&
                    rowwise::vec8_ok(a.out, a.out_row_stride, a.width);
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    SPK_VEC_SWITCH(vec8, V, [&] { swiglu_fwd_kernel<T, V><<<grid_for(a, vec8), kThreads, 0, stream>>>(a); });
  });
  SPK_CHECK_LAUNCH(op);
}

void swiglu_backward(const SwigluBackwardArgs& a, cudaStream_t stream) {
  const char* op = "swiglu_backward";
  check_shape(a.dtype, a.rows, a.width, op);
  if (a.rows == 0) return;
  rowwise::check_rows(a.gate, a.rows, a.width, a.gate_row_stride, op, "gate");
  rowwise::check_rows(a.up, a.rows, a.width, a.up_row_stride, op, "up");
  rowwise::check_rows(a.dout, a.rows, a.width, a.dout_row_stride, op, "dout");
  rowwise::check_rows(a.dgate, a.rows, a.width, a.dgate_row_stride, op, "dgate");
  rowwise::check_rows(a.dup, a.rows, a.width, a.dup_row_stride, op, "dup");
  const bool vec8 = rowwise::vec8_ok(a.gate, a.gate_row_stride, a.width) &&
                    rowwise::vec8_ok(a.up, a.up_row_stride, a.width) &&
                    rowwise::vec8_ok(a.dout, a.dout_row_stride, a.width) &&
                    rowwise::vec8_ok(a.dgate, a.dgate_row_stride, a.width) &&
                    rowwise::vec8_ok(a.dup, a.dup_row_stride, a.width);
  SPK_HALF_DTYPE_SWITCH(a.dtype, op, T, [&] {
    SPK_VEC_SWITCH(vec8, V, [&] { swiglu_bwd_kernel<T, V><<<grid_for(a, vec8), kThreads, 0, stream>>>(a); });
  });
  SPK_CHECK_LAUNCH(op);
}

}  // namespace synthpert::kernels
