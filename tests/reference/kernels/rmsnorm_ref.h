// fp64 CPU reference for kernels/rmsnorm.cu. The mathematical op, without
// the kernel's (and Hugging Face's) intermediate rounding to the dtype:
//   y = w * x * rstd,  rstd = 1 / sqrt(mean(x^2) + eps)
// Legend: R rows, C width; all buffers contiguous row-major.
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct RmsNormForward {
  std::vector<double> y_RC, rstd_R;
};
struct RmsNormGrads {
  std::vector<double> dx_RC, dw_C;
};

RmsNormForward rmsnorm_forward_ref(const std::vector<double>& x_RC, const std::vector<double>& w_C, int64_t rows,
                                   int64_t width, double eps);
// Gradients of sum(y * dy) with respect to x and w.
RmsNormGrads rmsnorm_backward_ref(const std::vector<double>& x_RC, const std::vector<double>& w_C,
                                  const std::vector<double>& dy_RC, int64_t rows, int64_t width, double eps);

}  // namespace synthpert::reference
