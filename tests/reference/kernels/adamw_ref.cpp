// Plain loop for AdamW; see adamw_ref.h.
#include "tests/reference/kernels/adamw_ref.h"

#include <cmath>
#include <stdexcept>

namespace synthpert::reference {

void adamw_step_ref(std::vector<double>& param, const std::vector<double>& grad, std::vector<double>& exp_avg,
                    std::vector<double>& exp_avg_sq, int64_t step, const AdamWHyper& h, bool decay) {
  if (grad.size() != param.size() || exp_avg.size() != param.size() || exp_avg_sq.size() != param.size())
    throw std::invalid_argument("adamw_step_ref: param, grad, exp_avg and exp_avg_sq must have the same size");
  if (step < 1) throw std::invalid_argument("adamw_step_ref: step must be >= 1");
  const double bias1 = 1.0 - std::pow(h.beta1, double(step));
  const double bias2 = 1.0 - std::pow(h.beta2, double(step));
  for (size_t i = 0; i < param.size(); ++i) {
    if (decay) param[i] *= 1.0 - h.lr * h.weight_decay;
    exp_avg[i] = h.beta1 * exp_avg[i] + (1.0 - h.beta1) * grad[i];
    exp_avg_sq[i] = h.beta2 * exp_avg_sq[i] + (1.0 - h.beta2) * grad[i] * grad[i];
    const double denom = std::sqrt(exp_avg_sq[i]) / std::sqrt(bias2) + h.eps;
    param[i] -= h.lr / bias1 * exp_avg[i] / denom;
  }
}

}  // namespace synthpert::reference
