// kernels/fused_linear_ce.h and kernels/lora.h's launchers (training and
// serving), emulated on host memory with the fp64 references of
// tests/reference/kernels (see host_attention.cpp for why). The LoRA backward checks that it is given the
// forward's xa = x A^T, as the kernel relies on it.
#include <cmath>
#include <stdexcept>

#include "kernels/fused_linear_ce.h"
#include "kernels/lora.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/fused_linear_ce_ref.h"
#include "tests/reference/kernels/lora_ref.h"

namespace synthpert::host_emulation {
LoraMultiCalls& lora_multi_calls() {
  static LoraMultiCalls calls;
  return calls;
}
}  // namespace synthpert::host_emulation

namespace synthpert::kernels {
namespace {
using host_emulation::gather_rows;
using host_emulation::scatter_rows;

template <typename Args>
reference::LoraDims dims_of(const Args& a) {
  return {a.rows, a.in_features, a.out_features, a.rank};
}
}  // namespace

size_t fused_linear_ce_workspace_bytes(int64_t chunk_tokens, int64_t vocab) {
  return static_cast<size_t>(chunk_tokens * vocab) * (sizeof(float) + 2);
}

void fused_linear_cross_entropy(const FusedLinearCrossEntropyArgs& a, cudaStream_t) {
  if (a.workspace == nullptr) throw std::invalid_argument("host fused CE: workspace");
  const auto h = gather_rows(a.hidden, a.hidden_row_stride, a.tokens, a.hidden_size, a.dtype);
  const auto w = gather_rows(a.weight, a.weight_row_stride, a.vocab, a.hidden_size, a.dtype);
  const std::vector<int64_t> t(a.targets, a.targets + a.tokens);
  const auto r = reference::linear_cross_entropy_ref(h, w, t, a.hidden_size, a.ignore_index, a.grad_scale);
  for (int64_t n = 0; n < a.tokens; ++n) {
    a.loss[n] = static_cast<float>(r.loss_N[n]);
    if (a.lse) a.lse[n] = static_cast<float>(r.lse_N[n]);
  }
  if (a.dhidden) scatter_rows(r.dhidden_NC, a.dhidden, a.dhidden_row_stride, a.tokens, a.hidden_size, a.dtype);
  if (a.dweight)
    for (size_t i = 0; i < r.dweight_VC.size(); ++i) a.dweight[i] += static_cast<float>(r.dweight_VC[i]);
}

void lora_forward(const LoraForwardArgs& a, cudaStream_t) {
  const auto d = dims_of(a);
  const auto x = gather_rows(a.x, a.x_row_stride, a.rows, a.in_features, a.dtype);
  const auto w = gather_rows(a.weight, a.weight_row_stride, a.out_features, a.in_features, a.dtype);
  const auto A = gather_rows(a.lora_a, a.lora_a_row_stride, a.rank, a.in_features, a.dtype);
  const auto B = gather_rows(a.lora_b, a.lora_b_row_stride, a.out_features, a.rank, a.dtype);
  const auto r = reference::lora_forward_ref(d, x, w, A, B, a.scale);
  scatter_rows(r.y_NO, a.y, a.y_row_stride, a.rows, a.out_features, a.dtype);
  scatter_rows(r.xa_NR, a.xa, a.rank, a.rows, a.rank, a.dtype);
}

size_t lora_backward_workspace_bytes(int64_t rows, int64_t rank) { return static_cast<size_t>(rows * rank) * 2 + 256; }

void lora_backward(const LoraBackwardArgs& a, cudaStream_t) {
  if (a.workspace == nullptr || a.grad_a == nullptr || a.grad_b == nullptr)
    throw std::invalid_argument("host lora: workspace, grad_a and grad_b are required");
  const auto d = dims_of(a);
  const auto x = gather_rows(a.x, a.x_row_stride, a.rows, a.in_features, a.dtype);
  const auto w = gather_rows(a.weight, a.weight_row_stride, a.out_features, a.in_features, a.dtype);
  const auto A = gather_rows(a.lora_a, a.lora_a_row_stride, a.rank, a.in_features, a.dtype);
  const auto B = gather_rows(a.lora_b, a.lora_b_row_stride, a.out_features, a.rank, a.dtype);
  const auto dy = gather_rows(a.dy, a.dy_row_stride, a.rows, a.out_features, a.dtype);
  const auto xa = gather_rows(a.xa, a.rank, a.rows, a.rank, a.dtype);
  const auto fwd = reference::lora_forward_ref(d, x, w, A, B, a.scale);
  for (size_t i = 0; i < xa.size(); ++i)
    if (std::abs(xa[i] - fwd.xa_NR[i]) > 2e-2 * (1 + std::abs(fwd.xa_NR[i])))
      throw std::invalid_argument("host lora: xa given to the backward is not the forward's");
  const auto g = reference::lora_backward_ref(d, x, w, A, B, a.scale, dy);
  if (a.dx) scatter_rows(g.dx_NK, a.dx, a.dx_row_stride, a.rows, a.in_features, a.dtype);
  for (size_t i = 0; i < g.da_RK.size(); ++i) a.grad_a[i] = static_cast<float>(g.da_RK[i]) + (a.accumulate ? a.grad_a[i] : 0.f);
  for (size_t i = 0; i < g.db_OR.size(); ++i) a.grad_b[i] = static_cast<float>(g.db_OR[i]) + (a.accumulate ? a.grad_b[i] : 0.f);
}

size_t lora_multi_workspace_bytes(int64_t rows, int64_t rank) { return static_cast<size_t>(rows * rank) * sizeof(float); }

void lora_multi_apply(const LoraMultiArgs& a, cudaStream_t) {
  if (a.workspace == nullptr || a.scales == nullptr || a.row_adapter == nullptr)
    throw std::invalid_argument("host lora_multi: workspace, scales and row_adapter are required");
  const auto d = dims_of(a);
  const int64_t M = a.num_adapters, K = a.in_features, O = a.out_features, R = a.rank;
  const auto x = gather_rows(a.x, a.x_row_stride, a.rows, K, a.dtype);
  // Each adapter's matrices at its adapter stride, stacked contiguously.
  std::vector<double> a_all, b_all;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K; ++k)
        a_all.push_back(host_emulation::load(a.lora_a, i * a.lora_a_adapter_stride + r * a.lora_a_row_stride + k, a.dtype));
    for (int64_t o = 0; o < O; ++o)
      for (int64_t r = 0; r < R; ++r)
        b_all.push_back(host_emulation::load(a.lora_b, i * a.lora_b_adapter_stride + o * a.lora_b_row_stride + r, a.dtype));
  }
  const std::vector<double> scales(a.scales, a.scales + M);
  const std::vector<int32_t> idx(a.row_adapter, a.row_adapter + a.rows);
  auto& calls = host_emulation::lora_multi_calls();
  ++calls.count;
  calls.last_row_adapter = idx;
  auto y = gather_rows(a.y, a.y_row_stride, a.rows, O, a.dtype);
  y = reference::lora_multi_ref(d, M, x, a_all, b_all, scales, idx, std::move(y));
  scatter_rows(y, a.y, a.y_row_stride, a.rows, O, a.dtype);
}

}  // namespace synthpert::kernels
