// The kernel branch of engine/packed_attention.cpp, run on CPU against the
// host emulation of kernels/attention (host_attention.cpp): bf16 inputs with
// strided q, GQA, several sequences, causal; output and the gradients of q,
// k and v against autograd through a masked softmax in fp64, and the engine's
// packed path against its dense one on a padded, packed batch; and cached
// attention's kernel branch (new tokens over a KV cache) against the same
// masked softmax.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include "engine/cached_attention.h"
#include "engine/kernel_launch.h"
#include "engine/packed_attention.h"

#include "tests/engine_host/host_test_util.h"

#include <catch2/catch.hpp>

#include <limits>

using namespace synthpert::engine;
using synthpert::test::rel_err;

namespace {

torch::Tensor masked_softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const std::vector<int64_t>& seq_of_token, double scale) {
  const int64_t N = q.size(0), rep = q.size(1) / k.size(1);
  auto allowed = torch::zeros({N, N}, torch::kBool);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j <= i; ++j) allowed[i][j] = seq_of_token[i] == seq_of_token[j];
  auto s = torch::einsum("ihd,jhd->hij", {q, k.repeat_interleave(rep, 1)}) * scale;
  s = s.masked_fill(allowed.logical_not().unsqueeze(0), -std::numeric_limits<double>::infinity());
  return torch::einsum("hij,jhd->ihd", {torch::softmax(s, -1), v.repeat_interleave(rep, 1)});
}

}  // namespace

TEST_CASE("packed attention's kernel branch marshals the kernels' arguments", "[engine_host]") {
  REQUIRE(packed_attention_kernel_supports(torch::kCPU, torch::kBFloat16, 64));  // the host emulation build
  torch::manual_seed(7);
  const std::vector<int64_t> lengths = {5, 1, 70, 20};  // one sequence longer than a 64-token tile
  const int64_t H = 6, Hkv = 2, D = 64;
  int64_t N = 0;
  std::vector<int32_t> cu{0};
  std::vector<int64_t> seq_of_token;
  for (size_t s = 0; s < lengths.size(); ++s) {
    N += lengths[s];
    cu.push_back(static_cast<int32_t>(N));
    seq_of_token.insert(seq_of_token.end(), lengths[s], static_cast<int64_t>(s));
  }
  PackedSequences p;
  p.batch = 1;
  p.tokens = N;
  p.packed = N;
  p.max_seqlen = 70;
  p.cu_seqlens = torch::tensor(cu, torch::kInt32);
  p.token_index = torch::arange(N);
  const double scale = 0.125;

  // q strided: each head padded by 8, each token by 16 more.
  const auto q_store = torch::randn({N, H * (D + 8) + 16}).to(torch::kBFloat16);
  const auto q_bf = q_store.narrow(1, 0, H * (D + 8)).view({N, H, D + 8}).narrow(2, 0, D);
  REQUIRE(q_bf.stride(1) == D + 8);
  const auto k_bf = torch::randn({N, Hkv, D}).to(torch::kBFloat16);
  const auto v_bf = torch::randn({N, Hkv, D}).to(torch::kBFloat16);
  const auto w = torch::randn({N, H, D}, torch::kFloat64);

  auto q64 = q_bf.to(torch::kFloat64).requires_grad_(true), k64 = k_bf.to(torch::kFloat64).requires_grad_(true),
       v64 = v_bf.to(torch::kFloat64).requires_grad_(true);
  const auto ref = masked_softmax_attention(q64, k64, v64, seq_of_token, scale);
  (ref * w).sum().backward();

  auto q = q_bf.detach().requires_grad_(true), k = k_bf.clone().requires_grad_(true),
       v = v_bf.clone().requires_grad_(true);
  const auto out = packed_attention(q, k, v, p, /*causal=*/true, scale);
  CHECK(out.scalar_type() == torch::kBFloat16);
  (out.to(torch::kFloat64) * w).sum().backward();
  // bf16 outputs of an fp64 computation: a few bf16 steps at most.
  CHECK(rel_err(out, ref.detach()) < 2e-2);
  CHECK(rel_err(q.grad(), q64.grad()) < 2e-2);
  CHECK(rel_err(k.grad(), k64.grad()) < 2e-2);
  CHECK(rel_err(v.grad(), v64.grad()) < 2e-2);
}

