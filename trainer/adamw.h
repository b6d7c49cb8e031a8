// AdamW with decoupled weight decay, step for step as torch.optim.AdamW
// (amsgrad off): p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Works on the flat float32 master buffer of a ParamSet; on the GPU host the
// fused kernel of kernels/ replaces these whole-buffer ops.
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::trainer {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(int64_t numel, torch::Device device, const AdamWOptions& opts);

  // One update of `master` with gradient `grad`; `decay_mask` is 1 where
  // weight decay applies.
  void step(torch::Tensor& master, const torch::Tensor& grad, const torch::Tensor& decay_mask,
            double lr);

  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  torch::Tensor& exp_avg() { return exp_avg_; }
  torch::Tensor& exp_avg_sq() { return exp_avg_sq_; }

 private:
  AdamWOptions opts_;
  int64_t steps_ = 0;
  torch::Tensor exp_avg_, exp_avg_sq_;
};

}  // namespace synthpert::trainer
