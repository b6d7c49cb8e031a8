// The kernel branches of engine/nf4_linear.cpp run on CPU against host
// emulations of kernels/nf4 (host_nf4.cpp): quantisation of a strided bf16
// weight whose blocks straddle rows must be byte-identical to engine/nf4's
// CPU quantisation (an independent implementation), with plain and with
// double-quantised scales; dequantisation must equal engine/nf4's, and
// nf4_linear's output and input gradient on both matmul paths (fused rows,
// workspace + GEMM) must match fp64 autograd through the dequantised weight.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include "engine/kernel_launch.h"
#include "engine/nf4.h"
#include "engine/nf4_linear.h"

#include "tests/engine_host/host_test_util.h"

#include <catch2/catch.hpp>

using namespace synthpert::engine;
using synthpert::test::rel_err;

TEST_CASE("NF4 kernel branches marshal the kernels' arguments", "[engine_host]") {
  REQUIRE(kernels_apply(torch::kCPU, torch::kBFloat16));  // the host emulation build
  torch::manual_seed(13);
  // (6, 96): 9 blocks of 64, most straddling two rows; a row stride of 104.
  const auto store = (torch::randn({6, 104}) * 0.4).to(torch::kBFloat16);
  const auto weight = store.narrow(1, 0, 96);
  REQUIRE(weight.stride(0) == 104);
  for (bool dq : {false, true}) {
    INFO("double quantisation " << dq);
    auto w = std::make_shared<Nf4Weight>(nf4_quantize_device(weight, dq));
    const Nf4Weight cpu = nf4_quantize(weight.contiguous(), dq);
    REQUIRE(w->double_quant() == dq);
    CHECK(torch::equal(w->packed, cpu.packed));
    if (dq) {
      CHECK(torch::equal(w->absmax_code, cpu.absmax_code));
      CHECK(torch::equal(w->absmax_scale, cpu.absmax_scale));
      CHECK(torch::equal(w->absmax_offset, cpu.absmax_offset));
    } else {
      CHECK(torch::equal(w->absmax, cpu.absmax));
    }
    const auto deq = nf4_dequantize_device(*w);
    CHECK(deq.scalar_type() == torch::kBFloat16);
    CHECK(torch::equal(deq, nf4_dequantize(cpu).to(torch::kBFloat16)));

    const auto w64 = nf4_dequantize(cpu).to(torch::kFloat64);
    for (int64_t rows : {5, 37}) {  // the fused kernel; the dequantise + GEMM path
      INFO("rows " << rows);
      const auto x_store = torch::randn({rows, 100}).to(torch::kBFloat16);
      const auto x_bf = x_store.narrow(1, 0, 96);
      const auto dy = torch::randn({rows, 6}, torch::kFloat64);
      auto xr = x_bf.to(torch::kFloat64).requires_grad_(true);
      const auto yref = torch::mm(xr, w64.t());
      (yref * dy).sum().backward();
      auto x = x_bf.detach().requires_grad_(true);
      const auto y = nf4_linear(x, w);
      (y.to(torch::kFloat64) * dy).sum().backward();
      CHECK(y.scalar_type() == torch::kBFloat16);
      CHECK(rel_err(y, yref.detach()) < 1e-2);
      CHECK(rel_err(x.grad(), xr.grad()) < 1e-2);
    }
  }
}

// float32 weights (QLoRA with --dtype float32) are dequantised by the kernel
// too, in float32: before, they took a round trip through host memory in
// every forward and backward. The shapes take the kernel's three store widths:
// 32 values per thread (I % 32 == 0), 8 (I % 8 == 0) and 1.
TEST_CASE("NF4 float32 weights dequantise on the kernel branch", "[engine_host]") {
  torch::manual_seed(17);
  for (const auto& [O, I] : std::vector<std::pair<int64_t, int64_t>>{{4, 96}, {8, 40}, {16, 12}}) {
    INFO("O " << O << " I " << I);
    const auto weight = torch::randn({O, I}) * 0.3;
    for (bool dq : {false, true}) {
      INFO("double quantisation " << dq);
      auto w = std::make_shared<Nf4Weight>(nf4_quantize_device(weight, dq));
      const Nf4Weight cpu = nf4_quantize(weight, dq);
      REQUIRE(torch::equal(w->packed, cpu.packed));
      const auto deq = nf4_dequantize_device(*w);
      CHECK(deq.scalar_type() == torch::kFloat32);
      CHECK(torch::equal(deq, nf4_dequantize(cpu)));

      const auto x = torch::randn({3, I}).requires_grad_(true);
      const auto dy = torch::randn({3, O}, torch::kFloat64);
      auto x64 = x.detach().to(torch::kFloat64).requires_grad_(true);
      const auto w64 = nf4_dequantize(cpu).to(torch::kFloat64);
      (torch::mm(x64, w64.t()) * dy).sum().backward();
      const auto y = nf4_linear(x, w);
      (y.to(torch::kFloat64) * dy).sum().backward();
      CHECK(y.scalar_type() == torch::kFloat32);
      CHECK(rel_err(y, torch::mm(x64, w64.t()).detach()) < 1e-5);
      CHECK(rel_err(x.grad(), x64.grad()) < 1e-5);
    }
  }
}
