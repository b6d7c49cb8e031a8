#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace synthpert::trainer {

Schedule parse_schedule(const std::string& name) {
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  if (name == "constant") return Schedule::kConstant;
  throw InputError(str_cat("--schedule: expected linear, cosine or constant, got '", name, "'"));
}

double LrSchedule::lr(int64_t k) const {
  if (k < warmup_steps) return base_lr * static_cast<double>(k) / static_cast<double>(warmup_steps);
  if (kind == Schedule::kConstant) return base_lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  if (kind == Schedule::kLinear)
    return base_lr * std::max(0.0, static_cast<double>(total_steps - k) / span);
  const double progress = static_cast<double>(k - warmup_steps) / span;
  return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

void check_warmup(int64_t steps, double ratio) {
  SP_CHECK_INPUT(steps >= 0, "--warmup-steps must not be negative");
  SP_CHECK_INPUT(ratio >= 0 && ratio <= 1, "--warmup-ratio must be in [0, 1], got ", ratio);
}

int64_t warmup_from(int64_t steps, double ratio, int64_t total) {
  check_warmup(steps, ratio);
  if (steps > 0) return steps;
  return static_cast<int64_t>(std::ceil(ratio * static_cast<double>(total)));
}

}  // namespace synthpert::trainer
