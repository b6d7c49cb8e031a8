// Attention forward/backward kernels against the fp64 CPU reference on odd
// shapes, with the tolerance rule of test_attention_common.h ([gpu]).
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/attention.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/attention_ref.h"

namespace {

using synthpert::kernels::DType;
using synthpert::reference::AttentionShape;
using namespace synthpert::test;

at::Tensor from_vector(const std::vector<double>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::kDouble).reshape(shape);
}

// The fp64 reference and the eager-torch peer of one (case, dtype, causal),
// computed once: the wgmma forward runs the same cases after the mma.sync
// kernels, and on the large shapes these CPU computations dominate the test.
struct Oracles {
  AttentionInputs in;
  at::Tensor ref_out, ref_lse, ref_dq, ref_dk, ref_dv;
  AttentionTensors peer;
};

const Oracles& oracles_for(size_t index, const AttentionCase& c, DType dtype, bool causal, uint32_t seed) {
  static std::map<std::tuple<size_t, int, bool>, Oracles> cache;
  const auto key = std::make_tuple(index, static_cast<int>(dtype), causal);
  const auto hit = cache.find(key);
  if (hit != cache.end()) return hit->second;
  const at::ScalarType dt = torch_dtype(dtype);
  const AttentionShape s = shape_of(c, causal);
  const int64_t N = s.tokens();
  const int H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  Oracles o;
  o.in = attention_inputs(c, dt, seed);
  const at::Tensor &q = o.in.q_NHD, &k = o.in.k_NHD, &v = o.in.v_NHD, &dout = o.in.dout_NHD;
  const auto ref_fwd = synthpert::reference::attention_forward_ref(s, to_vector(q), to_vector(k), to_vector(v));
  const auto ref_bwd =
      synthpert::reference::attention_backward_ref(s, to_vector(q), to_vector(k), to_vector(v), to_vector(dout));
  o.ref_out = from_vector(ref_fwd.out_NHD, {N, H, D});
  o.ref_lse = from_vector(ref_fwd.lse_HN, {H, N});
  o.ref_dq = from_vector(ref_bwd.dq_NHD, {N, H, D});
  o.ref_dk = from_vector(ref_bwd.dk_NHD, {N, Hkv, D});
  o.ref_dv = from_vector(ref_bwd.dv_NHD, {N, Hkv, D});
  o.peer = attention_torch(s, q, k, v, dout, dt, Rounding::kTorchEager);
  return cache.emplace(key, std::move(o)).first->second;
}

