#include "engine/activation_checkpoint.h"

#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"

namespace synthpert::engine {
namespace {

// Carries the block function through AutogradContext::saved_data.
struct BlockHolder : torch::CustomClassHolder {
  BlockFn fn;
  explicit BlockHolder(BlockFn f) : fn(std::move(f)) {}
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const BlockFn& block) {
    ctx->saved_data["block"] =
        c10::IValue::make_capsule(c10::make_intrusive<BlockHolder>(block));
    ctx->saved_data["rng"] = at::globalContext().defaultGenerator(x.device()).get_state();
    ctx->save_for_backward({x});
    // Autograd is already disabled inside Function::forward: nothing is kept.
    return block(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto x_saved = ctx->get_saved_variables()[0];
    auto holder = ctx->saved_data["block"].toCapsule();
    const BlockFn& block = static_cast<BlockHolder*>(holder.get())->fn;
    auto gen = at::globalContext().defaultGenerator(x_saved.device());
    const auto rng_now = gen.get_state();
    gen.set_state(ctx->saved_data["rng"].toTensor());
    auto x = x_saved.detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = block(x);
    }
    gen.set_state(rng_now);
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_block(const BlockFn& block, const torch::Tensor& x) {
  SP_CHECK(x.requires_grad(), "checkpointed_block: the input must require grad");
  return CheckpointFunction::apply(x, block);
}

}  // namespace synthpert::engine
