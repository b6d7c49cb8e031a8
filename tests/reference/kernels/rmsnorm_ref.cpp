// Plain loops for RMSNorm; see rmsnorm_ref.h.
#include "tests/reference/kernels/rmsnorm_ref.h"

#include <cmath>
#include <stdexcept>

namespace synthpert::reference {
namespace {

void check(size_t x, size_t w, int64_t rows, int64_t width) {
  if (rows < 0 || width <= 0 || x != size_t(rows * width) || w != size_t(width))
    throw std::invalid_argument("rmsnorm_ref: x must be [rows, width] and w [width]");
}

double row_rstd(const double* x, int64_t width, double eps) {
  double ss = 0.0;
  for (int64_t c = 0; c < width; ++c) ss += x[c] * x[c];
  return 1.0 / std::sqrt(ss / double(width) + eps);
}

}  // namespace

RmsNormForward rmsnorm_forward_ref(const std::vector<double>& x, const std::vector<double>& w, int64_t rows,
                                   int64_t width, double eps) {
  check(x.size(), w.size(), rows, width);
  RmsNormForward f{std::vector<double>(x.size()), std::vector<double>(size_t(rows))};
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[size_t(r * width)];
    const double rstd = row_rstd(xr, width, eps);
    f.rstd_R[size_t(r)] = rstd;
    for (int64_t c = 0; c < width; ++c) f.y_RC[size_t(r * width + c)] = w[size_t(c)] * xr[c] * rstd;
  }
  return f;
}

RmsNormGrads rmsnorm_backward_ref(const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& dy, int64_t rows, int64_t width, double eps) {
  check(x.size(), w.size(), rows, width);
  if (dy.size() != x.size()) throw std::invalid_argument("rmsnorm_ref: dy must be [rows, width]");
  RmsNormGrads g{std::vector<double>(x.size()), std::vector<double>(size_t(width), 0.0)};
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[size_t(r * width)];
    const double* dyr = &dy[size_t(r * width)];
    const double rstd = row_rstd(xr, width, eps);
    // d rstd / d x_c = -rstd^3 x_c / C, so
    // dx_c = rstd * (dy_c w_c - x_c rstd^2 * mean_j(dy_j w_j x_j)).
    double m = 0.0;
    for (int64_t c = 0; c < width; ++c) m += dyr[c] * w[size_t(c)] * xr[c];
    m /= double(width);
    for (int64_t c = 0; c < width; ++c) {
      g.dx_RC[size_t(r * width + c)] = rstd * (dyr[c] * w[size_t(c)] - xr[c] * rstd * rstd * m);
      g.dw_C[size_t(c)] += dyr[c] * xr[c] * rstd;
    }
  }
  return g;
}

}  // namespace synthpert::reference
