// NF4 (4-bit NormalFloat, QLoRA) weights on the CPU path.
//
// Blocks of 64 consecutive values (row-major) share one absmax scale; each
// value is the index of the nearest of 16 code values. Two codes per byte,
// the first value in the high nibble (the bitsandbytes layout). The scales
// may themselves be quantised to 8 bits (double quantisation, below).
#pragma once

#include <array>

#include "engine/torch_compat.h"

namespace synthpert::engine {

constexpr int64_t kNf4BlockSize = 64;
constexpr int64_t kNf4AbsmaxBlockSize = 256;  // absmax values per scale when double-quantised

// The 16 NF4 code values in ascending order, derived (not tabulated) from the
// QLoRA definition: quantiles of N(0, 1), 8 for the positive half and 7 for the
// negative half plus an exact zero, normalised to [-1, 1].
const std::array<float, 16>& nf4_code_values();

// The 256 values of the signed 8-bit code that double-quantised scales index,
// ascending, derived from bitsandbytes' dynamic map: decade k = 0..6 holds
// the 2^k midpoints of equal steps over [0.1, 1] x 10^(k-6), both signs, plus
// 0 and 1 (fine steps near 1, a wide range towards 0).
const std::array<float, 256>& nf4_absmax_code_values();

struct Nf4Weight {
  int64_t out_features = 0, in_features = 0;
  torch::Tensor packed;  // uint8 (numel / 2)
  torch::Tensor absmax;  // float32 (numel / 64); undefined when double-quantised
  torch::ScalarType dtype = torch::kFloat32;  // dequantised dtype
  // Double-quantised scales (QLoRA's double quantisation, bitsandbytes'
  // compress_statistics): offset = the mean of all absmax; the centred values
  // are cut into blocks of 256, each with an fp32 scale (its largest |centred
  // value|) and an 8-bit index per value into nf4_absmax_code_values(). A
  // block's absmax is then code8[absmax_code] * absmax_scale[block / 256] +
  // absmax_offset in fp32 (two roundings): 8.1 instead of 32 bits per 64
  // weights. The 4-bit codes always come from the exact absmax.
  torch::Tensor absmax_code;    // uint8 (numel / 64)
  torch::Tensor absmax_scale;   // float32 (ceil(numel / 64 / 256))
  torch::Tensor absmax_offset;  // float32 (1)

  bool double_quant() const { return !absmax.defined(); }
  // Every tensor on `device`.
  Nf4Weight to(torch::Device device) const;
};

Nf4Weight nf4_quantize(const torch::Tensor& weight_OI, bool double_quant = false);
// Replaces the (CPU) absmax of w by its double quantisation.
void nf4_double_quantize_scales(Nf4Weight& w);
// Every block's fp32 absmax on w's device (decoded when double-quantised).
torch::Tensor nf4_block_scales(const Nf4Weight& w);
torch::Tensor nf4_dequantize(const Nf4Weight& w);

}  // namespace synthpert::engine
