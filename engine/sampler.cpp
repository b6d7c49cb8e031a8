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
  // NaN counts as -inf: never drawn.
  const auto logit = [logits](int64_t i) {
    return std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
  };
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < V; ++i) top = std::max(top, logit(i));
  if (!std::isfinite(top))
    throw std::runtime_error(str_cat("no finite logit to sample from (the top one is ", top,
                                     "): the model's activations overflowed (try bf16 or f32)"));
  const auto weight = [&](float l) { return std::exp((static_cast<double>(l) - top) * inv_t); };
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);

  if (params_.top_k <= 0 && params_.top_p >= 1.0) {
    // Plain softmax: every token is a candidate, so no order is needed and
    // the vocabulary is not sorted (most of a sampled step's time otherwise).
    weights_.resize(V);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += weights_[i] = weight(logit(i));
    const double target = u * sum;
    double cum = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < V; ++i) {
      if (weights_[i] == 0) continue;
      cum += weights_[i];
      last = i;
      if (target < cum) return i;
    }
    return last;  // rounding left u * sum at the very end
  }

  scratch_.resize(V);
  for (int64_t i = 0; i < V; ++i) scratch_[i] = {logit(i), i};
  // Highest logit first; ties by lower id so the order is fully determined.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int64_t keep = V;
  int64_t sorted = 0;  // scratch_[0, sorted) is in by_logit order
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
    sorted = keep;
  }
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += weight(scratch_[i].first);
  if (params_.top_p < 1.0) {
    // The nucleus: the smallest prefix of the candidates, best first, whose
    // mass reaches top_p (at least one token). It is usually a small part of
    // the vocabulary, so only a growing prefix is sorted until it holds it.
    // Each growth sorts only what follows the prefix already in place (every
    // later candidate ranks below it).
    int64_t n = 0;
    double cum = 0;
    for (int64_t want = std::min<int64_t>(keep, 256);; want = std::min(keep, want * 8)) {
      if (sorted < want) {
        const auto from = scratch_.begin() + sorted, to = scratch_.begin() + keep;
        if (want == keep)
          std::sort(from, to, by_logit);
        else
          std::partial_sort(from, scratch_.begin() + want, to, by_logit);
        sorted = want;
      }
      while (n < sorted && cum < params_.top_p * sum) cum += weight(scratch_[n++].first);
      if (cum >= params_.top_p * sum || sorted == keep) break;
    }
    keep = std::max<int64_t>(n, 1);
    sum = 0;
    for (int64_t i = 0; i < keep; ++i) sum += weight(scratch_[i].first);
  }
  const double target = u * sum;
  double cum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += weight(scratch_[i].first);
    if (target < cum) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace synthpert::engine
