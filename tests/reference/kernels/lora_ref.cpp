// Plain loops for LoRA; see lora_ref.h.
#include "tests/reference/kernels/lora_ref.h"

#include <stdexcept>

namespace synthpert::reference {
namespace {

// Row-major C[m, n] = sum_k A(i, k) B(k, j) with accessors for the layouts.
template <typename FA, typename FB>
std::vector<double> product(int64_t m, int64_t n, int64_t k, FA a, FB b) {
  std::vector<double> c(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t t = 0; t < k; ++t) s += a(i, t) * b(t, j);
      c[size_t(i * n + j)] = s;
    }
  return c;
}

void check(const LoraDims& d, const std::vector<double>& x, const std::vector<double>& w,
           const std::vector<double>& a, const std::vector<double>& b) {
  if (x.size() != size_t(d.rows * d.in) || w.size() != size_t(d.out * d.in) || a.size() != size_t(d.rank * d.in) ||
      b.size() != size_t(d.out * d.rank))
    throw std::invalid_argument("lora_ref: buffer sizes do not match the dimensions");
}

}  // namespace

LoraForward lora_forward_ref(const LoraDims& d, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>& a, const std::vector<double>& b, double scale) {
  check(d, x, w, a, b);
  const int64_t K = d.in, R = d.rank;
  LoraForward f;
  // xa = x A^T, y = x W^T + s xa B^T
  f.xa_NR = product(d.rows, R, K, [&](int64_t n, int64_t k) { return x[size_t(n * K + k)]; },
                    [&](int64_t k, int64_t r) { return a[size_t(r * K + k)]; });
  f.y_NO = product(d.rows, d.out, K, [&](int64_t n, int64_t k) { return x[size_t(n * K + k)]; },
                   [&](int64_t k, int64_t o) { return w[size_t(o * K + k)]; });
  const auto low = product(d.rows, d.out, R, [&](int64_t n, int64_t r) { return f.xa_NR[size_t(n * R + r)]; },
                           [&](int64_t r, int64_t o) { return b[size_t(o * R + r)]; });
  for (size_t i = 0; i < f.y_NO.size(); ++i) f.y_NO[i] += scale * low[i];
  return f;
}

LoraGrads lora_backward_ref(const LoraDims& d, const std::vector<double>& x, const std::vector<double>& w,
                            const std::vector<double>& a, const std::vector<double>& b, double scale,
                            const std::vector<double>& dy) {
  check(d, x, w, a, b);
  const int64_t N = d.rows, K = d.in, O = d.out, R = d.rank;
  const auto xa = lora_forward_ref(d, x, w, a, b, scale).xa_NR;
  LoraGrads g;
  // dB = s dy^T xa;  dxa = s dy B;  dA = dxa^T x;  dx = dy W + dxa A
  g.db_OR = product(O, R, N, [&](int64_t o, int64_t n) { return scale * dy[size_t(n * O + o)]; },
                    [&](int64_t n, int64_t r) { return xa[size_t(n * R + r)]; });
  const auto dxa = product(N, R, O, [&](int64_t n, int64_t o) { return scale * dy[size_t(n * O + o)]; },
                           [&](int64_t o, int64_t r) { return b[size_t(o * R + r)]; });
  g.da_RK = product(R, K, N, [&](int64_t r, int64_t n) { return dxa[size_t(n * R + r)]; },
                    [&](int64_t n, int64_t k) { return x[size_t(n * K + k)]; });
  g.dx_NK = product(N, K, O, [&](int64_t n, int64_t o) { return dy[size_t(n * O + o)]; },
                    [&](int64_t o, int64_t k) { return w[size_t(o * K + k)]; });
  const auto low = product(N, K, R, [&](int64_t n, int64_t r) { return dxa[size_t(n * R + r)]; },
                           [&](int64_t r, int64_t k) { return a[size_t(r * K + k)]; });
  for (size_t i = 0; i < g.dx_NK.size(); ++i) g.dx_NK[i] += low[i];
  return g;
}

std::vector<double> lora_multi_ref(const LoraDims& d, int64_t adapters, const std::vector<double>& x,
                                   const std::vector<double>& a_all, const std::vector<double>& b_all,
                                   const std::vector<double>& scales, const std::vector<int32_t>& row_adapter,
                                   std::vector<double> y) {
  const int64_t K = d.in, O = d.out, R = d.rank;
  if (a_all.size() != size_t(adapters * R * K) || b_all.size() != size_t(adapters * O * R) ||
      row_adapter.size() != size_t(d.rows) || y.size() != size_t(d.rows * O) || scales.size() != size_t(adapters))
    throw std::invalid_argument("lora_multi_ref: buffer sizes do not match the dimensions");
  for (int64_t n = 0; n < d.rows; ++n) {
    const int32_t i = row_adapter[size_t(n)];
    if (i < 0) continue;
    const double* A = a_all.data() + i * R * K;
    const double* B = b_all.data() + i * O * R;
    std::vector<double> xa(size_t(R), 0.0);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K; ++k) xa[size_t(r)] += x[size_t(n * K + k)] * A[r * K + k];
    for (int64_t o = 0; o < O; ++o) {
      double s = 0.0;
      for (int64_t r = 0; r < R; ++r) s += xa[size_t(r)] * B[o * R + r];
      y[size_t(n * O + o)] += scales[size_t(i)] * s;
    }
  }
  return y;
}

}  // namespace synthpert::reference
