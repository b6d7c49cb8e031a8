// kernels/rmsnorm.h, kernels/swiglu.h and kernels/rope.h launchers, emulated
// on host memory with the fp64 references of tests/reference/kernels (see
// host_attention.cpp for why). The RMSNorm backward takes no eps, so the
// forward records its eps under the rstd buffer it wrote; the backward looks
// it up there, which also checks that it was given the forward's rstd.
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/rmsnorm_ref.h"
#include "tests/reference/kernels/rope_ref.h"
#include "tests/reference/kernels/swiglu_ref.h"

namespace synthpert::kernels {
namespace {
using host_emulation::gather_rows;
using host_emulation::scatter_rows;

std::map<const float*, double>& eps_of_rstd() {
  static std::map<const float*, double> m;
  return m;
}
}  // namespace

size_t rmsnorm_backward_workspace_bytes(int64_t rows, int64_t width) {
  return static_cast<size_t>(std::min<int64_t>(rows, 256) * width) * sizeof(float);
}

void rmsnorm_forward(const RmsNormForwardArgs& a, cudaStream_t) {
  const auto x = gather_rows(a.x, a.x_row_stride, a.rows, a.width, a.dtype);
  const auto w = gather_rows(a.weight, a.width, 1, a.width, a.dtype);
  const auto r = reference::rmsnorm_forward_ref(x, w, a.rows, a.width, a.eps);
  scatter_rows(r.y_RC, a.y, a.y_row_stride, a.rows, a.width, a.dtype);
  if (a.rstd) {
    for (int64_t i = 0; i < a.rows; ++i) a.rstd[i] = static_cast<float>(r.rstd_R[i]);
    eps_of_rstd()[a.rstd] = a.eps;
  }
}

void rmsnorm_backward(const RmsNormBackwardArgs& a, cudaStream_t) {
  const auto it = eps_of_rstd().find(a.rstd);
  if (it == eps_of_rstd().end()) throw std::invalid_argument("host rmsnorm: rstd is not a forward's output");
  if (a.dweight && !a.workspace) throw std::invalid_argument("host rmsnorm: dweight needs the workspace");
  const auto x = gather_rows(a.x, a.x_row_stride, a.rows, a.width, a.dtype);
  const auto w = gather_rows(a.weight, a.width, 1, a.width, a.dtype);
  const auto dy = gather_rows(a.dy, a.dy_row_stride, a.rows, a.width, a.dtype);
  const auto g = reference::rmsnorm_backward_ref(x, w, dy, a.rows, a.width, it->second);
  scatter_rows(g.dx_RC, a.dx, a.dx_row_stride, a.rows, a.width, a.dtype);
  if (a.dweight)
    for (int64_t c = 0; c < a.width; ++c) a.dweight[c] = static_cast<float>(g.dw_C[c]);
}

void swiglu_forward(const SwigluForwardArgs& a, cudaStream_t) {
  const auto gate = gather_rows(a.gate, a.gate_row_stride, a.rows, a.width, a.dtype);
  const auto up = gather_rows(a.up, a.up_row_stride, a.rows, a.width, a.dtype);
  scatter_rows(reference::swiglu_forward_ref(gate, up), a.out, a.out_row_stride, a.rows, a.width, a.dtype);
}

void swiglu_backward(const SwigluBackwardArgs& a, cudaStream_t) {
  const auto gate = gather_rows(a.gate, a.gate_row_stride, a.rows, a.width, a.dtype);
  const auto up = gather_rows(a.up, a.up_row_stride, a.rows, a.width, a.dtype);
  const auto dout = gather_rows(a.dout, a.dout_row_stride, a.rows, a.width, a.dtype);
  const auto g = reference::swiglu_backward_ref(gate, up, dout);
  scatter_rows(g.dgate, a.dgate, a.dgate_row_stride, a.rows, a.width, a.dtype);
  scatter_rows(g.dup, a.dup, a.dup_row_stride, a.rows, a.width, a.dtype);
}

void rope_apply(const RopeArgs& a, cudaStream_t) {
  const int64_t N = a.tokens, H = a.heads, D = a.head_dim;
  std::vector<double> x(static_cast<size_t>(N * H * D));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d)
        x[(n * H + h) * D + d] = host_emulation::load(a.x, n * a.x_token_stride + h * a.x_head_stride + d, a.dtype);
  const std::vector<int64_t> pos(a.positions, a.positions + N);
  const std::vector<float> inv(a.inv_freq, a.inv_freq + D / 2);
  const auto y = reference::rope_ref(x, pos, inv, a.heads, a.head_dim, a.inverse);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d)
        host_emulation::store(a.y, n * a.y_token_stride + h * a.y_head_stride + d, a.dtype, y[(n * H + h) * D + d]);
}

}  // namespace synthpert::kernels
