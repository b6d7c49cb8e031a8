// The kernel branch of engine/lora_bank.cpp (kernels/lora's serving launch),
// run on CPU against the host emulation of lora_multi_apply
// (host_ce_lora.cpp): bf16 inputs, x a strided view, rows on every adapter
// and on none, directly and through Linear::forward; adapters with many tokens
// computed dense beside the launch; compared with the plain expression in
// fp64 on the same bf16 values.
// libtorch before Catch: c10 defines its own CHECK.
#include "engine/kernel_launch.h"
#include "engine/linear.h"
#include "engine/lora_bank.h"

#include "tests/engine_host/host_memory.h"
#include "tests/engine_host/host_test_util.h"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace synthpert::engine;
using synthpert::test::rel_err;

namespace {

// y0 + s_i (x A_i^T) B_i^T per row, in fp64.
torch::Tensor bank_ref(const torch::Tensor& y0, const torch::Tensor& x, const LoraBank& bank,
                       const std::vector<int64_t>& token_adapter) {
  auto y = y0.to(torch::kFloat64).clone();
  const auto xd = x.to(torch::kFloat64), A = bank.A.to(torch::kFloat64), B = bank.B.to(torch::kFloat64);
  for (size_t n = 0; n < token_adapter.size(); ++n) {
    const int64_t i = token_adapter[n];
    if (i < 0) continue;
    y[n] += torch::mv(B[i], torch::mv(A[i], xd[n])) * bank.scale_values[i];
  }
  return y;
}

}  // namespace

TEST_CASE("the adapter bank's kernel branch marshals lora_multi_apply's arguments", "[engine_host]") {
  REQUIRE(kernels_apply(torch::kCPU, torch::kBFloat16));  // the host emulation build
  torch::manual_seed(12);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const int64_t M = 3, R = 8, K = 40, O = 27;
  LoraBank bank;
  bank.A = bf(torch::randn({M, R, K}) * 0.3);
  bank.B = bf(torch::randn({M, O, R}) * 0.3);
  bank.scale_values = {0.75, -2.0, 1.5};
  bank.scales = torch::tensor(bank.scale_values, torch::kFloat32);

  SECTION("apply_lora_bank on a strided x, 4 rows of 5 tokens") {
    const auto x_store = bf(torch::randn({20, 48}));
    const auto x = x_store.narrow(1, 3, K);
    REQUIRE(x.stride(0) == 48);
    const std::vector<int64_t> rows = {2, -1, 0, 1};
    const auto routing = AdapterRouting::for_rows(rows, 5, M, torch::kCPU);
    std::vector<int64_t> per_token;
    for (const int64_t i : rows)
      for (int t = 0; t < 5; ++t) per_token.push_back(i);
    const auto y0 = bf(torch::randn({20, O}));
    auto y = y0.clone();
    apply_lora_bank(y, x, bank, routing);
    const auto ref = bank_ref(y0, x, bank, per_token);
    CHECK(rel_err(y, ref) < 1e-2);
    CHECK(torch::equal(y.narrow(0, 5, 5), y0.narrow(0, 5, 5)));  // row 1: no adapter
  }

  SECTION("Linear::forward adds the bank's update to the base GEMM") {
    Linear lin;
    lin.weight = bf(torch::randn({O, K}) * 0.2);
    lin.bias = bf(torch::randn({O}));
    lin.bank = std::make_shared<LoraBank>(bank);
    const auto x = bf(torch::randn({2, 3, K}));  // (B, T, K)
    const auto routing = AdapterRouting::for_rows({1, 0}, 3, M, torch::kCPU);
    const auto y = lin.forward(x, false, &routing);
    REQUIRE(y.sizes() == torch::IntArrayRef({2, 3, O}));
    const auto x2 = x.reshape({6, K});
    const auto base = torch::addmm(lin.bias.to(torch::kFloat64), x2.to(torch::kFloat64), lin.weight.to(torch::kFloat64).t());
    const auto ref = bank_ref(base, x2, bank, {1, 1, 1, 0, 0, 0});
    CHECK(rel_err(y.reshape({6, O}), ref) < 2e-2);
    CHECK_THROWS_WITH(lin.forward(x, true, &routing), Catch::Contains("inference only"));
  }
}

TEST_CASE("adapters with many tokens go dense, the rest through one gather launch", "[engine_host]") {
  REQUIRE(kernels_apply(torch::kCPU, torch::kBFloat16));
  torch::manual_seed(13);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const int64_t M = 3, R = 8, K = 24, O = 19, T = 40;  // 40 tokens per row
  LoraBank bank;
  bank.A = bf(torch::randn({M, R, K}) * 0.3);
  bank.B = bf(torch::randn({M, O, R}) * 0.3);
  bank.scale_values = {1.25, -0.5, 2.0};
  bank.scales = torch::tensor(bank.scale_values, torch::kFloat32);
  auto& calls = synthpert::host_emulation::lora_multi_calls();

  // Adapter 0 has two rows (80 tokens >= kLoraBankDenseTokens): dense. Adapters
  // 1 and 2 have one row each (40 tokens): gathered by one launch.
  static_assert(2 * T >= kLoraBankDenseTokens && T < kLoraBankDenseTokens);
  const std::vector<int64_t> rows = {0, 1, -1, 0, 2};
  const auto routing = AdapterRouting::for_rows(rows, T, M, torch::kCPU);
  REQUIRE(routing.groups.size() == 3);
  CHECK(routing.groups[0].dense());
  CHECK_FALSE(routing.groups[1].dense());
  CHECK_FALSE(routing.groups[2].dense());
  std::vector<int64_t> per_token;
  std::vector<int32_t> gathered;
  for (const int64_t i : rows)
    for (int64_t t = 0; t < T; ++t) {
      per_token.push_back(i);
      gathered.push_back(i == 0 ? -1 : static_cast<int32_t>(i));
    }
  const auto x = bf(torch::randn({5 * T, K}));
  const auto y0 = bf(torch::randn({5 * T, O}));
  auto y = y0.clone();
  const int before = calls.count;
  apply_lora_bank(y, x, bank, routing);
  CHECK(calls.count == before + 1);
  CHECK(calls.last_row_adapter == gathered);
  CHECK(rel_err(y, bank_ref(y0, x, bank, per_token)) < 1e-2);
  CHECK(torch::equal(y.narrow(0, 2 * T, T), y0.narrow(0, 2 * T, T)));  // row 2: no adapter

  // Every adapter dense: no launch at all.
  const auto dense_only = AdapterRouting::for_rows({1, 1, -1}, T, M, torch::kCPU);
  CHECK_FALSE(dense_only.gather_adapter.defined());
  auto y2 = y0.narrow(0, 0, 3 * T).clone();
  apply_lora_bank(y2, x.narrow(0, 0, 3 * T), bank, dense_only);
  CHECK(calls.count == before + 1);
  std::vector<int64_t> dense_tokens(3 * T, -1);
  std::fill(dense_tokens.begin(), dense_tokens.begin() + 2 * T, 1);
  CHECK(rel_err(y2, bank_ref(y0.narrow(0, 0, 3 * T), x.narrow(0, 0, 3 * T), bank, dense_tokens)) < 1e-2);
}
