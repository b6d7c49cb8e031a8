// Launcher preconditions of the fused linear + cross-entropy ([cpu]; the
// checks run before any cuBLAS or kernel call, pointers are fake).
#ifndef SYNTHPERT_NO_KERNELS

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/fused_linear_ce.h"

using namespace synthpert::kernels;

TEST_CASE("fused_linear_cross_entropy names the broken precondition", "[cpu][fused_ce]") {
  alignas(256) static unsigned char fake[512];
  FusedLinearCrossEntropyArgs a;
  a.tokens = 4;
  a.hidden_size = 8;
  a.vocab = 10;
  a.hidden = a.weight = fake;
  a.hidden_row_stride = 8;
  a.weight_row_stride = 4;
  a.targets = reinterpret_cast<const int64_t*>(fake);
  a.loss = reinterpret_cast<float*>(fake);
  a.workspace = fake;
  a.cublas = reinterpret_cast<cublasHandle_t>(fake);
  CHECK_THROWS_WITH(fused_linear_cross_entropy(a, nullptr),
                    Catch::Contains("weight must be a [vocab, hidden_size] view with row stride >= hidden_size"));
  a.weight_row_stride = 8;
  a.chunk_tokens = 0;
  CHECK_THROWS_WITH(fused_linear_cross_entropy(a, nullptr), Catch::Contains("chunk_tokens must be in [1, 65535]"));
  a.chunk_tokens = 2;
  a.workspace = fake + 16;
  CHECK_THROWS_WITH(fused_linear_cross_entropy(a, nullptr), Catch::Contains("workspace must be 256-byte aligned"));
  a.workspace = fake;
  a.cublas = nullptr;
  CHECK_THROWS_WITH(fused_linear_cross_entropy(a, nullptr), Catch::Contains("cublas must be a cuBLAS handle"));
  a.grad_scale = INFINITY;
  CHECK_THROWS_WITH(fused_linear_cross_entropy(a, nullptr), Catch::Contains("grad_scale must be finite"));
  a.tokens = 0;
  a.grad_scale = 1.f;
  CHECK_NOTHROW(fused_linear_cross_entropy(a, nullptr));
  // Logits (fp32) and their gradient (2-byte dtype), each 256-byte aligned.
  CHECK(fused_linear_ce_workspace_bytes(3, 100) == 1280 + 768);
}

#endif  // SYNTHPERT_NO_KERNELS
