// Launcher preconditions of the fused AdamW ([cpu]; checked before any
// launch, pointers are fake).
#ifndef SYNTHPERT_NO_KERNELS

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/adamw.h"

using namespace synthpert::kernels;

TEST_CASE("adamw_step names the broken precondition", "[cpu][adamw]") {
  alignas(16) static float fake[64];
  AdamWTensor t;
  t.param = t.exp_avg = t.exp_avg_sq = fake;
  t.grad = fake;
  t.numel = 10;
  AdamWArgs a;
  a.tensors = {t};
  a.param_dtype = DType::kBF16;
  a.grad_dtype = DType::kF16;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("grad dtype must be f32 or the parameter dtype (bf16), got f16"));
  a.grad_dtype = DType::kBF16;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("tensors[0] needs an fp32 master copy for bf16/f16 parameters"));
  a.param_dtype = a.grad_dtype = DType::kF32;
  a.tensors[0].master = fake;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("tensors[0] must not have a master copy"));
  a.tensors[0].master = nullptr;
  a.tensors[0].exp_avg = reinterpret_cast<float*>(reinterpret_cast<char*>(fake) + 2);
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("tensors[0] buffers must be aligned to their element size"));
  a.tensors[0].exp_avg = fake;
  a.tensors[0].grad = nullptr;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("tensors[0] needs param, grad, exp_avg and exp_avg_sq"));
  a.tensors[0].grad = fake;
  a.step = 0;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("step must be >= 1"));
  a.step = 1;
  a.beta2 = 1.0;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("beta1 and beta2 must be in [0, 1)"));
  a.beta2 = 0.999;
  a.eps = 0;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("eps must be finite and > 0"));
  a.eps = 1e-8;
  a.lr = NAN;
  CHECK_THROWS_WITH(adamw_step(a, nullptr), Catch::Contains("lr must be finite and >= 0"));
  a.lr = 1e-3;
  a.tensors[0].numel = 0;  // nothing to update, nothing launched
  CHECK_NOTHROW(adamw_step(a, nullptr));
}

#endif  // SYNTHPERT_NO_KERNELS
