// The kernel branches of engine/linear_cross_entropy.cpp and
// engine/lora_linear.cpp, run on CPU against host emulations of their
// launchers (host_ce_lora.cpp): bf16 inputs, the loss or output and the
// gradients against autograd through the plain expressions in fp64.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include "engine/kernel_launch.h"
#include "engine/linear.h"
#include "engine/linear_cross_entropy.h"
#include "engine/lora_linear.h"

#include "tests/engine_host/host_test_util.h"

#include <catch2/catch.hpp>

using namespace synthpert::engine;
using synthpert::test::rel_err;

TEST_CASE("fused CE and LoRA kernel branches marshal the kernels' arguments", "[engine_host]") {
  REQUIRE(kernels_apply(torch::kCPU, torch::kBFloat16));  // the host emulation build
  torch::manual_seed(10);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const double tol = 2e-2;

  // Fused LM head + CE: 30 tokens (every fourth ignored), C 24, V 77, both trained.
  const auto h_bf = bf(torch::randn({30, 24})), w_bf = bf(torch::randn({77, 24}) * 0.3);
  auto t = torch::randint(77, {30}, torch::kInt64);
  t.index_put_({torch::arange(0, 30, 4)}, -100);
  const auto counted = t.ne(-100);
  auto hr = h_bf.to(torch::kFloat64).requires_grad_(true), wr = w_bf.to(torch::kFloat64).requires_grad_(true);
  const auto logp = torch::log_softmax(torch::matmul(hr, wr.t()), -1);
  const auto ref = -(logp.gather(1, torch::where(counted, t, torch::zeros_like(t)).unsqueeze(1)).squeeze(1) *
                     counted).sum();
  (ref * 0.5).backward();
  auto h = h_bf.clone().requires_grad_(true), w = w_bf.clone().requires_grad_(true);
  const auto loss = linear_cross_entropy_sum(h, w, t);
  (loss * 0.5).backward();
  CHECK(std::abs(loss.item<double>() - ref.item<double>()) < 1e-4 * std::abs(ref.item<double>()));
  CHECK(rel_err(h.grad(), hr.grad()) < tol);
  CHECK(rel_err(w.grad(), wr.grad()) < tol);

  // LoRA: x (9, 32) as a strided view, W (22, 32), rank 4.
  const auto x_store = bf(torch::randn({9, 40}));
  const auto x_bf = x_store.narrow(1, 0, 32);
  REQUIRE(x_bf.stride(0) == 40);
  Linear base;
  base.weight = bf(torch::randn({22, 32}) * 0.2);
  const auto a_bf = bf(torch::randn({4, 32}) * 0.3), b_bf = bf(torch::randn({22, 4}) * 0.3);
  const auto dy = torch::randn({9, 22}, torch::kFloat64);
  auto xr = x_bf.to(torch::kFloat64).requires_grad_(true), ar = a_bf.to(torch::kFloat64).requires_grad_(true),
       br = b_bf.to(torch::kFloat64).requires_grad_(true);
  const double s = 1.5;
  const auto yref = torch::mm(xr, base.weight.to(torch::kFloat64).t()) + torch::mm(torch::mm(xr, ar.t()), br.t()) * s;
  (yref * dy).sum().backward();
  LoraWeights lora;
  lora.A = a_bf.clone().requires_grad_(true);
  lora.B = b_bf.clone().requires_grad_(true);
  lora.scale = s;
  auto x = x_bf.detach().requires_grad_(true);
  const auto y = lora_linear(x, base, lora);
  (y.to(torch::kFloat64) * dy).sum().backward();
  CHECK(rel_err(y, yref.detach()) < tol);
  CHECK(rel_err(x.grad(), xr.grad()) < tol);
  CHECK(rel_err(lora.A.grad(), ar.grad()) < tol);
  CHECK(rel_err(lora.B.grad(), br.grad()) < tol);
}

// A gradient broadcast from one row has strides (0, 1): no row kernel or
// cuBLAS call takes that leading dimension, one row included, so the branch
// must copy it (tests/simt runs the real launchers and a cuBLAS that checks).
TEST_CASE("the LoRA kernel branch takes a gradient broadcast along rows", "[engine_host]") {
  torch::manual_seed(12);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const int64_t N = GENERATE(9, 1);
  {
    INFO("rows " << N);
    Linear base;
    base.weight = bf(torch::randn({22, 32}) * 0.2);
    const auto x_bf = bf(torch::randn({N, 32})), a_bf = bf(torch::randn({4, 32}) * 0.3),
               b_bf = bf(torch::randn({22, 4}) * 0.3), w_bf = bf(torch::randn({22}));
    auto xr = x_bf.to(torch::kFloat64).requires_grad_(true), ar = a_bf.to(torch::kFloat64).requires_grad_(true),
         br = b_bf.to(torch::kFloat64).requires_grad_(true);
    const auto yref = torch::mm(xr, base.weight.to(torch::kFloat64).t()) + torch::mm(torch::mm(xr, ar.t()), br.t());
    (yref * w_bf.to(torch::kFloat64)).sum().backward();
    LoraWeights lora;
    lora.A = a_bf.clone().requires_grad_(true);
    lora.B = b_bf.clone().requires_grad_(true);
    lora.scale = 1.0;
    auto x = x_bf.clone().requires_grad_(true);
    const auto y = lora_linear(x, base, lora);
    (y.sum(0) * w_bf).sum().backward();  // y's gradient: sum's expand of w, strides (0, 1)
    REQUIRE(y.sum(0).sizes() == w_bf.sizes());
    CHECK(rel_err(x.grad(), xr.grad()) < 2e-2);
    CHECK(rel_err(lora.A.grad(), ar.grad()) < 2e-2);
    CHECK(rel_err(lora.B.grad(), br.grad()) < 2e-2);
  }
}

// The LoRA op reads every matrix as x's dtype: float32 adapter matrices (the
// trainer's masters) must not reach it, where they would be misread silently.
TEST_CASE("an adapter in another dtype than x is not handed to the LoRA kernel", "[engine_host]") {
  torch::manual_seed(13);
  Linear lin;
  lin.weight = torch::randn({22, 32}).to(torch::kBFloat16);
  lin.lora = std::make_shared<LoraWeights>();
  lin.lora->A = torch::randn({4, 32});
  lin.lora->B = torch::randn({22, 4});
  lin.lora->scale = 1.0;
  const auto x = torch::randn({5, 32}).to(torch::kBFloat16);
  CHECK_THROWS(lin.forward(x, /*training=*/false));  // torch's mm refuses bf16 x f32
  lin.lora->A = lin.lora->A.to(torch::kBFloat16);
  lin.lora->B = lin.lora->B.to(torch::kBFloat16);
  const auto y = lin.forward(x, false).to(torch::kFloat64);
  const auto x64 = x.to(torch::kFloat64);
  const auto ref = torch::mm(x64, lin.weight.to(torch::kFloat64).t()) +
                   torch::mm(torch::mm(x64, lin.lora->A.to(torch::kFloat64).t()), lin.lora->B.to(torch::kFloat64).t());
  CHECK(rel_err(y, ref) < 2e-2);
}
