// Launcher preconditions of the NF4 kernels ([cpu]; checked before any launch,
// pointers are fake).
#ifndef SYNTHPERT_NO_KERNELS

// engine/nf4.h (torch) before Catch: c10 defines a CHECK macro of its own.
#include "engine/nf4.h"

#include <catch2/catch.hpp>

#include "kernels/nf4.h"

using namespace synthpert::kernels;

namespace {

alignas(256) unsigned char fake[1024];

Nf4CodeTable engine_table() {
  Nf4CodeTable t;
  const auto& v = synthpert::engine::nf4_code_values();
  std::copy(v.begin(), v.end(), t.value);
  return t;
}

}  // namespace

TEST_CASE("nf4 launchers name the broken precondition", "[cpu][nf4]") {
  Nf4QuantizeArgs q;
  q.out_features = 3;
  q.in_features = 10;
  q.weight = fake;
  q.weight_row_stride = 10;
  q.packed = fake;
  q.scales.absmax = reinterpret_cast<float*>(fake);
  q.codes = engine_table();
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("out_features * in_features (30) must be a multiple of 64"));
  q.in_features = 64;
  q.weight_row_stride = 64;
  q.codes = Nf4CodeTable{};
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("codes must hold the 16 NF4 code values in ascending order"));
  q.codes = engine_table();
  q.weight_row_stride = 32;
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("row stride >= in_features"));
  q.weight_row_stride = 64;
  q.scales = Nf4Scales{};
  q.scales.absmax_code = fake;
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("absmax_code + absmax_scale + absmax_offset"));
  q.scales.absmax_scale = q.scales.absmax_offset = reinterpret_cast<float*>(fake);
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("absmax_codes must hold the 256 values"));
  const auto& codes8 = synthpert::engine::nf4_absmax_code_values();
  std::copy(codes8.begin(), codes8.end(), q.scales.absmax_codes.value);
  CHECK_THROWS_WITH(nf4_quantize(q, nullptr), Catch::Contains("double quantisation needs a 256-byte aligned workspace"));

  Nf4MatmulArgs m;
  m.rows = 17;
  m.out_features = 64;
  m.in_features = 64;
  m.x = m.y = fake;
  m.x_row_stride = m.y_row_stride = 64;
  m.packed = fake;
  m.scales.absmax = reinterpret_cast<float*>(fake);
  m.codes = engine_table();
  m.dtype = DType::kF32;
  CHECK_THROWS_WITH(nf4_matmul(m, nullptr), Catch::Contains("nf4_matmul: dtype must be bf16 or f16"));
  m.dtype = DType::kBF16;
  CHECK_THROWS_WITH(nf4_matmul(m, nullptr), Catch::Contains("more than 16 rows need a 256-byte aligned workspace"));
  m.workspace = fake;
  CHECK_THROWS_WITH(nf4_matmul(m, nullptr), Catch::Contains("more than 16 rows need a cuBLAS handle"));
  m.rows = 0;
  CHECK_NOTHROW(nf4_matmul(m, nullptr));

  Nf4DequantizeArgs d;
  d.dtype = DType::kF32;
  d.out_features = 2;
  d.in_features = 64;
  d.packed = fake;
  d.scales.absmax = reinterpret_cast<float*>(fake);
  d.codes = engine_table();
  d.out = fake + 2;  // 2-byte aligned: enough for bf16, not for f32
  d.out_row_stride = 64;
  CHECK_THROWS_WITH(nf4_dequantize(d, nullptr), Catch::Contains("nf4_dequantize: out must be 4-byte aligned for f32"));
  d.out_row_stride = 32;
  CHECK_THROWS_WITH(nf4_dequantize(d, nullptr), Catch::Contains("out row_stride (32) must be >= width (64)"));

  CHECK(nf4_matmul_workspace_bytes(16, 4096, 4096) == 0);
  CHECK(nf4_matmul_workspace_bytes(17, 100, 64) == 12800);
  CHECK(nf4_quantize_workspace_bytes(5, 128, false) == 0);
  CHECK(nf4_quantize_workspace_bytes(5, 128, true) == 256);  // 10 fp32 scales, 256-byte aligned
}

#endif  // SYNTHPERT_NO_KERNELS
