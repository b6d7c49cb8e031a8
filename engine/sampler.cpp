#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "common/error.h"

namespace synthpert::engine {

void validate_sampling(const SamplingParams& p) {
  SP_CHECK_INPUT(p.temperature >= 0 && std::isfinite(p.temperature),
                 "--temperature must be >= 0, got ", p.temperature);
  SP_CHECK_INPUT(p.top_k >= 0, "--top-k must be >= 0, got ", p.top_k);
  SP_CHECK_INPUT(p.top_p > 0 && p.top_p <= 1, "--top-p must be in (0, 1], got ", p.top_p);
}

Sampler::Sampler(const SamplingParams& params, uint64_t stream)
    : params_(params), rng_(params.seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + 1) {}

namespace {

// Lowest id of the highest logit; a NaN (an overflowed fp16 activation) is
// never the answer. -1 when every logit is NaN.
int64_t argmax_skipping_nan(const float* logits, int64_t V) {
  int64_t best = -1;
  for (int64_t i = 0; i < V; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
  return best;
}

}  // namespace

int64_t Sampler::sample(const float* logits, int64_t V) {
  // A temperature so small that 1/T overflows is greedy, its limit (the
  // softmax below would compute 0 * inf for the top token).
  const double inv_t = params_.temperature > 0 ? 1.0 / params_.temperature : 0.0;
  if (params_.temperature == 0.0 || !std::isfinite(inv_t)) {
    const int64_t best = argmax_skipping_nan(logits, V);
    if (best < 0) throw std::runtime_error(kAllLogitsNan);
    return best;
  }
  scratch_.resize(V);
  // NaN sorts as -inf (never drawn), so the order below stays a strict weak
  // ordering.
  for (int64_t i = 0; i < V; ++i)
    scratch_[i] = {std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i], i};
  // Highest logit first; ties by lower id so the order is fully determined.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int64_t keep = V;
  if (params_.top_k > 0 && params_.top_k < V) {
    keep = params_.top_k;
    std::partial_sort(scratch_.begin(), scratch_.begin() + keep, scratch_.end(), by_logit);
    // Every token equal to the k-th stays a candidate, as transformers'
    // top-k filter (it removes only logits below the k-th): which of a tie
    // survives must not depend on the token ids.
    const float kth = scratch_[keep - 1].first;
    const auto ties_end = std::partition(scratch_.begin() + keep, scratch_.end(),
                                         [kth](const auto& c) { return c.first == kth; });
    std::sort(scratch_.begin() + keep, ties_end, by_logit);
    keep = ties_end - scratch_.begin();
  } else {
    std::sort(scratch_.begin(), scratch_.end(), by_logit);
  }
  // Softmax over the kept candidates in double.
  std::vector<double> probs(keep);
  const double top = scratch_[0].first;
  if (!std::isfinite(top))
    throw std::runtime_error(str_cat("no finite logit to sample from (the top one is ", top,
                                     "): the model's activations overflowed (try bf16 or f32)"));
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += probs[i] = std::exp((scratch_[i].first - top) * inv_t);
  for (auto& p : probs) p /= sum;
  if (params_.top_p < 1.0) {
    // Smallest prefix whose mass reaches top_p (always at least one token).
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs[n++];
      if (cum >= params_.top_p) break;
    }
    keep = n;
    sum = 0;
    for (int64_t i = 0; i < keep; ++i) sum += probs[i];
    for (int64_t i = 0; i < keep; ++i) probs[i] /= sum;
  }
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += probs[i];
    if (u < cum) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace synthpert::engine
