// The kernel branch of engine/packed_attention.cpp, run on CPU against the
// host emulation of kernels/attention (host_attention.cpp): bf16 inputs with
// strided q, GQA, several sequences, causal; output and the gradients of q,
// k and v against autograd through a masked softmax in fp64, and the engine's
// packed path against its dense one on a padded, packed batch.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
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
