// Plain loops for NF4; see nf4_ref.h.
#include "tests/reference/kernels/nf4_ref.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace synthpert::reference {
namespace {

constexpr int64_t kBlock = 64, kAbsmaxBlock = 256;

// First index of the code nearest to v (strict comparison: ties keep the lower index).
template <size_t K>
uint8_t nearest(const std::array<float, K>& codes, float v) {
  size_t best = 0;
  for (size_t c = 1; c < K; ++c)
    if (std::fabs(codes[c] - v) < std::fabs(codes[best] - v)) best = c;
  return static_cast<uint8_t>(best);
}

}  // namespace

Nf4State nf4_quantize_ref(const std::vector<float>& weight_OI, int64_t out_features, int64_t in_features,
                          int64_t row_stride, const std::array<float, 16>& codes, bool double_quant,
                          const std::array<float, 256>& absmax_codes) {
  const int64_t n = out_features * in_features;
  if (n % kBlock != 0) throw std::invalid_argument("nf4_quantize_ref: O*I must be a multiple of 64");
  auto value = [&](int64_t k) { return weight_OI[size_t(k / in_features * row_stride + k % in_features)]; };
  Nf4State s;
  s.packed.assign(size_t(n / 2), 0);
  s.absmax.assign(size_t(n / kBlock), 0.f);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    float m = 0.f;
    for (int64_t i = 0; i < kBlock; ++i) m = std::max(m, std::fabs(value(b * kBlock + i)));
    s.absmax[size_t(b)] = m;
    const float inv = m > 0.f ? 1.f / m : 0.f;
    for (int64_t i = 0; i < kBlock; ++i) {
      const int64_t k = b * kBlock + i;
      const uint8_t c = nearest(codes, value(k) * inv);
      s.packed[size_t(k / 2)] |= (k % 2 == 0) ? uint8_t(c << 4) : c;
    }
  }
  s.double_quant = double_quant;
  if (!double_quant) return s;

  const int64_t nb = n / kBlock;
  double sum = 0.0;
  for (float a : s.absmax) sum += a;
  s.absmax_offset = float(sum / double(nb));
  s.absmax_code.assign(size_t(nb), 0);
  for (int64_t b2 = 0; b2 * kAbsmaxBlock < nb; ++b2) {
    const int64_t end = std::min(nb, (b2 + 1) * kAbsmaxBlock);
    float m = 0.f;
    for (int64_t b = b2 * kAbsmaxBlock; b < end; ++b) m = std::max(m, std::fabs(s.absmax[size_t(b)] - s.absmax_offset));
    s.absmax_scale.push_back(m);
    const float inv = m > 0.f ? 1.f / m : 0.f;
    for (int64_t b = b2 * kAbsmaxBlock; b < end; ++b) {
      const float centred = s.absmax[size_t(b)] - s.absmax_offset;
      s.absmax_code[size_t(b)] = nearest(absmax_codes, centred * inv);
    }
  }
  return s;
}

std::vector<float> nf4_block_scales_ref(const Nf4State& s, const std::array<float, 256>& absmax_codes) {
  if (!s.double_quant) return s.absmax;
  std::vector<float> out(s.absmax_code.size());
  for (size_t b = 0; b < out.size(); ++b) {
    const float product = absmax_codes[s.absmax_code[b]] * s.absmax_scale[b / kAbsmaxBlock];
    out[b] = product + s.absmax_offset;
  }
  return out;
}

std::vector<float> nf4_dequantize_ref(const Nf4State& s, const std::array<float, 16>& codes,
                                      const std::array<float, 256>& absmax_codes) {
  const std::vector<float> scale = nf4_block_scales_ref(s, absmax_codes);
  std::vector<float> out(s.packed.size() * 2);
  for (size_t k = 0; k < out.size(); ++k) {
    const uint8_t byte = s.packed[k / 2];
    const int c = (k % 2 == 0) ? byte >> 4 : byte & 0xF;
    out[k] = codes[size_t(c)] * scale[k / kBlock];
  }
  return out;
}

std::vector<double> nf4_matmul_ref(const std::vector<double>& x_NI, const std::vector<float>& w_OI, int64_t rows,
                                   int64_t out_features, int64_t in_features) {
  std::vector<double> y(size_t(rows * out_features), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_features; ++o) {
      double acc = 0.0;
      for (int64_t i = 0; i < in_features; ++i)
        acc += x_NI[size_t(r * in_features + i)] * double(w_OI[size_t(o * in_features + i)]);
      y[size_t(r * out_features + o)] = acc;
    }
  return y;
}

}  // namespace synthpert::reference