// Views the kernels cannot stage with 16-byte loads: q at an 8-byte offset
// with a token stride of 4 mod 8 elements, and the output's gradient
// broadcast from one head-dim vector (strides (0, 0, 1)). The branch copies
// them; tests/simt runs the real launchers, which refuse both.
TEST_CASE("packed attention's kernel branch copies views the kernels cannot read", "[engine_host]") {
  torch::manual_seed(8);
  const int64_t H = 2, Hkv = 1, D = 64, N = 12;
  const std::vector<int64_t> seq_of_token = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  PackedSequences p;
  p.batch = 1;
  p.tokens = N;
  p.packed = N;
  p.max_seqlen = 9;
  p.cu_seqlens = torch::tensor(std::vector<int32_t>{0, 3, 12}, torch::kInt32);
  p.token_index = torch::arange(N);
  const double scale = 0.125;
  // Each view alone, so one refusal does not hide the other.
  const bool odd_q = GENERATE(true, false);
  {
    INFO((odd_q ? "q at an odd offset" : "q contiguous") << ", the gradient broadcast");
    const auto q_store = torch::randn({N, H * D + 4}).to(torch::kBFloat16);
    const auto q_bf = odd_q ? q_store.narrow(1, 4, H * D).view({N, H, D})
                            : q_store.narrow(1, 0, H * D).reshape({N, H, D}).contiguous();
    REQUIRE((q_bf.stride(0) % 8 == 4) == odd_q);
    const auto k_bf = torch::randn({N, Hkv, D}).to(torch::kBFloat16);
    const auto v_bf = torch::randn({N, Hkv, D}).to(torch::kBFloat16);
    const auto w_bf = torch::randn({D}).to(torch::kBFloat16);

    auto q64 = q_bf.to(torch::kFloat64).requires_grad_(true), k64 = k_bf.to(torch::kFloat64).requires_grad_(true),
         v64 = v_bf.to(torch::kFloat64).requires_grad_(true);
    const auto ref = masked_softmax_attention(q64, k64, v64, seq_of_token, scale);
    (ref * w_bf.to(torch::kFloat64)).sum().backward();

    auto q = q_bf.detach().requires_grad_(true), k = k_bf.clone().requires_grad_(true),
         v = v_bf.clone().requires_grad_(true);
    const auto out = packed_attention(q, k, v, p, /*causal=*/true, scale);
    (out.sum(at::IntArrayRef{0, 1}) * w_bf).sum().backward();  // out's gradient: sum's expand of w, strides (0, 0, 1)
    CHECK(rel_err(out, ref.detach()) < 2e-2);
    CHECK(rel_err(q.grad(), q64.grad()) < 2e-2);
    CHECK(rel_err(k.grad(), k64.grad()) < 2e-2);
    CHECK(rel_err(v.grad(), v64.grad()) < 2e-2);
  }
}

// engine/cached_attention.cpp: its kernel branch (bf16, the cache read in
// place in either layout) and its torch math (f32) against the masked
// softmax of each row written out whole, its new tokens' rows last.
TEST_CASE("cached attention reads the cache in place, in either layout", "[engine_host]") {
  torch::manual_seed(11);
  const int64_t B = 3, S = 48, H = 6, Hkv = 2, D = 64;
  const std::vector<int64_t> keys = {7, 33, 40}, queries = {1, 20, 40};  // one new token; a chunk; a first prefill
  const double scale = 0.125;
  const auto rows = cached_sequences(queries, keys, torch::kCPU);
  const int64_t N = rows.cu_queries.back();
  const auto q = torch::randn({N, H, D}).to(torch::kBFloat16);
  // Unused slots hold NaN: nothing may read them.
  auto k = torch::full({B, S, Hkv, D}, std::numeric_limits<float>::quiet_NaN()).to(torch::kBFloat16);
  auto v = k.clone();
  for (int64_t b = 0; b < B; ++b) {
    k[b].narrow(0, 0, keys[b]).copy_(torch::randn({keys[b], Hkv, D}));
    v[b].narrow(0, 0, keys[b]).copy_(torch::randn({keys[b], Hkv, D}));
  }
  auto want = torch::empty({N, H, D}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t Lk = keys[b], Lq = queries[b], first = rows.cu_queries[b];
    auto whole_q = torch::zeros({Lk, H, D}, torch::kFloat64);
    whole_q.narrow(0, Lk - Lq, Lq).copy_(q.narrow(0, first, Lq));
    const auto whole = masked_softmax_attention(whole_q, k[b].narrow(0, 0, Lk).to(torch::kFloat64),
                                                v[b].narrow(0, 0, Lk).to(torch::kFloat64),
                                                std::vector<int64_t>(static_cast<size_t>(Lk), 0), scale);
    want.narrow(0, first, Lq).copy_(whole.narrow(0, Lk - Lq, Lq));
  }
  for (bool token_major : {true, false}) {
    INFO("token-major " << token_major);
    // The cache's head-major tensor (B, Hkv, S, D) seen by token, as KVCache::by_token gives it.
    const auto kc = token_major ? k : k.transpose(1, 2).contiguous().transpose(1, 2);
    const auto vc = token_major ? v : v.transpose(1, 2).contiguous().transpose(1, 2);
    REQUIRE(kc.is_contiguous() == token_major);
    const auto out = cached_attention(q, kc, vc, rows, scale);
    CHECK(out.scalar_type() == torch::kBFloat16);
    CHECK(rel_err(out, want) < 2e-2);
    const auto out_math =
        cached_attention(q.to(torch::kFloat32), kc.to(torch::kFloat32), vc.to(torch::kFloat32), rows, scale);
    CHECK(rel_err(out_math, want) < 1e-5);
  }
  CHECK_THROWS_WITH(cached_sequences({3}, {2}, torch::kCPU), Catch::Contains("row 0 has 3 new tokens but 2"));
}
