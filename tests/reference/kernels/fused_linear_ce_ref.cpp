// Plain loops for linear + cross-entropy; see fused_linear_ce_ref.h.
#include "tests/reference/kernels/fused_linear_ce_ref.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace synthpert::reference {

LinearCrossEntropy linear_cross_entropy_ref(const std::vector<double>& h, const std::vector<double>& w,
                                            const std::vector<int64_t>& targets, int64_t C, int64_t ignore_index,
                                            double grad_scale) {
  const size_t N = targets.size();
  if (C <= 0 || h.size() != N * size_t(C) || w.size() % size_t(C) != 0)
    throw std::invalid_argument("linear_cross_entropy_ref: hidden must be [N, C] and weight [V, C]");
  const size_t V = w.size() / size_t(C);
  LinearCrossEntropy r{std::vector<double>(N), std::vector<double>(N), std::vector<double>(h.size(), 0.0),
                       std::vector<double>(w.size(), 0.0)};
  std::vector<double> logits(V);
  for (size_t n = 0; n < N; ++n) {
    for (size_t v = 0; v < V; ++v) {
      double s = 0.0;
      for (int64_t c = 0; c < C; ++c) s += h[n * size_t(C) + size_t(c)] * w[v * size_t(C) + size_t(c)];
      logits[v] = s;
    }
    const double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (double l : logits) sum += std::exp(l - mx);
    const double lse = mx + std::log(sum);
    r.lse_N[n] = lse;
    if (targets[n] == ignore_index) continue;  // loss 0, no gradient
    if (targets[n] < 0 || size_t(targets[n]) >= V) throw std::invalid_argument("linear_cross_entropy_ref: bad target");
    r.loss_N[n] = lse - logits[size_t(targets[n])];
    // d loss / d logit_v = softmax_v - [v == target]
    for (size_t v = 0; v < V; ++v) {
      const double g = (std::exp(logits[v] - lse) - (v == size_t(targets[n]) ? 1.0 : 0.0)) * grad_scale;
      for (int64_t c = 0; c < C; ++c) {
        r.dhidden_NC[n * size_t(C) + size_t(c)] += g * w[v * size_t(C) + size_t(c)];
        r.dweight_VC[v * size_t(C) + size_t(c)] += g * h[n * size_t(C) + size_t(c)];
      }
    }
  }
  return r;
}

}  // namespace synthpert::reference
