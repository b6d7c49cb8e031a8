// Launcher preconditions of the LoRA kernels ([cpu]; checked before any
// cuBLAS call or launch, pointers are fake).
#ifndef SYNTHPERT_NO_KERNELS

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/lora.h"

using namespace synthpert::kernels;

namespace {
alignas(256) unsigned char fake[1024];
}  // namespace

TEST_CASE("lora launchers name the broken precondition", "[cpu][lora]") {
  LoraForwardArgs f;
  f.rows = 4;
  f.in_features = 16;
  f.out_features = 8;
  f.rank = 2;
  f.x = f.weight = f.lora_a = f.lora_b = fake;
  f.y = f.xa = fake;
  f.x_row_stride = f.weight_row_stride = f.lora_a_row_stride = 16;
  f.lora_b_row_stride = 2;
  f.y_row_stride = 8;
  f.cublas = reinterpret_cast<cublasHandle_t>(fake);
  f.rank = 0;
  CHECK_THROWS_WITH(lora_forward(f, nullptr), Catch::Contains("in_features, out_features and rank must be > 0"));
  f.rank = 2;
  f.lora_b_row_stride = 1;
  CHECK_THROWS_WITH(lora_forward(f, nullptr), Catch::Contains("lora_b row_stride (1) must be >= width (2)"));
  f.lora_b_row_stride = 2;
  f.scale = NAN;
  CHECK_THROWS_WITH(lora_forward(f, nullptr), Catch::Contains("scale must be finite"));
  f.scale = 1.f;
  f.cublas = nullptr;
  CHECK_THROWS_WITH(lora_forward(f, nullptr), Catch::Contains("cublas must be a cuBLAS handle"));

  LoraBackwardArgs b;
  b.rows = 4;
  b.in_features = 16;
  b.out_features = 8;
  b.rank = 2;
  b.x = b.weight = b.lora_a = b.lora_b = b.xa = b.dy = fake;
  b.x_row_stride = b.weight_row_stride = b.lora_a_row_stride = 16;
  b.lora_b_row_stride = 2;
  b.dy_row_stride = 8;
  b.cublas = reinterpret_cast<cublasHandle_t>(fake);
  CHECK_THROWS_WITH(lora_backward(b, nullptr), Catch::Contains("grad_a [rank, in] and grad_b [out, rank] are required"));
  b.grad_a = b.grad_b = reinterpret_cast<float*>(fake);
  b.workspace = fake + 8;
  CHECK_THROWS_WITH(lora_backward(b, nullptr), Catch::Contains("workspace must be 256-byte aligned"));
  CHECK(lora_backward_workspace_bytes(5, 3) == 256);

  LoraMultiArgs m;
  m.rows = 3;
  m.in_features = 16;
  m.out_features = 8;
  m.rank = kLoraMaxServingRank + 1;
  m.num_adapters = 2;
  CHECK_THROWS_WITH(lora_multi_apply(m, nullptr), Catch::Contains("rank must be <= 256"));
  m.rank = 2;
  m.x = m.lora_a = m.lora_b = fake;
  m.y = fake;
  m.x_row_stride = m.lora_a_row_stride = 16;
  m.lora_b_row_stride = 2;
  m.y_row_stride = 8;
  m.lora_a_adapter_stride = 20;
  m.lora_b_adapter_stride = 16;
  CHECK_THROWS_WITH(lora_multi_apply(m, nullptr), Catch::Contains("lora_a adapter stride must be >= (rank - 1) * row stride + in_features"));
  m.lora_a_adapter_stride = 32;
  CHECK_THROWS_WITH(lora_multi_apply(m, nullptr), Catch::Contains("scales [num_adapters] and row_adapter [rows] must be device arrays"));
  m.num_adapters = 0;
  CHECK_THROWS_WITH(lora_multi_apply(m, nullptr), Catch::Contains("num_adapters must be in [1, 2^31)"));
  CHECK(lora_multi_workspace_bytes(100, 16) == 6400);
}

#endif  // SYNTHPERT_NO_KERNELS
