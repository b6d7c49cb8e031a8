// CPU reference for kernels/adamw.cu: one torch.optim.AdamW step (decoupled
// weight decay, bias corrections, eps outside the square root; amsgrad and
// maximize off) over one tensor, in fp64. Legend: n elements, contiguous.
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

// Updates param, exp_avg and exp_avg_sq in place; step counts this update (>= 1);
// decay false skips the weight decay (a parameter group with weight_decay 0).
void adamw_step_ref(std::vector<double>& param, const std::vector<double>& grad, std::vector<double>& exp_avg,
                    std::vector<double>& exp_avg_sq, int64_t step, const AdamWHyper& h, bool decay);

}  // namespace synthpert::reference
