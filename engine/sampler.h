// Token sampling: greedy, temperature, top-k, top-p (nucleus).
//
// Sampling runs on a CPU copy of one row of logits with our own RNG, so the
// same seed gives the same tokens on every backend and libtorch version.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace synthpert::engine {

struct SamplingParams {
  double temperature = 0.0;  // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;         // 0: off; ties with the k-th logit are kept
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  // `stream` separates the random streams of the sequences of one batch.
  Sampler(const SamplingParams& params, uint64_t stream);
  int64_t sample(const float* logits, int64_t vocab);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int64_t>> scratch_;  // (logit, id) candidates, sorted as far as needed
  std::vector<double> weights_;                     // exp((logit - max) / T) per id, plain softmax
};

// Why a row of logits cannot be sampled: every entry is NaN.
inline constexpr const char* kAllLogitsNan =
    "every logit is NaN: the model's activations overflowed (try bf16 or f32)";

// Validates sampling parameters; throws InputError naming the flag.
void validate_sampling(const SamplingParams& p);

}  // namespace synthpert::engine
