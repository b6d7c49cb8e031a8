// NF4 (4-bit NormalFloat, QLoRA) weights on the GPU: quantize, dequantize to
// bf16/f16/f32, and y = x W^T with W in NF4 (bf16/f16).
//
// The format is engine/nf4.{h,cpp}'s (the CPU path is the reference):
//   * the weight [O, I] is read row-major and cut into blocks of 64
//     consecutive values of that flat order (a block may straddle rows when
//     I is not a multiple of 64; O*I must be a multiple of 64);
//   * each block has one fp32 absmax; a value is the index of the nearest of
//     the 16 code values to value/absmax (computed as value * (1/absmax) in
//     fp32; ties go to the lower index; an all-zero block has absmax 0);
//   * two codes per byte, the value with the even flat index in the high
//     nibble (bitsandbytes' order).
// The 16 code values are an argument (Nf4CodeTable), filled by the caller from
// engine::nf4_code_values(): the engine owns the table, so kernel and engine
// cannot drift apart, and a zero-filled table is rejected.
//
// Optional double quantisation of the absmax scales (QLoRA section 3,
// bitsandbytes' compress_statistics): offset = mean of all absmax; the
// centred values absmax - offset are cut into blocks of 256, each with an fp32
// scale (its largest |centred value|) and an 8-bit index into a signed
// dynamic code of 256 values (bitsandbytes' dynamic map: 7 decades, 2^k evenly
// spaced midpoints in decade k, plus 0 and 1), passed in Nf4Scales and filled
// by the caller from engine::nf4_absmax_code_values() like the 16 NF4 codes.
// The dequantised absmax is code8[q] * scale + offset (fp32, two roundings).
// The 4-bit codes always come from the exact absmax, as in bitsandbytes.
//
// Legend: O out_features, I in_features, n = O*I, nb = n/64, nb2 = ceil(nb/256), N rows of x.
//   weight        [O, I]   bf16/f16/f32, row stride in elements (quantize input)
//   packed        [n/2]    uint8
//   absmax        [nb]     fp32 (plain scales)
//   absmax_code   [nb]     uint8  } double-quantised scales instead of absmax
//   absmax_scale  [nb2]    fp32   }
//   absmax_offset [1]      fp32   }
//   out           [O, I]   bf16/f16/f32, row stride in elements (dequantize output)
//   x [N, I], y [N, O]     bf16/f16, row strides in elements (matmul)
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common.cuh"

namespace synthpert::kernels {

constexpr int64_t kNf4Block = 64;
constexpr int64_t kNf4AbsmaxBlock = 256;
// x rows up to which nf4_matmul uses the fused dequant-in-registers kernel.
constexpr int64_t kNf4FusedMaxRows = 16;

struct Nf4CodeTable {
  float value[16] = {};  // ascending; engine::nf4_code_values()
};

// The 256 values of the 8-bit code of double-quantised scales, ascending
// (engine::nf4_absmax_code_values()).
struct Nf4AbsmaxCodeTable {
  float value[256] = {};
};

// Where the per-block scales live: plain fp32 absmax, or double-quantised.
struct Nf4Scales {
  float* absmax = nullptr;          // [nb]; nullptr when double quantised
  uint8_t* absmax_code = nullptr;   // [nb]
  float* absmax_scale = nullptr;    // [nb2]
  float* absmax_offset = nullptr;   // [1]
  Nf4AbsmaxCodeTable absmax_codes;  // read only when double quantised
  bool double_quant() const { return absmax == nullptr; }
};

struct Nf4QuantizeArgs {
  DType dtype = DType::kBF16;  // of weight: bf16, f16 or f32
  int64_t out_features = 0, in_features = 0;
  const void* weight = nullptr;
  int64_t weight_row_stride = 0;
  Nf4CodeTable codes;
  uint8_t* packed = nullptr;
  Nf4Scales scales;
  // Double quantisation only: fp32 [nb] for the exact absmax before it is
  // compressed (nf4_quantize_workspace_bytes), 256-byte aligned.
  void* workspace = nullptr;
};

size_t nf4_quantize_workspace_bytes(int64_t out_features, int64_t in_features, bool double_quant);

struct Nf4DequantizeArgs {
  DType dtype = DType::kBF16;  // of out: bf16, f16 or f32
  int64_t out_features = 0, in_features = 0;
  const uint8_t* packed = nullptr;
  Nf4Scales scales;  // read only
  Nf4CodeTable codes;
  void* out = nullptr;
  int64_t out_row_stride = 0;
};

// y = x W^T. Up to kNf4FusedMaxRows rows of x: one kernel dequantises W in
// registers (fp32, never stored) and reads the 4-bit weights once per 8 rows.
// More rows: W is dequantised into `workspace` ([O, I] in the dtype) and
// cuBLAS multiplies (see docs/kernels.md for why).
struct Nf4MatmulArgs {
  DType dtype = DType::kBF16;  // of x and y: bf16 or f16
  int64_t rows = 0, out_features = 0, in_features = 0;  // N, O, I
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const uint8_t* packed = nullptr;
  Nf4Scales scales;
  Nf4CodeTable codes;
  void* y = nullptr;
  int64_t y_row_stride = 0;
  void* workspace = nullptr;        // only for rows > kNf4FusedMaxRows; 256-byte aligned
  cublasHandle_t cublas = nullptr;  // only for rows > kNf4FusedMaxRows; its stream is set
};

size_t nf4_matmul_workspace_bytes(int64_t rows, int64_t out_features, int64_t in_features);

void nf4_quantize(const Nf4QuantizeArgs& args, cudaStream_t stream);
void nf4_dequantize(const Nf4DequantizeArgs& args, cudaStream_t stream);
void nf4_matmul(const Nf4MatmulArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
