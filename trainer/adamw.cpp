#include "trainer/adamw.h"

#include <cmath>

namespace synthpert::trainer {

AdamW::AdamW(int64_t numel, torch::Device device, const AdamWOptions& opts) : opts_(opts) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  exp_avg_ = torch::zeros({numel}, f32);
  exp_avg_sq_ = torch::zeros({numel}, f32);
}

void AdamW::step(torch::Tensor& master, const torch::Tensor& grad, const torch::Tensor& decay_mask,
                 double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  if (opts_.weight_decay != 0) master.mul_(1.0 - lr * opts_.weight_decay * decay_mask);
  exp_avg_.mul_(opts_.beta1).add_(grad, 1.0 - opts_.beta1);
  exp_avg_sq_.mul_(opts_.beta2).addcmul_(grad, grad, 1.0 - opts_.beta2);
  const double t = static_cast<double>(steps_);
  const double bias1 = 1.0 - std::pow(opts_.beta1, t);
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(opts_.beta2, t));
  const auto denom = (exp_avg_sq_.sqrt() / bias2_sqrt).add_(opts_.eps);
  master.addcdiv_(exp_avg_, denom, -lr / bias1);
}

}  // namespace synthpert::trainer
