// Attention forward/backward kernels against the fp64 CPU reference on odd
// shapes, with the tolerance rule of test_attention_common.h ([gpu]).
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/attention_ref.h"

namespace {

using synthpert::kernels::DType;
using synthpert::reference::AttentionShape;
using namespace synthpert::test;

struct Case {
  std::vector<int32_t> cu_seqlens;
  int heads, kv_heads, head_dim;
  bool strided;  // heads padded and tokens interleaved with other data
};

// Peer: the same attention forward/backward written the way eager PyTorch
// runs it in `dtype` (every op's result rounded to dtype). Inputs are fp64
// tensors already holding dtype-exact values; outputs are fp64.
struct Peer {
  at::Tensor out_NHD, lse_HN, dq_NHD, dk_NHD, dv_NHD;
};

Peer torch_style_peer(const AttentionShape& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& dout, at::ScalarType dt) {
  const int64_t N = s.tokens();
  const int H = s.heads, Hkv = s.kv_heads, D = s.head_dim, rep = H / Hkv;
  Peer p;
  p.out_NHD = at::zeros({N, H, D}, at::kDouble);
  p.lse_HN = at::zeros({H, N}, at::kDouble);
  p.dq_NHD = at::zeros({N, H, D}, at::kDouble);
  p.dk_NHD = at::zeros({N, Hkv, D}, at::kDouble);
  p.dv_NHD = at::zeros({N, Hkv, D}, at::kDouble);
  for (size_t b = 0; b + 1 < s.cu_seqlens.size(); ++b) {
    const int64_t begin = s.cu_seqlens[b], len = s.cu_seqlens[b + 1] - begin;
    if (len == 0) continue;
    auto heads_first = [&](const at::Tensor& x) { return x.narrow(0, begin, len).transpose(0, 1).to(at::kFloat); };
    const at::Tensor qs = heads_first(q), dos = heads_first(dout);                 // (H, T, D)
    const at::Tensor ks = heads_first(k).repeat_interleave(rep, 0);                // (H, T, D)
    const at::Tensor vs = heads_first(v).repeat_interleave(rep, 0);
    at::Tensor scores = rnd(rnd(at::matmul(qs, ks.transpose(1, 2)), dt) * s.scale, dt);  // (H, T, T)
    if (s.causal) scores = scores.masked_fill(at::ones({len, len}, at::kBool).triu(1), -INFINITY);
    const at::Tensor prob = rnd(at::softmax(scores, -1), dt);
    const at::Tensor out = rnd(at::matmul(prob, vs), dt);
    const at::Tensor dv_h = rnd(at::matmul(prob.transpose(1, 2), dos), dt);
    const at::Tensor dprob = rnd(at::matmul(dos, vs.transpose(1, 2)), dt);
    const at::Tensor dscore = rnd(rnd(prob * (dprob - (dprob * prob).sum(-1, true)), dt) * s.scale, dt);
    const at::Tensor dq = rnd(at::matmul(dscore, ks), dt);
    const at::Tensor dk_h = rnd(at::matmul(dscore.transpose(1, 2), qs), dt);
    // GQA: the repeat_interleave backward sums the group's heads.
    auto group_sum = [&](const at::Tensor& x) { return rnd(x.reshape({Hkv, rep, len, D}).sum(1), dt); };
    p.lse_HN.narrow(1, begin, len).copy_(at::logsumexp(scores, -1));
    p.out_NHD.narrow(0, begin, len).copy_(out.transpose(0, 1));
    p.dq_NHD.narrow(0, begin, len).copy_(dq.transpose(0, 1));
    p.dk_NHD.narrow(0, begin, len).copy_(group_sum(dk_h).transpose(0, 1));
    p.dv_NHD.narrow(0, begin, len).copy_(group_sum(dv_h).transpose(0, 1));
  }
  return p;
}

at::Tensor from_vector(const std::vector<double>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::kDouble).reshape(shape);
}

