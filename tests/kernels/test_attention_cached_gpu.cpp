// The attention forward over keys held apart from the queries (cu_seqlens_k,
// seqused_k: continuing sequences whose earlier keys sit in a KV cache's
// regions), every forward kernel, against the fp64 reference ([gpu]).
//
// Oracle: each sequence written out whole (all of its keys' tokens, each with
// a query), run through the self-attention reference; the kernel's queries
// are the sequence's last ones, so its rows must be the reference's last
// rows. The eager-torch peer gives the tolerance the same way
// (test_attention_common.h).
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/attention_ref.h"

namespace {

using synthpert::kernels::AttentionPath;
using synthpert::kernels::DType;
using namespace synthpert::test;

// One continued sequence: `keys` tokens in all, the last `queries` of them
// new (queried), in a cache region of keys + gap slots.
struct Continued {
  int keys, queries, gap;
};

// Odd lengths around the 64-key tiles: one new token after a few; a query
// block ending inside a tile; 64 queries spanning two key tiles; a sequence
// with no earlier keys (queries == keys); queries starting past two tiles;
// and queries with no key at all.
const std::vector<Continued>& continued_sequences() {
  static const std::vector<Continued> all = {{5, 1, 11},  {70, 5, 10}, {77, 64, 3},
                                             {10, 10, 0}, {130, 7, 6}, {0, 3, 16}};
  return all;
}

struct KernelChoice {
  AttentionPath path;
  int warpgroups = 2, key_block = 64;
  bool pingpong = false, tma = false;
  std::string name() const {
    if (path == AttentionPath::kMmaSync) return "mma.sync";
    return "wgmma x" + std::to_string(warpgroups) + ", " + std::to_string(key_block) + "-key tiles" +
           (pingpong ? ", ping-pong" : "") + (tma ? ", TMA" : "");
  }
};

void run_continued(const KernelChoice& kernel, DType dtype, int heads, int kv_heads, int head_dim, bool causal,
                   bool use_seqused, uint32_t seed) {
  const at::ScalarType dt = torch_dtype(dtype);
  const auto& seqs = continued_sequences();
  const int B = static_cast<int>(seqs.size()), H = heads, Hkv = kv_heads, D = head_dim;
  INFO("forward " << kernel.name() << ", " << synthpert::kernels::dtype_name(dtype) << ", H=" << H << " Hkv=" << Hkv
                  << " D=" << D << " causal=" << causal << " seqused_k=" << use_seqused);

  // Whole sequences for the oracle, packed one after another.
  synthpert::reference::AttentionShape whole;
  whole.heads = H;
  whole.kv_heads = Hkv;
  whole.head_dim = D;
  whole.causal = causal;
  whole.scale = 1.0 / std::sqrt(static_cast<double>(D));
  whole.cu_seqlens = {0};
  for (const Continued& c : seqs) whole.cu_seqlens.push_back(whole.cu_seqlens.back() + c.keys);
  const int64_t Nw = whole.tokens();
  const at::Tensor qw = random_rounded({Nw, H, D}, dt, seed), kw = random_rounded({Nw, Hkv, D}, dt, seed + 1),
                   vw = random_rounded({Nw, Hkv, D}, dt, seed + 2);
  const auto ref = synthpert::reference::attention_forward_ref(whole, to_vector(qw), to_vector(kw), to_vector(vw));
  const at::Tensor ref_out = at::tensor(ref.out_NHD, at::kDouble).reshape({Nw, H, D});
  const at::Tensor ref_lse = at::tensor(ref.lse_HN, at::kDouble).reshape({H, Nw});
  const AttentionTensors peer =
      attention_torch(whole, qw, kw, vw, at::zeros({Nw, H, D}, at::kDouble), dt, Rounding::kTorchEager);

  // The kernel's inputs: each sequence's last queries packed; its keys at the
  // start of a region with `gap` unused slots after them (without seqused_k
  // the regions are exactly the keys). The unused slots hold NaN, which no
  // key tile may read, except under TMA, whose boxes do read them (masked,
  // weighted 0, kernels/attention.h): finite values there.
  std::vector<int32_t> cu_q = {0}, cu_k = {0}, used;
  std::vector<int64_t> query_rows, key_rows;  // rows of the whole packing, in kernel order
  std::vector<int64_t> slots;                 // kernel key slot of each whole key row
  int max_queries = 0;
  for (int b = 0; b < B; ++b) {
    const Continued& c = seqs[static_cast<size_t>(b)];
    const int64_t first = whole.cu_seqlens[static_cast<size_t>(b)];
    // The no-key sequence's queries have no row of their own: row 0 for now.
    for (int i = c.keys - c.queries; i < c.keys; ++i) query_rows.push_back(c.keys == 0 ? 0 : first + i);
    for (int j = 0; j < c.keys; ++j) {
      key_rows.push_back(first + j);
      slots.push_back(cu_k.back() + j);
    }
    cu_q.push_back(cu_q.back() + c.queries);
    cu_k.push_back(cu_k.back() + c.keys + (use_seqused ? c.gap : 0));
    used.push_back(c.keys);
    max_queries = std::max(max_queries, c.queries);
  }
  const int64_t Nq = cu_q.back(), Nk = cu_k.back();
  const at::Tensor qi = at::tensor(query_rows, at::kLong);
  at::Tensor q = qw.index_select(0, qi);
  // The no-key sequence's queries: fresh values, they match no oracle row.
  q = q.clone();
  {
    int64_t row = 0;
    for (int b = 0; b < B; ++b) {
      const Continued& c = seqs[static_cast<size_t>(b)];
      if (c.keys == 0) q.narrow(0, row, c.queries).copy_(random_rounded({c.queries, H, D}, dt, seed + 3));
      row += c.queries;
    }
  }
  const double unused = kernel.tma ? 0.5 : std::numeric_limits<double>::quiet_NaN();
  at::Tensor k = at::full({Nk, Hkv, D}, unused, at::kDouble), v = at::full({Nk, Hkv, D}, unused, at::kDouble);
  const at::Tensor si = at::tensor(slots, at::kLong), ki = at::tensor(key_rows, at::kLong);
  k.index_copy_(0, si, kw.index_select(0, ki));
  v.index_copy_(0, si, vw.index_select(0, ki));

  // Token-major, heads padded by 8 and tokens by 16 more: strides as a cache has none of.
  auto make = [&](int64_t rows, int h) { return StridedDeviceTensor(rows, h, D, h * (D + 8) + 16, D + 8, dt); };
  StridedDeviceTensor q_ = make(Nq, H), k_ = make(Nk, Hkv), v_ = make(Nk, Hkv), o_ = make(Nq, H);
  q_.upload(q);
  k_.upload(k);
  v_.upload(v);
  o_.upload_poison();
  DeviceBuffer cu_q_dev(cu_q.size() * sizeof(int32_t)), cu_k_dev(cu_k.size() * sizeof(int32_t)),
      used_dev(used.size() * sizeof(int32_t)), lse(static_cast<size_t>(std::max<int64_t>(1, Nq * H)) * sizeof(float));
  cu_q_dev.upload(cu_q.data(), cu_q_dev.bytes());
  cu_k_dev.upload(cu_k.data(), cu_k_dev.bytes());
  used_dev.upload(used.data(), used_dev.bytes());

  synthpert::kernels::AttentionForwardArgs a;
  auto& p = a.problem;
  p.dtype = dtype;
  p.head_dim = D;
  p.causal = causal;
  p.softmax_scale = static_cast<float>(whole.scale);
  p.batch = B;
  p.heads = H;
  p.kv_heads = Hkv;
  p.total_tokens = Nq;
  p.max_seqlen = max_queries;
  p.cu_seqlens = cu_q_dev.as<int32_t>();
  p.cu_seqlens_k = cu_k_dev.as<int32_t>();
  p.seqused_k = use_seqused ? used_dev.as<int32_t>() : nullptr;
  p.total_keys = Nk;
  a.path = kernel.path;
  a.wgmma_warpgroups = kernel.warpgroups;
  a.wgmma_key_block = kernel.key_block;
  a.wgmma_pingpong = kernel.pingpong;
  a.wgmma_tma = kernel.tma;
  a.q = {q_.device.get(), q_.token_stride, q_.head_stride};
  a.k = {k_.device.get(), k_.token_stride, k_.head_stride};
  a.v = {v_.device.get(), v_.token_stride, v_.head_stride};
  a.out = {o_.device.get(), o_.token_stride, o_.head_stride};
  a.lse_HN = lse.as<float>();
  cuda_ok(cudaDeviceSynchronize(), "uploads");
  synthpert::kernels::attention_forward(a, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "attention_forward");
  const at::Tensor out = o_.download();
  std::vector<float> lse_host(static_cast<size_t>(Nq * H));
  lse.download(lse_host.data(), lse_host.size() * sizeof(float));
  const at::Tensor lse_got =
      at::tensor(std::vector<double>(lse_host.begin(), lse_host.end()), at::kDouble).reshape({H, Nq});

  // Rows with keys against the oracle's rows; the no-key rows are 0 and -inf.
  std::vector<int64_t> kernel_rows, oracle_rows, empty_rows;
  {
    int64_t row = 0;
    for (int b = 0; b < B; ++b) {
      const Continued& c = seqs[static_cast<size_t>(b)];
      for (int i = 0; i < c.queries; ++i, ++row) {
        if (c.keys == 0) {
          empty_rows.push_back(row);
        } else {
          kernel_rows.push_back(row);
          oracle_rows.push_back(query_rows[static_cast<size_t>(row)]);
        }
      }
    }
  }
  const at::Tensor kr = at::tensor(kernel_rows, at::kLong), orr = at::tensor(oracle_rows, at::kLong);
  const at::Tensor want_out = ref_out.index_select(0, orr), want_lse = ref_lse.index_select(1, orr);
  check_within_peer("out", max_abs_err(out.index_select(0, kr), want_out),
                    max_abs_err(peer.out_NHD.index_select(0, orr), want_out), half_ulp(dt, max_abs(want_out)));
  check_within_peer("lse", max_abs_err(lse_got.index_select(1, kr), want_lse),
                    max_abs_err(peer.lse_HN.index_select(1, orr), want_lse), half_ulp(dt, max_abs(want_lse)));
  const at::Tensor er = at::tensor(empty_rows, at::kLong);
  INFO("queries of the sequence without keys: out 0, lse -inf");
  CHECK(out.index_select(0, er).abs().max().item<double>() == 0.0);
  CHECK(lse_got.index_select(1, er).eq(-INFINITY).all().item<bool>());
}

std::vector<KernelChoice> forward_kernels() {
  std::vector<KernelChoice> all = {{AttentionPath::kMmaSync}};
  if (!synthpert::kernels::attention_wgmma_available()) {
    WARN("skipped the wgmma forwards: they need a compute capability 9.0 device and a build with sm_90a code");
    return all;
  }
  for (int key_block : {64, 128}) {
    all.push_back({AttentionPath::kWgmma, 1, key_block});
    all.push_back({AttentionPath::kWgmma, 2, key_block});
    all.push_back({AttentionPath::kWgmma, 2, key_block, true});
    all.push_back({AttentionPath::kWgmma, 2, key_block, true, true});
  }
  return all;
}

}  // namespace

TEST_CASE("attention forward over keys held apart matches the reference", "[gpu][attention]") {
  uint32_t seed = 5000;
  for (const KernelChoice& kernel : forward_kernels()) {
    // Llama's 4:1 GQA at head dim 128 and 3:1 at 64 (regions without unused
    // slots); f16 and the full mask at head dim 64 on mma.sync only, which
    // shares the block's key bookkeeping with the others (the emulated runs
    // of every wgmma variant are what this test's time goes to).
    const bool mma = kernel.path == AttentionPath::kMmaSync;
    for (bool causal : {true, false}) {
      run_continued(kernel, DType::kBF16, 8, 2, 128, causal, true, seed += 10);
      if (causal || mma) run_continued(kernel, DType::kBF16, 3, 1, 64, causal, false, seed += 10);
      if (mma) run_continued(kernel, DType::kF16, 6, 2, 64, causal, true, seed += 10);
    }
  }
}

#endif  // SYNTHPERT_NO_KERNELS
