// AdamW with decoupled weight decay, step for step as torch.optim.AdamW
// (amsgrad off): p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Works on the flat float32 master buffer of a ParamSet: step() with
// whole-buffer torch ops, or fused_step() with the fused kernel of
// kernels/adamw, which also writes the rounded masters into the model's
// bf16/f16 parameters in the same pass.
#pragma once

#include <vector>

#include "engine/torch_compat.h"
#include "trainer/param_entry.h"

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

  // The same update through kernels/adamw, one launch per 32 tensors, each
  // entry's slice of `master` updated and its `param` rewritten as the
  // rounded master (what step() + ParamSet::write_back() do). Taken where the
  // engine's kernels run (engine::kernels_apply: a CUDA build, bf16/f16
  // parameters on the GPU) and every parameter is contiguous and of one
  // dtype; elsewhere it returns false and changes nothing.
  bool fused_step(torch::Tensor& master, const torch::Tensor& grad, const std::vector<ParamEntry>& entries,
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
