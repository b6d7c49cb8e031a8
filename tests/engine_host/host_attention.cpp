// kernels/attention.h's launchers, emulated on host memory: they read the
// views exactly as attention.h specifies them (token and head strides in
// elements, a contiguous D axis, lse [H, N] fp32, cu_seqlens [B + 1]), run
// the fp64 CPU reference of tests/reference/kernels/attention_ref, and write
// the results rounded to the dtype. Linked instead of the CUDA kernels, they
// let the engine's kernel branch (engine/packed_attention.cpp) run on CPU,
// which checks its argument marshalling; the CUDA kernels themselves are
// checked against the same reference in tests/kernels.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/attention_ref.h"

namespace synthpert::kernels {
namespace {

using host_emulation::gather_heads;
using host_emulation::load;
using host_emulation::scatter_heads;
using host_emulation::store;

reference::AttentionShape shape_of(const AttentionProblem& p) {
  if (p.head_dim != 64 && p.head_dim != 128) throw std::invalid_argument("host attention: head_dim must be 64 or 128");
  reference::AttentionShape s;
  s.heads = p.heads;
  s.kv_heads = p.kv_heads;
  s.head_dim = p.head_dim;
  s.causal = p.causal;
  s.scale = p.softmax_scale;
  s.cu_seqlens.assign(p.cu_seqlens, p.cu_seqlens + p.batch + 1);
  if (s.tokens() != p.total_tokens) throw std::invalid_argument("host attention: cu_seqlens[B] != total_tokens");
  int max_len = 0;
  for (int b = 0; b < p.batch; ++b) max_len = std::max(max_len, s.cu_seqlens[b + 1] - s.cu_seqlens[b]);
  if (max_len > p.max_seqlen) throw std::invalid_argument("host attention: max_seqlen below a sequence's length");
  return s;
}

// Keys apart from the queries (cu_seqlens_k): each sequence written out
// whole, its queries at its last rows (the rest zeros), through the
// reference; the queries' rows are its last rows. Emulates sequences with at
// least as many keys as queries only (all the engine makes).
void attention_forward_keys_apart(const AttentionForwardArgs& a) {
  const auto& p = a.problem;
  shape_of(p);  // the query side's checks
  const int H = p.heads, Hkv = p.kv_heads, D = p.head_dim;
  for (int b = 0; b < p.batch; ++b) {
    const int64_t q0 = p.cu_seqlens[b], Lq = p.cu_seqlens[b + 1] - q0, k0 = p.cu_seqlens_k[b];
    const int64_t Lk = p.seqused_k ? p.seqused_k[b] : p.cu_seqlens_k[b + 1] - k0;
    if (Lq == 0) continue;
    if (Lk < Lq) throw std::invalid_argument("host attention: a sequence with fewer keys than queries");
    if (k0 + Lk > p.total_keys) throw std::invalid_argument("host attention: keys past total_keys");
    reference::AttentionShape whole = shape_of(p);
    whole.cu_seqlens = {0, static_cast<int32_t>(Lk)};
    std::vector<double> q(static_cast<size_t>(Lk * H * D), 0.0);
    const auto new_q = gather_heads(static_cast<const char*>(a.q.data) + q0 * a.q.token_stride * 2, a.q.token_stride,
                                    a.q.head_stride, Lq, H, D, p.dtype);
    std::copy(new_q.begin(), new_q.end(), q.begin() + (Lk - Lq) * H * D);
    auto keys = [&](const HeadsView& t) {
      return gather_heads(static_cast<const char*>(t.data) + k0 * t.token_stride * 2, t.token_stride, t.head_stride, Lk,
                          Hkv, D, p.dtype);
    };
    const auto r = reference::attention_forward_ref(whole, q, keys(a.k), keys(a.v));
    const std::vector<double> out(r.out_NHD.begin() + (Lk - Lq) * H * D, r.out_NHD.end());
    scatter_heads(out, static_cast<char*>(a.out.data) + q0 * a.out.token_stride * 2, a.out.token_stride,
                  a.out.head_stride, Lq, H, D, p.dtype);
    for (int h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i)
        a.lse_HN[h * p.total_tokens + q0 + i] = static_cast<float>(r.lse_HN[h * Lk + (Lk - Lq) + i]);
  }
}

}  // namespace

size_t attention_backward_workspace_bytes(int64_t total_tokens, int heads, int head_dim) {
  return static_cast<size_t>(total_tokens) * heads * (head_dim + 1) * sizeof(float) + 256;
}

void attention_forward(const AttentionForwardArgs& a, cudaStream_t) {
  if (a.problem.cu_seqlens_k) return attention_forward_keys_apart(a);
  const auto& p = a.problem;
  const auto s = shape_of(p);
  const int64_t N = p.total_tokens;
  const auto q = gather_heads(a.q.data, a.q.token_stride, a.q.head_stride, N, p.heads, p.head_dim, p.dtype);
  const auto k = gather_heads(a.k.data, a.k.token_stride, a.k.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
  const auto v = gather_heads(a.v.data, a.v.token_stride, a.v.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
  const auto r = reference::attention_forward_ref(s, q, k, v);
  scatter_heads(r.out_NHD, a.out.data, a.out.token_stride, a.out.head_stride, N, p.heads, p.head_dim, p.dtype);
  for (size_t i = 0; i < r.lse_HN.size(); ++i) a.lse_HN[i] = static_cast<float>(r.lse_HN[i]);
}

void attention_backward(const AttentionBackwardArgs& a, cudaStream_t) {
  const auto& p = a.problem;
  const auto s = shape_of(p);
  const int64_t N = p.total_tokens;
  if (p.cu_seqlens_k) throw std::invalid_argument("host attention: keys apart are forward only");
  if (a.workspace == nullptr || a.lse_HN == nullptr) throw std::invalid_argument("host attention: workspace, lse");
  const auto q = gather_heads(a.q.data, a.q.token_stride, a.q.head_stride, N, p.heads, p.head_dim, p.dtype);
  const auto k = gather_heads(a.k.data, a.k.token_stride, a.k.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
  const auto v = gather_heads(a.v.data, a.v.token_stride, a.v.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
  const auto dout = gather_heads(a.dout.data, a.dout.token_stride, a.dout.head_stride, N, p.heads, p.head_dim, p.dtype);
  // The real kernel relies on the forward's lse: check that this is it.
  const auto fwd = reference::attention_forward_ref(s, q, k, v);
  for (size_t i = 0; i < fwd.lse_HN.size(); ++i)
    if (std::abs(a.lse_HN[i] - fwd.lse_HN[i]) > 1e-3 * (1 + std::abs(fwd.lse_HN[i])))
      throw std::invalid_argument("host attention: lse given to the backward is not the forward's (index " +
                                  std::to_string(i) + ")");
  const auto g = reference::attention_backward_ref(s, q, k, v, dout);
  scatter_heads(g.dq_NHD, a.dq.data, a.dq.token_stride, a.dq.head_stride, N, p.heads, p.head_dim, p.dtype);
  scatter_heads(g.dk_NHD, a.dk.data, a.dk.token_stride, a.dk.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
  scatter_heads(g.dv_NHD, a.dv.data, a.dv.token_stride, a.dv.head_stride, N, p.kv_heads, p.head_dim, p.dtype);
}

}  // namespace synthpert::kernels
