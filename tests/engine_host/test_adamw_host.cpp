// The trainer's fused AdamW step (trainer/adamw_fused.cpp) run on CPU against
// the host emulation of kernels/adamw (host_adamw.cpp): how the flat master,
// gradient and moment buffers are cut into per-parameter slices, the decay
// flag of each, the step count, and the write-back into the model's bf16
// parameters. The oracle is libtorch's torch::optim::AdamW on fp32 copies,
// with one parameter group per weight-decay setting.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include <torch/optim/adamw.h>

#include "engine/kernel_launch.h"
#include "trainer/adamw.h"

#include <catch2/catch.hpp>

using namespace synthpert;

TEST_CASE("the fused AdamW step slices the flat buffers as the optimizer's parameter groups", "[engine_host]") {
  REQUIRE(engine::kernels_apply(torch::kCPU, torch::kBFloat16));  // the host emulation build
  torch::manual_seed(11);
  const std::vector<std::vector<int64_t>> shapes = {{1}, {5}, {3, 41}, {1023}, {2, 7}};
  const std::vector<bool> decays = {true, false, true, false, true};
  std::vector<trainer::ParamEntry> entries;
  int64_t n = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    trainer::ParamEntry e;
    e.name = "p" + std::to_string(i);
    e.param = (torch::randn(shapes[i]) * 0.5).to(torch::kBFloat16);
    e.offset = n;
    e.decay = decays[i];
    n += e.param.numel();
    entries.push_back(e);
  }
  auto master = torch::empty({n});
  for (const auto& e : entries) master.narrow(0, e.offset, e.param.numel()).copy_(e.param.reshape({-1}));

  // The oracle: fp32 copies of the masters in two groups.
  std::vector<torch::Tensor> with_decay, without_decay, oracle;
  for (const auto& e : entries) {
    oracle.push_back(e.param.to(torch::kFloat32).reshape({-1}).clone().requires_grad_(true));
    (e.decay ? with_decay : without_decay).push_back(oracle.back());
  }
  trainer::AdamWOptions o;
  o.weight_decay = 0.1;
  o.beta2 = 0.99;
  auto group_options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(1e-2).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd));
  };
  torch::optim::AdamW reference({torch::optim::OptimizerParamGroup(with_decay, group_options(o.weight_decay)),
                                 torch::optim::OptimizerParamGroup(without_decay, group_options(0.0))},
                                torch::optim::AdamWOptions(1e-2));

  trainer::AdamW opt(n, torch::kCPU, o);
  const std::vector<double> lrs = {1e-2, 5e-3, 2e-2};
  for (double lr : lrs) {
    const auto grad = torch::randn({n});
    for (size_t i = 0; i < entries.size(); ++i)
      oracle[i].mutable_grad() = grad.narrow(0, entries[i].offset, entries[i].param.numel()).clone();
    for (auto& g : reference.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    reference.step();
    REQUIRE(opt.fused_step(master, grad, entries, lr));
  }
  CHECK(opt.steps() == 3);
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO("entry " << i << " decay " << entries[i].decay);
    const auto slice = master.narrow(0, entries[i].offset, entries[i].param.numel());
    CHECK((slice - oracle[i].detach()).abs().max().item<double>() < 2e-6);
    // The model's parameter is the master rounded to bf16, as write_back() makes it.
    CHECK(torch::equal(entries[i].param.reshape({-1}), slice.to(torch::kBFloat16)));
  }

  // float32 parameters are not the kernel's case here: nothing happens, the
  // trainer takes step() + write_back().
  std::vector<trainer::ParamEntry> fp32 = {{"w", torch::randn({4}), 0, true}};
  auto m32 = fp32[0].param.clone();
  const auto before = m32.clone();
  trainer::AdamW opt32(4, torch::kCPU, o);
  CHECK_FALSE(opt32.fused_step(m32, torch::randn({4}), fp32, 1e-2));
  CHECK(opt32.steps() == 0);
  CHECK(torch::equal(m32, before));
}
