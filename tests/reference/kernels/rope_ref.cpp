// Plain loops for RoPE; see rope_ref.h.
#include "tests/reference/kernels/rope_ref.h"

#include <cmath>
#include <stdexcept>

namespace synthpert::reference {

double rope_angle(int64_t position, float inv_freq) {
  return double(static_cast<float>(position) * inv_freq);
}

std::vector<double> rope_ref(const std::vector<double>& x, const std::vector<int64_t>& pos,
                             const std::vector<float>& inv_freq, int heads, int head_dim, bool inverse) {
  const int half = head_dim / 2;
  if (head_dim % 2 != 0 || int(inv_freq.size()) != half || x.size() != pos.size() * size_t(heads * head_dim))
    throw std::invalid_argument("rope_ref: x must be [N, H, D] with D even, inv_freq [D/2], positions [N]");
  std::vector<double> y(x.size());
  for (size_t n = 0; n < pos.size(); ++n)
    for (int i = 0; i < half; ++i) {
      const double a = rope_angle(pos[n], inv_freq[size_t(i)]);
      const double c = std::cos(a), s = inverse ? -std::sin(a) : std::sin(a);
      for (int h = 0; h < heads; ++h) {
        const size_t base = (n * size_t(heads) + size_t(h)) * size_t(head_dim);
        const double x1 = x[base + size_t(i)], x2 = x[base + size_t(i + half)];
        y[base + size_t(i)] = x1 * c - x2 * s;
        y[base + size_t(i + half)] = x2 * c + x1 * s;
      }
    }
  return y;
}

}  // namespace synthpert::reference
