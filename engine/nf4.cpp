#include "engine/nf4.h"

#include <algorithm>
#include <cmath>
#include <vector>

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

std::array<float, 256> derive_absmax_codes() {
  std::vector<double> v = {0.0, 1.0};
  for (int k = 0; k <= 6; ++k) {
    const double decade = std::pow(10.0, k - 6);
    const int steps = 1 << k;
    const double width = 0.9 / steps;  // [0.1, 1] in `steps` equal steps
    for (int j = 0; j < steps; ++j) {
      const double midpoint = 0.1 + width * (j + 0.5);
      v.push_back(midpoint * decade);
      v.push_back(-midpoint * decade);
    }
  }
  std::sort(v.begin(), v.end());
  SP_CHECK(v.size() == 256, "the 8-bit absmax code must have 256 values, derived ", v.size());
  std::array<float, 256> out{};
  std::transform(v.begin(), v.end(), out.begin(), [](double x) { return static_cast<float>(x); });
  return out;
}

// Index of the value of `codes` nearest to v; the lowest one on ties (a
// strict comparison, in fp32, as the kernels do).
template <size_t N>
int nearest_code(const std::array<float, N>& codes, float v) {
  int best = 0;
  for (int c = 1; c < static_cast<int>(N); ++c)
    if (std::fabs(codes[c] - v) < std::fabs(codes[best] - v)) best = c;
  return best;
}

}  // namespace

const std::array<float, 16>& nf4_code_values() {
  static const std::array<float, 16> codes = derive_codes();
  return codes;
}

const std::array<float, 256>& nf4_absmax_code_values() {
  static const std::array<float, 256> codes = derive_absmax_codes();
  return codes;
}

Nf4Weight Nf4Weight::to(torch::Device device) const {
  Nf4Weight w = *this;
  for (auto* t : {&w.packed, &w.absmax, &w.absmax_code, &w.absmax_scale, &w.absmax_offset})
    if (t->defined()) *t = t->to(device);
  return w;
}

void nf4_double_quantize_scales(Nf4Weight& w) {
  SP_CHECK(!w.double_quant() && w.absmax.device().is_cpu(), "nf4_double_quantize_scales: needs plain CPU scales");
  const auto absmax = w.absmax.contiguous();
  const float* a = absmax.data_ptr<float>();
  const int64_t nb = absmax.numel();
  double sum = 0;
  for (int64_t b = 0; b < nb; ++b) sum += a[b];
  const float offset = nb > 0 ? static_cast<float>(sum / static_cast<double>(nb)) : 0.f;
  const int64_t groups = (nb + kNf4AbsmaxBlockSize - 1) / kNf4AbsmaxBlockSize;
  w.absmax_offset = torch::full({1}, offset, torch::kFloat32);
  w.absmax_scale = torch::empty({groups}, torch::kFloat32);
  w.absmax_code = torch::empty({nb}, torch::kUInt8);
  float* scale = w.absmax_scale.data_ptr<float>();
  uint8_t* code = w.absmax_code.data_ptr<uint8_t>();
  const auto& codes8 = nf4_absmax_code_values();
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t lo = g * kNf4AbsmaxBlockSize, hi = std::min(nb, lo + kNf4AbsmaxBlockSize);
    float m = 0;
    for (int64_t b = lo; b < hi; ++b) m = std::max(m, std::fabs(a[b] - offset));
    scale[g] = m;
    const float inv = m > 0 ? 1.0f / m : 0.0f;
    for (int64_t b = lo; b < hi; ++b) code[b] = static_cast<uint8_t>(nearest_code(codes8, (a[b] - offset) * inv));
  }
  w.absmax = torch::Tensor();
}

torch::Tensor nf4_block_scales(const Nf4Weight& w) {
  if (!w.double_quant()) return w.absmax;
  const auto& v = nf4_absmax_code_values();
  const auto dev = w.absmax_code.device();
  const auto table = torch::tensor(std::vector<float>(v.begin(), v.end()), torch::kFloat32).to(dev);
  const int64_t nb = w.absmax_code.numel();
  const auto code = table.index_select(0, w.absmax_code.to(torch::kInt64));
  const auto scale = w.absmax_scale.repeat_interleave(kNf4AbsmaxBlockSize).narrow(0, 0, nb);
  // Two separate fp32 ops: the product is rounded before the offset is added.
  return code.mul(scale).add(w.absmax_offset);
}

Nf4Weight nf4_quantize(const torch::Tensor& weight_OI, bool double_quant) {
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
      const int best = nearest_code(codes, x[idx] * inv);
      if (idx % 2 == 0) q[idx / 2] = static_cast<uint8_t>(best << 4);
      else q[idx / 2] |= static_cast<uint8_t>(best);
    }
  }
  if (double_quant) nf4_double_quantize_scales(w);
  return w;
}

torch::Tensor nf4_dequantize(const Nf4Weight& w) {
  const int64_t n = w.out_features * w.in_features;
  auto out = torch::empty({n}, torch::kFloat32);
  const uint8_t* q = w.packed.data_ptr<uint8_t>();
  const auto scales = nf4_block_scales(w).contiguous();
  const float* amax = scales.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const auto& codes = nf4_code_values();
  for (int64_t i = 0; i < n; ++i) {
    const int code = (i % 2 == 0) ? (q[i / 2] >> 4) : (q[i / 2] & 0xF);
    y[i] = codes[code] * amax[i / kNf4BlockSize];
  }
  return out.view({w.out_features, w.in_features}).to(w.dtype);
}

}  // namespace synthpert::engine