void run_case(const Case& c, DType dtype, bool causal, uint32_t seed) {
  const at::ScalarType dt = torch_dtype(dtype);
  AttentionShape s;
  s.heads = c.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.causal = causal;
  s.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  s.cu_seqlens = c.cu_seqlens;
  const int64_t N = s.tokens();
  const int H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  int max_seqlen = 0;
  for (size_t b = 0; b + 1 < c.cu_seqlens.size(); ++b)
    max_seqlen = std::max(max_seqlen, c.cu_seqlens[b + 1] - c.cu_seqlens[b]);
  INFO("N=" << N << " H=" << H << " Hkv=" << Hkv << " D=" << D << " causal=" << causal << " strided=" << c.strided
            << " dtype=" << synthpert::kernels::dtype_name(dtype));

  const at::Tensor q = random_rounded({N, H, D}, dt, seed), k = random_rounded({N, Hkv, D}, dt, seed + 1);
  const at::Tensor v = random_rounded({N, Hkv, D}, dt, seed + 2), dout = random_rounded({N, H, D}, dt, seed + 3);
  const auto ref_fwd = synthpert::reference::attention_forward_ref(s, to_vector(q), to_vector(k), to_vector(v));
  const auto ref_bwd =
      synthpert::reference::attention_backward_ref(s, to_vector(q), to_vector(k), to_vector(v), to_vector(dout));
  const at::Tensor ref_out = from_vector(ref_fwd.out_NHD, {N, H, D}), ref_lse = from_vector(ref_fwd.lse_HN, {H, N});
  const at::Tensor ref_dq = from_vector(ref_bwd.dq_NHD, {N, H, D});
  const at::Tensor ref_dk = from_vector(ref_bwd.dk_NHD, {N, Hkv, D});
  const at::Tensor ref_dv = from_vector(ref_bwd.dv_NHD, {N, Hkv, D});

  // Strided case: each head padded by 8 elements and each token by 24 more.
  auto make = [&](int heads) {
    const int64_t hs = c.strided ? D + 8 : D;
    const int64_t ts = c.strided ? heads * hs + 24 : heads * hs;
    return StridedDeviceTensor(N, heads, D, ts, hs, dt);
  };
  StridedDeviceTensor dq_ = make(H), dk_ = make(Hkv), dv_ = make(Hkv), q_ = make(H), k_ = make(Hkv), v_ = make(Hkv),
                      o_ = make(H), do_ = make(H);
  q_.upload(q);
  k_.upload(k);
  v_.upload(v);
  do_.upload(dout);
  o_.upload_poison();
  dq_.upload_poison();
  dk_.upload_poison();
  dv_.upload_poison();
  DeviceBuffer cu(c.cu_seqlens.size() * sizeof(int32_t));
  cu.upload(c.cu_seqlens.data(), cu.bytes());
  DeviceBuffer lse(static_cast<size_t>(std::max<int64_t>(1, N * H)) * sizeof(float));

  synthpert::kernels::AttentionProblem prob;
  prob.dtype = dtype;
  prob.head_dim = D;
  prob.causal = causal;
  prob.softmax_scale = static_cast<float>(s.scale);
  prob.batch = static_cast<int>(c.cu_seqlens.size()) - 1;
  prob.heads = H;
  prob.kv_heads = Hkv;
  prob.total_tokens = N;
  prob.max_seqlen = max_seqlen;
  prob.cu_seqlens = cu.as<int32_t>();
  auto in_view = [](StridedDeviceTensor& t) {
    return synthpert::kernels::HeadsView{t.device.get(), t.token_stride, t.head_stride};
  };
  auto out_view = [](StridedDeviceTensor& t) {
    return synthpert::kernels::MutableHeadsView{t.device.get(), t.token_stride, t.head_stride};
  };

  synthpert::kernels::AttentionForwardArgs fa;
  fa.problem = prob;
  fa.q = in_view(q_);
  fa.k = in_view(k_);
  fa.v = in_view(v_);
  fa.out = out_view(o_);
  fa.lse_HN = lse.as<float>();
  synthpert::kernels::attention_forward(fa, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "attention_forward");
  const at::Tensor out = o_.download();
  std::vector<float> lse_host(static_cast<size_t>(N * H));
  lse.download(lse_host.data(), lse_host.size() * sizeof(float));
  const at::Tensor lse_got = at::tensor(std::vector<double>(lse_host.begin(), lse_host.end()), at::kDouble).reshape({H, N});

  synthpert::kernels::AttentionBackwardArgs ba;
  ba.problem = prob;
  ba.q = fa.q;
  ba.k = fa.k;
  ba.v = fa.v;
  ba.out = in_view(o_);
  ba.dout = in_view(do_);
  ba.lse_HN = lse.as<float>();
  ba.dq = out_view(dq_);
  ba.dk = out_view(dk_);
  ba.dv = out_view(dv_);
  DeviceBuffer ws(synthpert::kernels::attention_backward_workspace_bytes(N, H, D));
  ba.workspace = ws.get();
  synthpert::kernels::attention_backward(ba, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "attention_backward");

  const Peer peer = torch_style_peer(s, q, k, v, dout, dt);
  const double out_floor = half_ulp(dt, max_abs(ref_out));
  check_within_peer("out", max_abs_err(out, ref_out), max_abs_err(peer.out_NHD, ref_out), out_floor);
  check_within_peer("lse", max_abs_err(lse_got, ref_lse), max_abs_err(peer.lse_HN, ref_lse),
                    half_ulp(dt, max_abs(ref_lse)));
  const double grad_floor = half_ulp(dt, std::max({max_abs(ref_dq), max_abs(ref_dk), max_abs(ref_dv)}));
  check_within_peer("dq", max_abs_err(dq_.download(), ref_dq), max_abs_err(peer.dq_NHD, ref_dq), grad_floor);
  check_within_peer("dk", max_abs_err(dk_.download(), ref_dk), max_abs_err(peer.dk_NHD, ref_dk), grad_floor);
  check_within_peer("dv", max_abs_err(dv_.download(), ref_dv), max_abs_err(peer.dv_NHD, ref_dv), grad_floor);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {{0, 1}, 1, 1, 64, false},
      {{0, 5}, 3, 1, 128, true},
      {{0, 123}, 6, 2, 64, true},
      {{0, 1023}, 6, 3, 128, false},
      {{0, 1023}, 5, 1, 64, true},
      // Packed batch: empty and one-token sequences, a tile-boundary length.
      {{0, 0, 1, 8, 8, 138, 202, 203}, 4, 2, 128, true},
      {{0, 64, 65, 193}, 3, 3, 64, false},
  };
  return all;
}

}  // namespace

TEST_CASE("attention kernels match the reference (bf16)", "[gpu][attention]") {
  uint32_t seed = 100;
  for (const Case& c : cases())
    for (bool causal : {true, false}) run_case(c, DType::kBF16, causal, seed += 10);
}

TEST_CASE("attention kernels match the reference (f16)", "[gpu][attention]") {
  uint32_t seed = 200;
  for (const Case& c : cases())
    for (bool causal : {true, false}) run_case(c, DType::kF16, causal, seed += 10);
}

#endif  // SYNTHPERT_NO_KERNELS
