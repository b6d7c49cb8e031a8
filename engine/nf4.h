// NF4 (4-bit NormalFloat, QLoRA) weights on the CPU path.
//
// Blocks of 64 consecutive values (row-major) share one absmax scale; each
// value is the index of the nearest of 16 code values. Two codes per byte,
// the first value in the high nibble (the bitsandbytes layout).
#pragma once

#include <array>

#include "engine/torch_compat.h"

namespace synthpert::engine {

constexpr int64_t kNf4BlockSize = 64;

// The 16 NF4 code values in ascending order, derived (not tabulated) from the
// QLoRA definition: quantiles of N(0, 1), 8 for the positive half and 7 for the
// negative half plus an exact zero, normalised to [-1, 1].
const std::array<float, 16>& nf4_code_values();

struct Nf4Weight {
  int64_t out_features = 0, in_features = 0;
  torch::Tensor packed;  // uint8 (numel / 2)
  torch::Tensor absmax;  // float32 (numel / 64)
  torch::ScalarType dtype = torch::kFloat32;  // dequantised dtype
};

Nf4Weight nf4_quantize(const torch::Tensor& weight_OI);
torch::Tensor nf4_dequantize(const Nf4Weight& w);

}  // namespace synthpert::engine
