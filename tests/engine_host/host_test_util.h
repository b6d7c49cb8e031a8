// Shared by the engine_host tests: the error of a bf16 result against its
// fp64 reference, relative to the reference's largest magnitude.
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::test {

inline double rel_err(const torch::Tensor& got, const torch::Tensor& ref) {
  return (got.to(torch::kFloat64) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

}  // namespace synthpert::test
