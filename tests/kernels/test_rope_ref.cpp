// The RoPE reference against libtorch fp64 (rotate_half formula, autograd)
// and finite differences; the host inverse-frequency helpers of kernels/rope.h
// against the engine's rope_inv_freq (default and llama3 scaling) ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "engine/config.h"
#include "engine/rope.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/rope_ref.h"
#ifndef SYNTHPERT_NO_KERNELS
#include "kernels/rope.h"
#endif

using namespace synthpert::test;
using synthpert::reference::rope_ref;

namespace {

std::vector<float> test_inv_freq(int head_dim, double theta) {
  std::vector<float> f(size_t(head_dim / 2));
  for (int i = 0; i < head_dim / 2; ++i) f[size_t(i)] = float(std::pow(theta, -2.0 * i / head_dim));
  return f;
}

// y = x * cos + rotate_half(x) * sin with the angle formed in fp32 by torch.
torch::Tensor torch_rope(const torch::Tensor& x_NHD, const std::vector<int64_t>& pos, const std::vector<float>& f) {
  const int64_t N = x_NHD.size(0), half = x_NHD.size(2) / 2;
  const torch::Tensor angle = (torch::tensor(pos, torch::kInt64).to(torch::kFloat32).view({N, 1}) *
                               torch::tensor(f, torch::kFloat32).view({1, half}))
                                  .to(torch::kDouble);
  const torch::Tensor emb = torch::cat({angle, angle}, -1).unsqueeze(1);  // (N, 1, D)
  const torch::Tensor x1 = x_NHD.narrow(-1, 0, half), x2 = x_NHD.narrow(-1, half, half);
  return x_NHD * emb.cos() + torch::cat({-x2, x1}, -1) * emb.sin();
}

}  // namespace

TEST_CASE("rope reference matches libtorch fp64 rotate_half and autograd", "[cpu][rope]") {
  struct Case {
    int64_t tokens;
    int heads, dim;
  };
  for (const Case c : {Case{1, 1, 2}, Case{5, 3, 6}, Case{123, 2, 64}, Case{1023, 1, 10}}) {
    INFO("N=" << c.tokens << " H=" << c.heads << " D=" << c.dim);
    const size_t n = size_t(c.tokens * c.heads * c.dim);
    const auto x = randn(n, 51), dy = randn(n, 52);
    // Positions out of order, repeated, and large (long-context angles).
    std::vector<int64_t> pos(size_t(c.tokens));
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = int64_t((i * 7919) % 131072);
    const auto f = test_inv_freq(c.dim, 500000.0);
    torch::Tensor tx = tensor_of(x, {c.tokens, c.heads, c.dim}).set_requires_grad(true);
    const torch::Tensor y = torch_rope(tx, pos, f);
    y.backward(tensor_of(dy, {c.tokens, c.heads, c.dim}));
    CHECK(max_abs_diff(rope_ref(x, pos, f, c.heads, c.dim, false), y) < 1e-12);
    CHECK(max_abs_diff(rope_ref(dy, pos, f, c.heads, c.dim, true), tx.grad()) < 1e-12);
  }
}

TEST_CASE("rope reference backward matches finite differences", "[cpu][rope]") {
  const std::vector<int64_t> pos = {0, 3, 17};
  const auto f = test_inv_freq(4, 10000.0);
  const auto x = randn(3 * 2 * 4, 61), dy = randn(3 * 2 * 4, 62);
  const auto fd = finite_difference(
      [&](const std::vector<double>& v) { return dot(rope_ref(v, pos, f, 2, 4, false), dy); }, x);
  CHECK(max_abs_diff(rope_ref(dy, pos, f, 2, 4, true), fd) < 1e-8);
}

#ifndef SYNTHPERT_NO_KERNELS
TEST_CASE("rope inverse frequencies match the engine's (default and llama3)", "[cpu][rope]") {
  synthpert::engine::ModelConfig cfg;
  cfg.head_dim = 128;
  cfg.rope_theta = 500000.0;
  auto compare = [](const std::vector<float>& ours, const torch::Tensor& engine) {
    REQUIRE(int64_t(ours.size()) == engine.numel());
    const torch::Tensor e = engine.to(torch::kFloat32).contiguous();
    for (size_t i = 0; i < ours.size(); ++i) {
      INFO("i=" << i << " ours " << ours[i] << " engine " << e.data_ptr<float>()[i]);
      // Within two fp32 ulps: libm's powf and torch's vectorised pow may differ by one.
      CHECK(std::abs(ours[i] - e.data_ptr<float>()[i]) <= 2 * std::abs(e.data_ptr<float>()[i]) * 1.2e-7);
    }
  };
  compare(synthpert::kernels::rope_inv_freq(128, 500000.0), synthpert::engine::rope_inv_freq(cfg));
  cfg.rope_scaling.type = "llama3";
  cfg.rope_scaling.factor = 8.0;
  cfg.rope_scaling.low_freq_factor = 1.0;
  cfg.rope_scaling.high_freq_factor = 4.0;
  cfg.rope_scaling.original_max_position_embeddings = 8192;
  synthpert::kernels::RopeLlama3Scaling s;
  const auto ours = synthpert::kernels::rope_inv_freq_llama3(128, 500000.0, s);
  compare(ours, synthpert::engine::rope_inv_freq(cfg));
  // All three bands occur at these settings: kept, blended and divided by factor.
  const auto plain = synthpert::kernels::rope_inv_freq(128, 500000.0);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] == plain[i]) ++kept;
    else if (std::abs(ours[i] - plain[i] / 8) <= 1e-7f * plain[i]) ++divided;
    else ++blended;
  }
  CHECK(kept > 0);
  CHECK(divided > 0);
  CHECK(blended > 0);
}
#endif
