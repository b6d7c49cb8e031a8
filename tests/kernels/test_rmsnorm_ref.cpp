// The RMSNorm reference against libtorch fp64 (ops + autograd) on odd shapes
// and against central finite differences on tiny shapes ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/rmsnorm_ref.h"

using namespace synthpert::test;
using synthpert::reference::rmsnorm_backward_ref;
using synthpert::reference::rmsnorm_forward_ref;

TEST_CASE("rmsnorm reference matches libtorch fp64 forward and autograd", "[cpu][rmsnorm]") {
  const double eps = 1e-5;
  for (auto [rows, width] : {std::pair<int64_t, int64_t>{1, 1}, {5, 7}, {123, 100}, {1023, 24}, {3, 1000}}) {
    INFO("rows=" << rows << " width=" << width);
    const auto x = randn(size_t(rows * width), 11), w = randn(size_t(width), 12), dy = randn(size_t(rows * width), 13);
    torch::Tensor tx = tensor_of(x, {rows, width}).set_requires_grad(true);
    torch::Tensor tw = tensor_of(w, {width}).set_requires_grad(true);
    const torch::Tensor rstd = torch::rsqrt(tx.pow(2).mean(-1, true) + eps);
    const torch::Tensor y = tw * (tx * rstd);
    y.backward(tensor_of(dy, {rows, width}));
    const auto f = rmsnorm_forward_ref(x, w, rows, width, eps);
    const auto g = rmsnorm_backward_ref(x, w, dy, rows, width, eps);
    CHECK(max_abs_diff(f.y_RC, y) < 1e-12);
    CHECK(max_abs_diff(f.rstd_R, rstd.squeeze(-1)) < 1e-12);
    CHECK(max_abs_diff(g.dx_RC, tx.grad()) < 1e-11);
    CHECK(max_abs_diff(g.dw_C, tw.grad()) < 1e-10);
  }
}

TEST_CASE("rmsnorm reference backward matches finite differences", "[cpu][rmsnorm]") {
  const int64_t rows = 3, width = 5;
  const double eps = 1e-3;  // large enough to matter in the derivative
  const auto x = randn(15, 21), w = randn(5, 22), dy = randn(15, 23);
  const auto g = rmsnorm_backward_ref(x, w, dy, rows, width, eps);
  const auto fd_x = finite_difference(
      [&](const std::vector<double>& xv) { return dot(rmsnorm_forward_ref(xv, w, rows, width, eps).y_RC, dy); }, x);
  const auto fd_w = finite_difference(
      [&](const std::vector<double>& wv) { return dot(rmsnorm_forward_ref(x, wv, rows, width, eps).y_RC, dy); }, w);
  CHECK(max_abs_diff(g.dx_RC, fd_x) < 1e-8);
  CHECK(max_abs_diff(g.dw_C, fd_w) < 1e-8);
}
