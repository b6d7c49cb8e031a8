#include "engine/nf4.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace synthpert::engine {

namespace {

// Inverse CDF of N(0, 1) by bisection on erfc; precise to ~1e-15, and only
// ever evaluated 15 times.
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
    (cdf < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

std::array<float, 16> derive_codes() {
  // QLoRA: the quantile grid starts at offset = (1 - 1/(2*15) + 1 - 1/(2*16)) / 2
  // so that the extreme codes are finite and the two halves are symmetric in
  // probability mass.
  const double offset = 0.5 * ((1.0 - 1.0 / 30.0) + (1.0 - 1.0 / 32.0));
  std::vector<double> v;
  for (int i = 0; i < 8; ++i) v.push_back(normal_quantile(offset + (0.5 - offset) * i / 8.0));
  for (int i = 0; i < 7; ++i) v.push_back(-normal_quantile(offset + (0.5 - offset) * i / 7.0));
  v.push_back(0.0);
  std::sort(v.begin(), v.end());
  const double mx = v.back();
  std::array<float, 16> out{};
  for (int i = 0; i < 16; ++i) out[i] = static_cast<float>(v[i] / mx);
  return out;
}

}  // namespace

const std::array<float, 16>& nf4_code_values() {
  static const std::array<float, 16> codes = derive_codes();
  return codes;
}

Nf4Weight nf4_quantize(const torch::Tensor& weight_OI) {
  SP_CHECK(weight_OI.dim() == 2, "nf4_quantize: weight must be 2-D");
  const int64_t n = weight_OI.numel();
  SP_CHECK_INPUT(n % kNf4BlockSize == 0, "NF4 needs the weight's element count (", n,
                 ") to be a multiple of ", kNf4BlockSize);
  Nf4Weight w;
  w.out_features = weight_OI.size(0);
  w.in_features = weight_OI.size(1);
  w.dtype = weight_OI.scalar_type();
  auto flat = weight_OI.detach().to(torch::kFloat32).contiguous().view({-1});
  w.absmax = torch::empty({n / kNf4BlockSize}, torch::kFloat32);
  w.packed = torch::empty({n / 2}, torch::kUInt8);
  const float* x = flat.data_ptr<float>();
  float* amax = w.absmax.data_ptr<float>();
  uint8_t* q = w.packed.data_ptr<uint8_t>();
  const auto& codes = nf4_code_values();
  for (int64_t b = 0; b < n / kNf4BlockSize; ++b) {
    float m = 0;
    for (int64_t i = 0; i < kNf4BlockSize; ++i) m = std::max(m, std::fabs(x[b * kNf4BlockSize + i]));
    amax[b] = m;
    const float inv = m > 0 ? 1.0f / m : 0.0f;
    for (int64_t i = 0; i < kNf4BlockSize; ++i) {
      const int64_t idx = b * kNf4BlockSize + i;
      const float v = x[idx] * inv;
      int best = 0;
      for (int c = 1; c < 16; ++c)
        if (std::fabs(codes[c] - v) < std::fabs(codes[best] - v)) best = c;
      if (idx % 2 == 0) q[idx / 2] = static_cast<uint8_t>(best << 4);
      else q[idx / 2] |= static_cast<uint8_t>(best);
    }
  }
  return w;
}

torch::Tensor nf4_dequantize(const Nf4Weight& w) {
  const int64_t n = w.out_features * w.in_features;
  auto out = torch::empty({n}, torch::kFloat32);
  const uint8_t* q = w.packed.data_ptr<uint8_t>();
  const float* amax = w.absmax.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const auto& codes = nf4_code_values();
  for (int64_t i = 0; i < n; ++i) {
    const int code = (i % 2 == 0) ? (q[i / 2] >> 4) : (q[i / 2] & 0xF);
    y[i] = codes[code] * amax[i / kNf4BlockSize];
  }
  return out.view({w.out_features, w.in_features}).to(w.dtype);
}

}  // namespace synthpert::engine
