// The SwiGLU reference against libtorch fp64 (silu * up, autograd) and
// central finite differences ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/swiglu_ref.h"

using namespace synthpert::test;
using synthpert::reference::swiglu_backward_ref;
using synthpert::reference::swiglu_forward_ref;

TEST_CASE("swiglu reference matches libtorch fp64 forward and autograd", "[cpu][swiglu]") {
  for (auto [rows, width] : {std::pair<int64_t, int64_t>{1, 1}, {5, 11}, {123, 100}, {1023, 8}}) {
    INFO("rows=" << rows << " width=" << width);
    const size_t n = size_t(rows * width);
    // Wide gate values reach both saturated ends of the sigmoid.
    const auto gate = randn(n, 31, 4.0), up = randn(n, 32), dout = randn(n, 33);
    torch::Tensor tg = tensor_of(gate, {rows, width}).set_requires_grad(true);
    torch::Tensor tu = tensor_of(up, {rows, width}).set_requires_grad(true);
    const torch::Tensor out = torch::silu(tg) * tu;
    out.backward(tensor_of(dout, {rows, width}));
    const auto g = swiglu_backward_ref(gate, up, dout);
    CHECK(max_abs_diff(swiglu_forward_ref(gate, up), out) < 1e-12);
    CHECK(max_abs_diff(g.dgate, tg.grad()) < 1e-12);
    CHECK(max_abs_diff(g.dup, tu.grad()) < 1e-12);
  }
}

TEST_CASE("swiglu reference backward matches finite differences", "[cpu][swiglu]") {
  const auto gate = randn(12, 41, 3.0), up = randn(12, 42), dout = randn(12, 43);
  const auto g = swiglu_backward_ref(gate, up, dout);
  CHECK(max_abs_diff(g.dgate, finite_difference([&](const std::vector<double>& v) {
                       return dot(swiglu_forward_ref(v, up), dout);
                     }, gate)) < 1e-8);
  CHECK(max_abs_diff(g.dup, finite_difference([&](const std::vector<double>& v) {
                       return dot(swiglu_forward_ref(gate, v), dout);
                     }, up)) < 1e-8);
}
