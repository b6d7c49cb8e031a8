// The AdamW reference against libtorch's torch::optim::AdamW (fp64, several
// steps, two parameter groups with and without weight decay) and against the
// CPU trainer's optimizer (trainer/adamw.h, fp32) on the same inputs ([cpu]).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include "trainer/adamw.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "tests/kernels/ref_test_util.h"
#include "tests/reference/kernels/adamw_ref.h"

using namespace synthpert::test;
using synthpert::reference::AdamWHyper;
using synthpert::reference::adamw_step_ref;

namespace {

const int64_t kSizes[] = {1, 5, 123, 1023};
constexpr int kSteps = 6;

// Gradients of a different scale per step (and one exactly zero), so the
// moment estimates and bias corrections are all exercised.
std::vector<double> grad_at(int64_t n, int step, size_t tensor) {
  if (step == 3) return std::vector<double>(size_t(n), 0.0);
  return randn(size_t(n), uint32_t(100 * step + tensor), std::pow(3.0, step - 2));
}

struct RefTensor {
  std::vector<double> p, m, v;
};

}  // namespace

TEST_CASE("adamw reference matches libtorch torch::optim::AdamW over several steps", "[cpu][adamw]") {
  AdamWHyper h;
  h.lr = 3e-2;
  h.beta1 = 0.85;
  h.beta2 = 0.98;
  h.eps = 1e-6;
  h.weight_decay = 0.1;
  std::vector<torch::Tensor> decayed, plain;
  std::vector<RefTensor> ref;
  for (size_t i = 0; i < std::size(kSizes); ++i) {
    const auto init = randn(size_t(kSizes[i]), uint32_t(7 + i));
    (i % 2 == 0 ? decayed : plain).push_back(tensor_of(init, {kSizes[i]}).set_requires_grad(true));
    ref.push_back({init, std::vector<double>(init.size()), std::vector<double>(init.size())});
  }
  auto opts = [&](double wd) {
    return torch::optim::AdamWOptions(h.lr).betas(std::make_tuple(h.beta1, h.beta2)).eps(h.eps).weight_decay(wd);
  };
  torch::optim::AdamW opt_decayed(decayed, opts(h.weight_decay)), opt_plain(plain, opts(0.0));
  for (int step = 1; step <= kSteps; ++step) {
    for (size_t i = 0; i < ref.size(); ++i) {
      const auto g = grad_at(kSizes[i], step, i);
      torch::Tensor& p = (i % 2 == 0 ? decayed[i / 2] : plain[i / 2]);
      p.mutable_grad() = tensor_of(g, {kSizes[i]});
      adamw_step_ref(ref[i].p, g, ref[i].m, ref[i].v, step, h, i % 2 == 0);
    }
    opt_decayed.step();
    opt_plain.step();
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO("step " << step << " tensor " << i);
      CHECK(max_abs_diff(ref[i].p, i % 2 == 0 ? decayed[i / 2] : plain[i / 2]) < 1e-12);
    }
  }
}

TEST_CASE("adamw reference matches the trainer's AdamW (fp32) on the same inputs", "[cpu][adamw]") {
  AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.05;
  synthpert::trainer::AdamWOptions o;
  o.beta1 = h.beta1;
  o.beta2 = h.beta2;
  o.eps = h.eps;
  o.weight_decay = h.weight_decay;
  // The trainer works on one flat fp32 buffer with a per-element decay mask.
  int64_t total = 0;
  for (int64_t n : kSizes) total += n;
  std::vector<RefTensor> ref;
  std::vector<double> flat_init, mask;
  for (size_t i = 0; i < std::size(kSizes); ++i) {
    // fp32-exact initial values, so both sides start from the same numbers.
    auto init = vector_of(tensor_of(randn(size_t(kSizes[i]), uint32_t(40 + i)), {kSizes[i]}).to(at::kFloat));
    flat_init.insert(flat_init.end(), init.begin(), init.end());
    mask.insert(mask.end(), size_t(kSizes[i]), i % 2 == 0 ? 1.0 : 0.0);
    ref.push_back({init, std::vector<double>(init.size()), std::vector<double>(init.size())});
  }
  torch::Tensor master = tensor_of(flat_init, {total}).to(at::kFloat);
  const torch::Tensor decay_mask = tensor_of(mask, {total}).to(at::kFloat);
  synthpert::trainer::AdamW opt(total, torch::kCPU, o);
  for (int step = 1; step <= kSteps; ++step) {
    std::vector<double> flat_grad;
    for (size_t i = 0; i < ref.size(); ++i) {
      // fp32-exact gradients as well.
      const auto g = vector_of(tensor_of(grad_at(kSizes[i], step, i), {kSizes[i]}).to(at::kFloat));
      flat_grad.insert(flat_grad.end(), g.begin(), g.end());
      adamw_step_ref(ref[i].p, g, ref[i].m, ref[i].v, step, h, i % 2 == 0);
    }
    opt.step(master, tensor_of(flat_grad, {total}).to(at::kFloat), decay_mask, h.lr);
    std::vector<double> want;
    for (const RefTensor& r : ref) want.insert(want.end(), r.p.begin(), r.p.end());
    // fp32 arithmetic: a few roundings of the parameter (magnitude <= ~4) and
    // of an update of size <= lr per step, accumulated over the steps.
    const double bound = 8.0 * step * std::ldexp(1.0, -24) * (4.0 + h.lr);
    INFO("step " << step << " bound " << bound);
    CHECK(max_abs_diff(want, master) <= bound);
  }
}
