// lora_linear (engine/lora_linear.h) on CPU: output and the gradients of x, A
// and B against torch autograd through x W^T + s (x A^T) B^T in float64, with
// a dense and an NF4 base weight. On CUDA the op calls kernels/lora (checked
// against its reference in tests/kernels); this tests the wiring.
#include <catch2/catch.hpp>

#include "engine/lora_linear.h"
#include "engine/nf4_linear.h"

using namespace synthpert::engine;

TEST_CASE("lora_linear matches autograd of the LoRA expression", "[engine][lora_op]") {
  torch::manual_seed(17);
  const int64_t N = 9, K = 32, O = 22, R = 3;  // O*K = 704 = 11 NF4 blocks
  for (bool nf4 : {false, true}) {
    INFO("NF4 base " << nf4);
    Linear base;
    const auto w = torch::randn({O, K});
    if (nf4) {
      base.nf4 = std::make_shared<Nf4Weight>(nf4_quantize_device(w));
    } else {
      base.weight = w;
    }
    const auto w_used = base.dense_weight().to(torch::kFloat64);
    LoraWeights lora;
    lora.A = torch::randn({R, K}) * 0.3;
    lora.B = torch::randn({O, R}) * 0.3;  // non-zero, so every gradient path is exercised
    lora.scale = 2.0 / 3.0;
    const auto x0 = torch::randn({N, K}), dy = torch::randn({N, O});

    auto xr = x0.to(torch::kFloat64).requires_grad_(true), ar = lora.A.to(torch::kFloat64).requires_grad_(true),
         br = lora.B.to(torch::kFloat64).requires_grad_(true);
    const auto ref = torch::mm(xr, w_used.t()) + torch::mm(torch::mm(xr, ar.t()), br.t()) * lora.scale;
    (ref * dy.to(torch::kFloat64)).sum().backward();

    auto x = x0.clone().requires_grad_(true);
    lora.A.requires_grad_(true);
    lora.B.requires_grad_(true);
    const auto y = lora_linear(x, base, lora);
    (y * dy).sum().backward();
    auto diff = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a.to(torch::kFloat64) - b).abs().max().item<double>();
    };
    CHECK(diff(y, ref) < 1e-4);
    CHECK(diff(x.grad(), xr.grad()) < 1e-4);
    CHECK(diff(lora.A.grad(), ar.grad()) < 1e-4);
    CHECK(diff(lora.B.grad(), br.grad()) < 1e-4);
  }
  Linear base;
  base.weight = torch::randn({O, K});
  LoraWeights bad;
  bad.A = torch::randn({R, K + 1});
  bad.B = torch::randn({O, R});
  CHECK_THROWS(lora_linear(torch::randn({N, K}), base, bad));
}
