#include "trainer/batch_plan.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace synthpert::trainer {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  const uint64_t key = mix_seed(seed, stream);
  for (int64_t i = n - 1; i > 0; --i) {
    // Multiply-shift maps 64 random bits to [0, i] with negligible bias.
    const uint64_t r = mix_seed(key, static_cast<uint64_t>(i));
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(r) * (i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return p;
}

void BatchPlan::check(const PlanOptions& opts) {
  SP_CHECK_INPUT(opts.batch >= 1, "--batch must be at least 1, got ", opts.batch);
  SP_CHECK_INPUT(opts.grad_accum >= 1, "--grad-accum must be at least 1, got ", opts.grad_accum);
  SP_CHECK_INPUT(opts.epochs >= 1 || opts.max_steps > 0, "--epochs must be at least 1, got ",
                 opts.epochs);
  SP_CHECK_INPUT(opts.max_steps >= 0, "--max-steps must not be negative");
}

BatchPlan::BatchPlan(std::vector<int64_t> lengths, const PlanOptions& opts)
    : lengths_(std::move(lengths)), opts_(opts) {
  check(opts);
  SP_CHECK_INPUT(!lengths_.empty(), "no training examples");
  global_ = opts.batch * opts.grad_accum * opts.world;
  const auto n = static_cast<int64_t>(lengths_.size());
  steps_per_epoch_ = (n + global_ - 1) / global_;
  const int64_t by_epochs = steps_per_epoch_ * std::max<int64_t>(opts.epochs, 1);
  total_steps_ = opts.max_steps > 0 ? opts.max_steps : by_epochs;
}

const std::vector<int64_t>& BatchPlan::epoch_permutation(int64_t epoch) const {
  if (epoch != perm_epoch_) {
    perm_ = seeded_permutation(static_cast<int64_t>(lengths_.size()), opts_.seed, static_cast<uint64_t>(epoch));
    perm_epoch_ = epoch;
  }
  return perm_;
}

std::vector<int64_t> BatchPlan::step_examples(int64_t step) const {
  SP_CHECK(step >= 0, "negative step");
  const int64_t epoch = step / steps_per_epoch_, within = step % steps_per_epoch_;
  const auto n = static_cast<int64_t>(lengths_.size());
  const auto& perm = epoch_permutation(epoch);
  const int64_t lo = within * global_, hi = std::min(n, lo + global_);
  std::vector<int64_t> ex(perm.begin() + lo, perm.begin() + hi);
  // Longest first; ties keep permutation order so the result is a pure
  // function of (seed, step).
  std::stable_sort(ex.begin(), ex.end(),
                   [&](int64_t a, int64_t b) { return lengths_[a] > lengths_[b]; });
  return ex;
}

std::vector<int64_t> BatchPlan::micro_batch(int64_t step, int64_t rank, int64_t micro) const {
  SP_CHECK(rank >= 0 && rank < opts_.world && micro >= 0 && micro < opts_.grad_accum,
           "micro_batch: rank or micro index out of range");
  const auto ex = step_examples(step);
  const int64_t slot = micro * opts_.world + rank;
  const int64_t lo = std::min<int64_t>(slot * opts_.batch, ex.size());
  const int64_t hi = std::min<int64_t>(lo + opts_.batch, ex.size());
  return {ex.begin() + lo, ex.begin() + hi};
}

}  // namespace synthpert::trainer