void run_case(size_t index, const AttentionCase& c, DType dtype, bool causal, uint32_t seed,
              synthpert::kernels::AttentionPath path = synthpert::kernels::AttentionPath::kMmaSync,
              int wgmma_warpgroups = 2, int wgmma_key_block = 64, bool wgmma_pingpong = false, bool wgmma_tma = false) {
  const at::ScalarType dt = torch_dtype(dtype);
  const AttentionShape s = shape_of(c, causal);
  const int64_t N = s.tokens();
  const int H = c.heads, Hkv = c.kv_heads, D = c.head_dim;
  int max_seqlen = 0;
  for (size_t b = 0; b + 1 < c.cu_seqlens.size(); ++b)
    max_seqlen = std::max(max_seqlen, c.cu_seqlens[b + 1] - c.cu_seqlens[b]);
  INFO("N=" << N << " H=" << H << " Hkv=" << Hkv << " D=" << D << " causal=" << causal << " strided=" << c.strided
            << " dtype=" << synthpert::kernels::dtype_name(dtype) << " forward="
            << (path == synthpert::kernels::AttentionPath::kWgmma
                    ? "wgmma x" + std::to_string(wgmma_warpgroups) + " warpgroups, " + std::to_string(wgmma_key_block) +
                          "-key tiles" + (wgmma_pingpong ? ", producer warpgroup and ping-pong" : "") +
                          (wgmma_tma ? ", TMA loads" : "")
                    : std::string("mma.sync")));

  const Oracles& oracles = oracles_for(index, c, dtype, causal, seed);
  const at::Tensor &q = oracles.in.q_NHD, &k = oracles.in.k_NHD, &v = oracles.in.v_NHD, &dout = oracles.in.dout_NHD;
  const at::Tensor &ref_out = oracles.ref_out, &ref_lse = oracles.ref_lse, &ref_dq = oracles.ref_dq,
                   &ref_dk = oracles.ref_dk, &ref_dv = oracles.ref_dv;

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
  fa.path = path;
  fa.wgmma_warpgroups = wgmma_warpgroups;
  fa.wgmma_key_block = wgmma_key_block;
  fa.wgmma_pingpong = wgmma_pingpong;
  fa.wgmma_tma = wgmma_tma;
  fa.q = in_view(q_);
  fa.k = in_view(k_);
  fa.v = in_view(v_);
  fa.out = out_view(o_);
  fa.lse_HN = lse.as<float>();
  // A non-default stream: the launchers must put everything on the given one.
  // It does not order itself after the legacy-stream uploads above, hence the
  // device-wide sync first.
  cuda_ok(cudaDeviceSynchronize(), "uploads");
  cudaStream_t stream = nullptr;
  cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  synthpert::kernels::attention_forward(fa, stream);
  cuda_ok(cudaStreamSynchronize(stream), "attention_forward");
  const at::Tensor out = o_.download();
  std::vector<float> lse_host(static_cast<size_t>(N * H));
  lse.download(lse_host.data(), lse_host.size() * sizeof(float));
  const at::Tensor lse_got = at::tensor(std::vector<double>(lse_host.begin(), lse_host.end()), at::kDouble).reshape({H, N});
  const AttentionTensors& peer = oracles.peer;
  const double out_floor = half_ulp(dt, max_abs(ref_out));
  check_within_peer("out", max_abs_err(out, ref_out), max_abs_err(peer.out_NHD, ref_out), out_floor);
  check_within_peer("lse", max_abs_err(lse_got, ref_lse), max_abs_err(peer.lse_HN, ref_lse),
                    half_ulp(dt, max_abs(ref_lse)));
  // The backward kernels run once per case, after the mma.sync forward:
  // mma.sync with 64 and with 128 keys per block, and the wgmma one where it
  // can run.
  if (path == synthpert::kernels::AttentionPath::kWgmma) {
    cuda_ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
    return;
  }
  struct BackwardKernel {
    synthpert::kernels::AttentionPath path;
    int key_block;
  };
  std::vector<BackwardKernel> backward_kernels = {{synthpert::kernels::AttentionPath::kMmaSync, 64},
                                                  {synthpert::kernels::AttentionPath::kMmaSync, 128}};
  if (synthpert::kernels::attention_wgmma_available())
    backward_kernels.push_back({synthpert::kernels::AttentionPath::kWgmma, 0});
  const double grad_floor = half_ulp(dt, std::max({max_abs(ref_dq), max_abs(ref_dk), max_abs(ref_dv)}));
  for (const BackwardKernel& kernel : backward_kernels) {
    INFO("backward " << (kernel.path == synthpert::kernels::AttentionPath::kWgmma ? "wgmma" : "mma.sync")
                     << " key_block " << kernel.key_block);
    dq_.upload_poison();
    dk_.upload_poison();
    dv_.upload_poison();
    cuda_ok(cudaDeviceSynchronize(), "poison uploads");
    synthpert::kernels::AttentionBackwardArgs ba;
    ba.problem = prob;
    ba.key_block = kernel.key_block;
    ba.path = kernel.path;
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
    synthpert::kernels::attention_backward(ba, stream);
    cuda_ok(cudaStreamSynchronize(stream), "attention_backward");
    check_within_peer("dq", max_abs_err(dq_.download(), ref_dq), max_abs_err(peer.dq_NHD, ref_dq), grad_floor);
    check_within_peer("dk", max_abs_err(dk_.download(), ref_dk), max_abs_err(peer.dk_NHD, ref_dk), grad_floor);
    check_within_peer("dv", max_abs_err(dv_.download(), ref_dv), max_abs_err(peer.dv_NHD, ref_dv), grad_floor);
  }
  cuda_ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

// Shapes up to 256 tokens are "small"; the rest carry the [large] tag so the
// sanitizer runs (orders of magnitude slower) can leave them out. Each forward
// kernel is named, never kAuto, so both are checked on every device that runs
// them; kAuto's choice between them is checked on its own (below).
void run_cases(DType dtype, bool large,
               synthpert::kernels::AttentionPath path = synthpert::kernels::AttentionPath::kMmaSync,
               int wgmma_warpgroups = 2, int wgmma_key_block = 64, bool wgmma_pingpong = false,
               bool wgmma_tma = false) {
  for (size_t i = 0; i < attention_cases().size(); ++i) {
    const AttentionCase& c = attention_cases()[i];
    if ((c.cu_seqlens.back() > 256) != large) continue;
    for (bool causal : {true, false})
      run_case(i, c, dtype, causal, attention_seed(dtype == DType::kBF16, i, causal), path, wgmma_warpgroups,
               wgmma_key_block, wgmma_pingpong, wgmma_tma);
  }
}

// The wgmma forward (sm_90a code on a compute capability 9.0 device, or the
// emulation), blocks of one and of two warpgroups, the latter also with a
// producer warpgroup and ping-pong (loading with cp.async or TMA), 64- and
// 128-key tiles, on the same shapes and rule: out and lse against the fp64
// reference.
void run_wgmma_cases(DType dtype, bool large) {
  if (!synthpert::kernels::attention_wgmma_available()) {
    WARN("skipped: the wgmma forward needs a compute capability 9.0 device and a build with sm_90a code");
    return;
  }
  for (int key_block : {64, 128}) {
    for (int warpgroups : {1, 2})
      run_cases(dtype, large, synthpert::kernels::AttentionPath::kWgmma, warpgroups, key_block);
    run_cases(dtype, large, synthpert::kernels::AttentionPath::kWgmma, 2, key_block, true);
    run_cases(dtype, large, synthpert::kernels::AttentionPath::kWgmma, 2, key_block, true, true);
  }
}

}  // namespace

