// Launcher preconditions of RMSNorm, RoPE and SwiGLU: checked on the host
// before any launch, so these run everywhere ([cpu]); pointers are fake.
#ifndef SYNTHPERT_NO_KERNELS

#include <catch2/catch.hpp>
#include <cstdint>

#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace {

using namespace synthpert::kernels;

alignas(16) unsigned char fake[256];

}  // namespace

TEST_CASE("rmsnorm launchers name the broken precondition", "[cpu][rmsnorm]") {
  RmsNormForwardArgs f;
  f.rows = 4;
  f.width = 64;
  f.x = f.weight = fake;
  f.y = fake;
  f.x_row_stride = 64;
  f.y_row_stride = 32;
  CHECK_THROWS_WITH(rmsnorm_forward(f, nullptr), Catch::Contains("y row_stride (32) must be >= width (64)"));
  f.y_row_stride = 64;
  f.dtype = DType::kF32;
  CHECK_THROWS_WITH(rmsnorm_forward(f, nullptr), Catch::Contains("rmsnorm_forward: dtype must be bf16 or f16, got f32"));
  f.dtype = DType::kBF16;
  f.eps = -1.f;
  CHECK_THROWS_WITH(rmsnorm_forward(f, nullptr), Catch::Contains("eps must be finite and >= 0"));
  f.eps = 1e-6f;
  f.x = nullptr;
  CHECK_THROWS_WITH(rmsnorm_forward(f, nullptr), Catch::Contains("x must not be null"));
  f.rows = 0;
  CHECK_NOTHROW(rmsnorm_forward(f, nullptr));  // nothing to do, nothing launched

  RmsNormBackwardArgs b;
  b.rows = 4;
  b.width = kRmsNormMaxDweightWidth + 8;
  b.x = b.weight = b.dy = fake;
  b.dx = fake;
  b.x_row_stride = b.dy_row_stride = b.dx_row_stride = b.width;
  b.rstd = reinterpret_cast<const float*>(fake);
  b.dweight = reinterpret_cast<float*>(fake);
  b.workspace = fake;
  CHECK_THROWS_WITH(rmsnorm_backward(b, nullptr), Catch::Contains("width must be <= 12288 when dweight is computed"));
  b.width = 64;
  b.x_row_stride = b.dy_row_stride = b.dx_row_stride = 64;
  b.workspace = nullptr;
  CHECK_THROWS_WITH(rmsnorm_backward(b, nullptr), Catch::Contains("workspace must be 16-byte aligned"));
  b.workspace = fake;
  b.rstd = nullptr;
  CHECK_THROWS_WITH(rmsnorm_backward(b, nullptr), Catch::Contains("rstd must be the forward's"));
  // One partial row per block: min(rows, 256) blocks, up to 1024 once there are 16 rows for each.
  CHECK(rmsnorm_backward_workspace_bytes(1000, 64) == 256 * 64 * sizeof(float));
  CHECK(rmsnorm_backward_workspace_bytes(3, 64) == 3 * 64 * sizeof(float));
  CHECK(rmsnorm_backward_workspace_bytes(8192, 64) == 512 * 64 * sizeof(float));
  CHECK(rmsnorm_backward_workspace_bytes(8193, 64) == 513 * 64 * sizeof(float));
  CHECK(rmsnorm_backward_workspace_bytes(16384, 4096) == size_t(1024) * 4096 * sizeof(float));
  CHECK(rmsnorm_backward_workspace_bytes(1 << 20, 64) == 1024 * 64 * sizeof(float));
}

TEST_CASE("rope launcher names the broken precondition", "[cpu][rope]") {
  RopeArgs a;
  a.tokens = 3;
  a.heads = 2;
  a.head_dim = 7;
  a.x = fake;
  a.y = fake;
  a.positions = reinterpret_cast<const int64_t*>(fake);
  a.inv_freq = reinterpret_cast<const float*>(fake);
  CHECK_THROWS_WITH(rope_apply(a, nullptr), Catch::Contains("rope_forward: head_dim must be even and > 0, got 7"));
  a.head_dim = 8;
  a.x_head_stride = a.y_head_stride = 8;
  a.x_token_stride = 8;
  a.y_token_stride = 16;
  a.inverse = true;
  CHECK_THROWS_WITH(rope_apply(a, nullptr), Catch::Contains("rope_backward: x and y token_stride must cover all heads"));
  a.x_token_stride = 16;
  a.y_token_stride = 24;
  CHECK_THROWS_WITH(rope_apply(a, nullptr), Catch::Contains("in-place use (y == x) needs identical strides"));
  a.y_token_stride = 16;
  a.positions = nullptr;
  CHECK_THROWS_WITH(rope_apply(a, nullptr), Catch::Contains("positions must be a device [tokens] int64 array"));
  CHECK_THROWS_WITH(rope_inv_freq_llama3(64, 10000.0, {8.0, 4.0, 1.0, 8192}),
                    Catch::Contains("high_freq_factor must exceed low_freq_factor"));
}

TEST_CASE("swiglu launchers name the broken precondition", "[cpu][swiglu]") {
  SwigluForwardArgs f;
  f.rows = 2;
  f.width = 10;
  f.gate = f.up = fake;
  f.out = fake;
  f.gate_row_stride = 20;
  f.up_row_stride = 20;
  f.out_row_stride = 10;
  f.width = 0;
  CHECK_THROWS_WITH(swiglu_forward(f, nullptr), Catch::Contains("swiglu_forward: width must be > 0"));
  f.width = 10;
  f.up = fake + 1;
  CHECK_THROWS_WITH(swiglu_forward(f, nullptr), Catch::Contains("up must be 2-byte aligned"));
  SwigluBackwardArgs b;
  b.rows = 2;
  b.width = 10;
  b.gate = b.up = b.dout = fake;
  b.dgate = fake;
  b.gate_row_stride = b.up_row_stride = b.dout_row_stride = b.dgate_row_stride = b.dup_row_stride = 10;
  CHECK_THROWS_WITH(swiglu_backward(b, nullptr), Catch::Contains("dup must not be null"));
}

#endif  // SYNTHPERT_NO_KERNELS
