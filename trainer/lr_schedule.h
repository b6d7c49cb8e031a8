// Learning-rate schedules with linear warmup, as Hugging Face's
// get_{linear,cosine,constant}_schedule_with_warmup: the multiplier of the
// update with index k (0-based, the number of updates already made) is
//   k < warmup:  k / warmup
//   linear:      max(0, (total - k) / (total - warmup))
//   cosine:      0.5 (1 + cos(pi (k - warmup) / (total - warmup)))
//   constant:    1
#pragma once

#include <cstdint>
#include <string>

namespace synthpert::trainer {

enum class Schedule { kLinear, kCosine, kConstant };
Schedule parse_schedule(const std::string& name);  // linear | cosine | constant

struct LrSchedule {
  Schedule kind = Schedule::kLinear;
  double base_lr = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  double lr(int64_t k) const;
};

// Warmup steps from --warmup-steps, or ceil(ratio x total) when steps is 0.
int64_t warmup_from(int64_t steps, double ratio, int64_t total);
// The checks warmup_from makes, before the total is known.
void check_warmup(int64_t steps, double ratio);

}  // namespace synthpert::trainer
