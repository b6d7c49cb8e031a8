// fp64 CPU reference for kernels/lora.cu.
//   training  y = x W^T + s (x A^T) B^T and its gradients for x, A and B
//   serving   y[n] += s_i (x[n] A_i^T) B_i^T for the row's adapter i (-1: none)
// Legend: N rows, K in_features, O out_features, R rank, M adapters; all
// buffers contiguous row-major: x [N, K], W [O, K], A [R, K], B [O, R],
// y/dy [N, O], A_all [M, R, K], B_all [M, O, R].
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct LoraDims {
  int64_t rows, in, out, rank;  // N, K, O, R
};

struct LoraForward {
  std::vector<double> y_NO, xa_NR;
};
LoraForward lora_forward_ref(const LoraDims& d, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>& a, const std::vector<double>& b, double scale);

struct LoraGrads {
  std::vector<double> dx_NK, da_RK, db_OR;
};
LoraGrads lora_backward_ref(const LoraDims& d, const std::vector<double>& x, const std::vector<double>& w,
                            const std::vector<double>& a, const std::vector<double>& b, double scale,
                            const std::vector<double>& dy);

// Returns y_in plus every row's adapter update.
std::vector<double> lora_multi_ref(const LoraDims& d, int64_t adapters, const std::vector<double>& x,
                                   const std::vector<double>& a_all, const std::vector<double>& b_all,
                                   const std::vector<double>& scales, const std::vector<int32_t>& row_adapter,
                                   std::vector<double> y_in);

}  // namespace synthpert::reference
