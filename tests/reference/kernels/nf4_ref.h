// CPU reference for kernels/nf4.cu, written as plain loops over the format of
// engine/nf4.{h,cpp} (blocks of 64 consecutive values of the row-major
// weight, fp32 absmax, nearest code with ties to the lower index, first
// value of a pair in the high nibble) plus the double quantisation of the
// absmax scales described in kernels/nf4.h.
// Legend: O out_features, I in_features, n = O*I, nb = n/64, N rows of x.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct Nf4State {
  std::vector<uint8_t> packed;  // [n/2]
  std::vector<float> absmax;    // [nb] exact block absmax
  bool double_quant = false;
  std::vector<uint8_t> absmax_code;  // [nb]
  std::vector<float> absmax_scale;   // [ceil(nb/256)]
  float absmax_offset = 0.f;
};

// weight_OI: [O, I] fp32 values with the given row stride (elements).
Nf4State nf4_quantize_ref(const std::vector<float>& weight_OI, int64_t out_features, int64_t in_features,
                          int64_t row_stride, const std::array<float, 16>& codes, bool double_quant,
                          const std::array<float, 256>& absmax_codes);

// The scale each block is dequantised with: the exact absmax, or
// code8[q] * scale + offset (two fp32 roundings) when double quantised.
std::vector<float> nf4_block_scales_ref(const Nf4State& s, const std::array<float, 256>& absmax_codes);

// [O*I] fp32: codes[c] * scale, one fp32 product per value.
std::vector<float> nf4_dequantize_ref(const Nf4State& s, const std::array<float, 16>& codes,
                                      const std::array<float, 256>& absmax_codes);

// y [N, O] = x [N, I] W [O, I]^T in fp64 (W as dequantised fp32 values).
std::vector<double> nf4_matmul_ref(const std::vector<double>& x_NI, const std::vector<float>& w_OI, int64_t rows,
                                   int64_t out_features, int64_t in_features);

}  // namespace synthpert::reference
