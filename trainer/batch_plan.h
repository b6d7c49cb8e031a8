// Which examples each optimizer step, process and micro-batch sees.
//
// The order depends only on --seed and the global batch
// (G = batch x grad_accum x world): epoch e visits a seeded permutation of the
// examples, step s of the epoch takes positions [s*G, (s+1)*G) of it (the last
// step of an epoch may be short). Inside a global batch the examples are
// sorted by length (longest first) and dealt in runs of `batch` to the
// world x grad_accum micro-batch slots, so similar lengths share a micro-batch
// (less padding) and 1 process with grad_accum N sees exactly the global
// batches of N processes.
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::trainer {

struct PlanOptions {
  int64_t batch = 1;       // examples per micro-batch per process
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t world = 1;       // processes
  uint64_t seed = 0;
  int64_t epochs = 1;
  int64_t max_steps = 0;   // > 0: stop after this many steps
};

class BatchPlan {
 public:
  BatchPlan(std::vector<int64_t> lengths, const PlanOptions& opts);
  // The option checks the constructor makes, for callers that want them
  // before any expensive work (loading the model).
  static void check(const PlanOptions& opts);

  int64_t global_batch() const { return global_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return total_steps_; }

  // The examples of optimizer step `step` (0-based), in dealing order.
  std::vector<int64_t> step_examples(int64_t step) const;
  // The examples of one micro-batch of one process (may be empty on a short
  // last step).
  std::vector<int64_t> micro_batch(int64_t step, int64_t rank, int64_t micro) const;

 private:
  // The permutation of one epoch, kept: steps ask for it in order, and
  // drawing it again for every step and micro-batch cost O(examples) each.
  const std::vector<int64_t>& epoch_permutation(int64_t epoch) const;

  std::vector<int64_t> lengths_;
  PlanOptions opts_;
  int64_t global_ = 1, steps_per_epoch_ = 0, total_steps_ = 0;
  mutable std::vector<int64_t> perm_;
  mutable int64_t perm_epoch_ = -1;
};

// A seeded permutation of [0, n) (Fisher-Yates on a counter-based generator,
// the same on every machine and library version).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream);

// 64-bit mixing function (splitmix64 finaliser): seeds derived from seeds.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace synthpert::trainer