TEST_CASE("attention kernels match the reference (bf16, small)", "[gpu][attention]") { run_cases(DType::kBF16, false); }
TEST_CASE("attention kernels match the reference (f16, small)", "[gpu][attention]") { run_cases(DType::kF16, false); }
TEST_CASE("attention kernels match the reference (bf16, large)", "[gpu][attention][large]") { run_cases(DType::kBF16, true); }
TEST_CASE("attention kernels match the reference (f16, large)", "[gpu][attention][large]") { run_cases(DType::kF16, true); }
TEST_CASE("wgmma attention forward matches the reference (bf16, small)", "[gpu][attention][attention_wgmma]") {
  run_wgmma_cases(DType::kBF16, false);
}
TEST_CASE("wgmma attention forward matches the reference (f16, small)", "[gpu][attention][attention_wgmma]") {
  run_wgmma_cases(DType::kF16, false);
}
TEST_CASE("wgmma attention forward matches the reference (bf16, large)", "[gpu][attention][attention_wgmma][large]") {
  run_wgmma_cases(DType::kBF16, true);
}

// kAuto's rule against the H200 measurements it rests on
// (benchmarks/results/attention-nvidia-h200-2026-12-04.md): at head dim 128
// the wgmma forward beat mma.sync at every length, one warpgroup per block
// ahead up to 1024 tokens, two from 4096 (a tie at 2048); head dim 64 was not
// measured. A named path is kept as asked.
TEST_CASE("attention kAuto picks the forward measured faster", "[gpu][attention]") {
  using synthpert::kernels::AttentionPath;
  const bool wgmma = synthpert::kernels::attention_wgmma_available();
  INFO("wgmma available: " << wgmma);
  synthpert::kernels::AttentionForwardArgs a;
  struct Expect {
    int head_dim, max_seqlen;
    AttentionPath path;
    int warpgroups;
  };
  const std::vector<Expect> expected = {
      {128, 512, wgmma ? AttentionPath::kWgmma : AttentionPath::kMmaSync, wgmma ? 1 : a.wgmma_warpgroups},
      {128, 1024, wgmma ? AttentionPath::kWgmma : AttentionPath::kMmaSync, wgmma ? 1 : a.wgmma_warpgroups},
      {128, 4096, wgmma ? AttentionPath::kWgmma : AttentionPath::kMmaSync, 2},
      {128, 16384, wgmma ? AttentionPath::kWgmma : AttentionPath::kMmaSync, 2},
      {64, 512, AttentionPath::kMmaSync, a.wgmma_warpgroups},
      {64, 16384, AttentionPath::kMmaSync, a.wgmma_warpgroups},
  };
  for (const Expect& e : expected) {
    INFO("head_dim " << e.head_dim << ", max_seqlen " << e.max_seqlen);
    a.problem.head_dim = e.head_dim;
    a.problem.max_seqlen = e.max_seqlen;
    a.path = AttentionPath::kAuto;
    const auto choice = synthpert::kernels::attention_forward_choice(a);
    CHECK(choice.path == e.path);
    if (choice.path == AttentionPath::kWgmma) {
      CHECK(choice.wgmma_warpgroups == e.warpgroups);
      CHECK(choice.wgmma_key_block == 64);  // the 128-key tile is not measured yet
      CHECK(!choice.wgmma_pingpong);        // nor the ping-pong kernel
      CHECK(!choice.wgmma_tma);
    }
  }
  a.problem.head_dim = 128;
  a.wgmma_warpgroups = 2;
  a.path = AttentionPath::kMmaSync;
  CHECK(synthpert::kernels::attention_forward_choice(a).path == AttentionPath::kMmaSync);
  a.path = AttentionPath::kWgmma;
  a.problem.max_seqlen = 64;
  a.wgmma_key_block = 128;
  a.wgmma_pingpong = true;
  a.wgmma_tma = true;
  const auto named = synthpert::kernels::attention_forward_choice(a);
  CHECK(named.path == AttentionPath::kWgmma);
  CHECK(named.wgmma_warpgroups == 2);
  CHECK(named.wgmma_key_block == 128);
  CHECK(named.wgmma_pingpong);
  CHECK(named.wgmma_tma);
}

#endif  // SYNTHPERT_NO_KERNELS
