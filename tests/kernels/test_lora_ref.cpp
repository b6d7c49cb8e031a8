// The LoRA reference against libtorch fp64 (linear + low-rank update,
// autograd for x, A and B; a per-adapter masked loop for the serving path)
// and central finite differences ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/lora_ref.h"

using namespace synthpert::test;
using synthpert::reference::LoraDims;

namespace {

// Row adapters for n rows over m adapters: runs of equal indices (segments),
// scattered singles and rows without an adapter (-1).
std::vector<int32_t> row_adapters(int64_t n, int64_t m) {
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = (i % 7 == 6) ? -1 : int32_t((i / 3 + i % 2) % m);
  return idx;
}

}  // namespace

TEST_CASE("lora reference matches libtorch fp64 forward and autograd", "[cpu][lora]") {
  for (const LoraDims d : {LoraDims{1, 3, 5, 1}, LoraDims{5, 7, 11, 2}, LoraDims{123, 16, 24, 4},
                           LoraDims{1023, 8, 12, 3}}) {
    INFO("N=" << d.rows << " K=" << d.in << " O=" << d.out << " R=" << d.rank);
    const auto x = randn(size_t(d.rows * d.in), 1), w = randn(size_t(d.out * d.in), 2),
               a = randn(size_t(d.rank * d.in), 3), b = randn(size_t(d.out * d.rank), 4),
               dy = randn(size_t(d.rows * d.out), 5);
    const double s = 2.5;
    torch::Tensor tx = tensor_of(x, {d.rows, d.in}).set_requires_grad(true);
    torch::Tensor ta = tensor_of(a, {d.rank, d.in}).set_requires_grad(true);
    torch::Tensor tb = tensor_of(b, {d.out, d.rank}).set_requires_grad(true);
    const torch::Tensor tw = tensor_of(w, {d.out, d.in});
    // The PEFT formulation: base linear plus lora_B(lora_A(x)) * scaling.
    const torch::Tensor y =
        torch::nn::functional::linear(tx, tw) +
        torch::nn::functional::linear(torch::nn::functional::linear(tx, ta), tb) * s;
    y.backward(tensor_of(dy, {d.rows, d.out}));
    const auto f = synthpert::reference::lora_forward_ref(d, x, w, a, b, s);
    const auto g = synthpert::reference::lora_backward_ref(d, x, w, a, b, s, dy);
    CHECK(max_abs_diff(f.y_NO, y) < 1e-10);
    CHECK(max_abs_diff(f.xa_NR, tx.mm(ta.t())) < 1e-10);
    CHECK(max_abs_diff(g.dx_NK, tx.grad()) < 1e-10);
    CHECK(max_abs_diff(g.da_RK, ta.grad()) < 1e-10);
    CHECK(max_abs_diff(g.db_OR, tb.grad()) < 1e-10);
  }
}

TEST_CASE("lora reference backward matches finite differences", "[cpu][lora]") {
  const LoraDims d{3, 4, 5, 2};
  const auto x = randn(12, 11), w = randn(20, 12), a = randn(8, 13), b = randn(10, 14), dy = randn(15, 15);
  const double s = 0.75;
  const auto g = synthpert::reference::lora_backward_ref(d, x, w, a, b, s, dy);
  auto loss = [&](const std::vector<double>& xv, const std::vector<double>& av, const std::vector<double>& bv) {
    return dot(synthpert::reference::lora_forward_ref(d, xv, w, av, bv, s).y_NO, dy);
  };
  CHECK(max_abs_diff(g.dx_NK, finite_difference([&](const std::vector<double>& v) { return loss(v, a, b); }, x)) < 1e-7);
  CHECK(max_abs_diff(g.da_RK, finite_difference([&](const std::vector<double>& v) { return loss(x, v, b); }, a)) < 1e-7);
  CHECK(max_abs_diff(g.db_OR, finite_difference([&](const std::vector<double>& v) { return loss(x, a, v); }, b)) < 1e-7);
}

TEST_CASE("lora multi-adapter reference matches a libtorch loop over adapters", "[cpu][lora]") {
  for (const LoraDims d : {LoraDims{1, 24, 20, 1}, LoraDims{5, 24, 20, 4}, LoraDims{123, 9, 13, 2},
                           LoraDims{1023, 16, 8, 3}}) {
    const int64_t M = 3;
    INFO("N=" << d.rows << " K=" << d.in << " O=" << d.out << " R=" << d.rank);
    const auto x = randn(size_t(d.rows * d.in), 21), a_all = randn(size_t(M * d.rank * d.in), 22),
               b_all = randn(size_t(M * d.out * d.rank), 23), y0 = randn(size_t(d.rows * d.out), 24);
    const std::vector<double> scales = {0.5, 2.0, -1.25};
    const auto idx = row_adapters(d.rows, M);
    const torch::Tensor tx = tensor_of(x, {d.rows, d.in});
    const torch::Tensor ta = tensor_of(a_all, {M, d.rank, d.in}), tb = tensor_of(b_all, {M, d.out, d.rank});
    const torch::Tensor rows = torch::tensor(idx, torch::kInt);
    torch::Tensor want = tensor_of(y0, {d.rows, d.out});
    for (int64_t i = 0; i < M; ++i) {
      const torch::Tensor mask = rows.eq(int32_t(i)).to(torch::kDouble).unsqueeze(1);
      want = want + mask * tx.mm(ta[i].t()).mm(tb[i].t()) * scales[size_t(i)];
    }
    const auto got = synthpert::reference::lora_multi_ref(d, M, x, a_all, b_all, scales, idx, y0);
    CHECK(max_abs_diff(got, want) < 1e-10);
    // Rows without an adapter are untouched, exactly.
    for (int64_t n = 0; n < d.rows; ++n)
      if (idx[size_t(n)] < 0)
        for (int64_t o = 0; o < d.out; ++o) CHECK(got[size_t(n * d.out + o)] == y0[size_t(n * d.out + o)]);
  }
}
