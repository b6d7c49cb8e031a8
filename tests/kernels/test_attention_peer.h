// Attention forward/backward written with libtorch CPU ops under three
// rounding regimes, for the tolerance rule of DESIGN.md section 5:
//   kExact        fp64 throughout (an independent oracle for the reference)
//   kTorchEager   the peer: fp32 math with every op's result rounded to the
//                 dtype, the way eager PyTorch computes attention in bf16/f16
//   kKernelModel  the rounding points of kernels/attention_*_impl.cuh: fp32
//                 scores, softmax statistics and accumulators; only P and dS
//                 (mma operands) and the outputs rounded to the dtype
// Layouts as in tests/reference/kernels/attention_ref.h; inputs are fp64
// tensors already holding dtype-exact values, outputs fp64.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tests/reference/kernels/attention_ref.h"

namespace synthpert::test {

enum class Rounding { kExact, kTorchEager, kKernelModel };

// Rounds like an eager op whose result is stored in dtype.
inline at::Tensor rnd(const at::Tensor& t, at::ScalarType dtype) { return t.to(dtype).to(t.scalar_type()); }

struct AttentionTensors {
  at::Tensor out_NHD, lse_HN, dq_NHD, dk_NHD, dv_NHD;
};

inline AttentionTensors attention_torch(const reference::AttentionShape& s, const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v, const at::Tensor& dout, at::ScalarType dt,
                                        Rounding mode) {
  const int64_t N = s.tokens();
  const int H = s.heads, Hkv = s.kv_heads, D = s.head_dim, rep = H / Hkv;
  const at::ScalarType math = mode == Rounding::kExact ? at::kDouble : at::kFloat;
  auto r = [&](const at::Tensor& x) { return mode == Rounding::kExact ? x : rnd(x, dt); };
  // Rounded only under the eager peer (intermediate op results).
  auto r_eager = [&](const at::Tensor& x) { return mode == Rounding::kTorchEager ? rnd(x, dt) : x; };
  AttentionTensors p;
  p.out_NHD = at::zeros({N, H, D}, at::kDouble);
  p.lse_HN = at::zeros({H, N}, at::kDouble);
  p.dq_NHD = at::zeros({N, H, D}, at::kDouble);
  p.dk_NHD = at::zeros({N, Hkv, D}, at::kDouble);
  p.dv_NHD = at::zeros({N, Hkv, D}, at::kDouble);
  for (size_t b = 0; b + 1 < s.cu_seqlens.size(); ++b) {
    const int64_t begin = s.cu_seqlens[b], len = s.cu_seqlens[b + 1] - begin;
    if (len == 0) continue;
    auto heads_first = [&](const at::Tensor& x) { return x.narrow(0, begin, len).transpose(0, 1).to(math); };
    const at::Tensor qs = heads_first(q), dos = heads_first(dout);   // (H, T, D)
    const at::Tensor ks = heads_first(k).repeat_interleave(rep, 0);  // (H, T, D)
    const at::Tensor vs = heads_first(v).repeat_interleave(rep, 0);
    at::Tensor scores = r_eager(r_eager(at::matmul(qs, ks.transpose(1, 2))) * s.scale);  // (H, T, T)
    if (s.causal) scores = scores.masked_fill(at::ones({len, len}, at::kBool).triu(1), -INFINITY);
    const at::Tensor lse = at::logsumexp(scores, -1, true);  // (H, T, 1)
    const at::Tensor prob =
        mode == Rounding::kKernelModel ? at::exp(scores - lse) : r_eager(at::softmax(scores, -1));
    at::Tensor out, dscore, prob_operand;
    if (mode == Rounding::kKernelModel) {
      // Unnormalised exponentials rounded as the P.V operand, normalised in fp32.
      const at::Tensor row_max = std::get<0>(scores.max(-1, true));
      const at::Tensor e = at::exp(scores - row_max);
      out = r(at::matmul(r(e), vs) / e.sum(-1, true));
      prob_operand = r(prob);
      const at::Tensor dprob = at::matmul(dos, vs.transpose(1, 2));
      const at::Tensor delta = (dos * out).sum(-1, true);
      dscore = r(prob * (dprob - delta));
    } else {
      out = r(at::matmul(prob, vs));
      prob_operand = prob;
      const at::Tensor dprob = r_eager(at::matmul(dos, vs.transpose(1, 2)));
      dscore = r_eager(prob * (dprob - (dprob * prob).sum(-1, true)));
    }
    const at::Tensor dscore_scaled = r_eager(dscore * s.scale);
    const at::Tensor dv_h = r_eager(at::matmul(prob_operand.transpose(1, 2), dos));
    const at::Tensor dq = r(at::matmul(dscore_scaled, ks));
    const at::Tensor dk_h = r_eager(at::matmul(dscore_scaled.transpose(1, 2), qs));
    // GQA: the repeat_interleave backward sums the group's heads.
    auto group_sum = [&](const at::Tensor& x) { return r(x.reshape({Hkv, rep, len, D}).sum(1)); };
    p.lse_HN.narrow(1, begin, len).copy_(lse.squeeze(-1));
    p.out_NHD.narrow(0, begin, len).copy_(out.transpose(0, 1));
    p.dq_NHD.narrow(0, begin, len).copy_(dq.transpose(0, 1));
    p.dk_NHD.narrow(0, begin, len).copy_(group_sum(dk_h).transpose(0, 1));
    p.dv_NHD.narrow(0, begin, len).copy_(group_sum(dv_h).transpose(0, 1));
  }
  return p;
}

// Standard-normal values of `shape`, rounded to `dtype` (returned as fp64 so
// the reference sees exactly the kernel's inputs).
inline at::Tensor random_rounded(at::IntArrayRef shape, at::ScalarType dtype, uint32_t seed, double stddev = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return at::tensor(v, at::kDouble).reshape(shape).to(dtype).to(at::kDouble);
}

inline std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Half a unit in the last place of dtype at magnitude x (bf16: 8 significant
// bits, f16: 11).
inline double half_ulp(at::ScalarType dtype, double x) {
  if (x <= 0.0) return 0.0;
  const int significant_bits = dtype == at::kBFloat16 ? 8 : 11;
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(x))) - significant_bits);
}

