#include "engine/rope.h"

#include <cmath>

namespace synthpert::engine {

torch::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t D = c.head_dim;
  // float32 exactly as the reference implementation computes it, so that
  // positions in the thousands rotate identically.
  auto exponents = torch::arange(0, D, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(D);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(static_cast<float>(c.rope_theta)), exponents);
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") return inv_freq / s.factor;
  if (s.type != "llama3") return inv_freq;

  const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_ctx / s.low_freq_factor;
  const double high_freq_wavelen = old_ctx / s.high_freq_factor;
  auto wavelen = 2 * M_PI / inv_freq;
  auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  auto smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  auto medium = torch::logical_not(wavelen < high_freq_wavelen)
                    .logical_and(torch::logical_not(wavelen > low_freq_wavelen));
  return torch::where(medium, smoothed, scaled);
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq,
                                                     const torch::Tensor& positions_BT) {
  auto freqs = positions_BT.to(torch::kFloat32).unsqueeze(-1) *
               inv_freq.to(positions_BT.device()).view({1, 1, -1});  // (B, T, D/2)
  auto emb = torch::cat({freqs, freqs}, -1);                           // (B, T, D)
  return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rope(const torch::Tensor& x_BHTD, const torch::Tensor& cos_BTD,
                         const torch::Tensor& sin_BTD) {
  const int64_t half = x_BHTD.size(-1) / 2;
  auto x1 = x_BHTD.narrow(-1, 0, half);
  auto x2 = x_BHTD.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  auto cos = cos_BTD.unsqueeze(1).to(x_BHTD.scalar_type());
  auto sin = sin_BTD.unsqueeze(1).to(x_BHTD.scalar_type());
  return x_BHTD * cos + rotated * sin;
}

}  // namespace synthpert::engine