inline double max_abs(const at::Tensor& t) { return t.numel() == 0 ? 0.0 : t.abs().max().item<double>(); }
inline double max_abs_err(const at::Tensor& got, const at::Tensor& want) {
  return got.numel() == 0 ? 0.0 : (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
}

// Shapes shared by the GPU test and the CPU check of the tolerance rule.
struct AttentionCase {
  std::vector<int32_t> cu_seqlens;
  int heads, kv_heads, head_dim;
  bool strided;  // GPU test: heads padded and tokens interleaved with other data
};

inline const std::vector<AttentionCase>& attention_cases() {
  static const std::vector<AttentionCase> all = {
      {{0, 1}, 1, 1, 64, false},
      {{0, 5}, 3, 1, 128, true},
      {{0, 123}, 6, 2, 64, true},
      {{0, 1023}, 6, 3, 128, false},
      {{0, 1023}, 5, 1, 64, true},
      // Packed batch: empty and one-token sequences, a tile-boundary length.
      {{0, 0, 1, 8, 8, 138, 202, 203}, 4, 2, 128, true},
      {{0, 64, 65, 193}, 3, 3, 64, false},
      // Dense batch (4 x 300 tokens) with Llama-like 4:1 GQA.
      {{0, 300, 600, 900, 1200}, 8, 2, 128, false},
      // One sequence of four 64-key tiles, the most a small case has: the
      // pipelined kernels refill both of their stages (the others' longest
      // sequence, 130 tokens, has three tiles and refills one).
      {{0, 256}, 2, 1, 128, true},
  };
  return all;
}

inline reference::AttentionShape shape_of(const AttentionCase& c, bool causal) {
  reference::AttentionShape s;
  s.heads = c.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.causal = causal;
  s.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  s.cu_seqlens = c.cu_seqlens;
  return s;
}

// Inputs of one case: standard-normal q, k, v, dout rounded to dtype.
struct AttentionInputs {
  at::Tensor q_NHD, k_NHD, v_NHD, dout_NHD;
};
inline AttentionInputs attention_inputs(const AttentionCase& c, at::ScalarType dt, uint32_t seed) {
  const int64_t N = c.cu_seqlens.back();
  return {random_rounded({N, c.heads, c.head_dim}, dt, seed), random_rounded({N, c.kv_heads, c.head_dim}, dt, seed + 1),
          random_rounded({N, c.kv_heads, c.head_dim}, dt, seed + 2),
          random_rounded({N, c.heads, c.head_dim}, dt, seed + 3)};
}

// Seeds used by the GPU test for (dtype, case index, causal).
inline uint32_t attention_seed(bool is_bf16, size_t case_index, bool causal) {
  return (is_bf16 ? 1000u : 2000u) + 10u * static_cast<uint32_t>(case_index) + (causal ? 5u : 0u);
}

}  // namespace synthpert::test
