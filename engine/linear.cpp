#include "engine/linear.h"

#include "common/error.h"
#include "engine/kernel_launch.h"
#include "engine/lora_linear.h"
#include "engine/nf4_linear.h"

namespace synthpert::engine {

int64_t Linear::out_features() const { return nf4 ? nf4->out_features : weight.size(0); }
int64_t Linear::in_features() const { return nf4 ? nf4->in_features : weight.size(1); }

torch::Tensor Linear::dense_weight() const {
  return nf4 ? nf4_dequantize_device(*nf4) : weight;
}

torch::Tensor Linear::forward(const torch::Tensor& x, bool training, const AdapterRouting* routing) const {
  const auto x2 = x.reshape({-1, x.size(-1)});
  auto out_shape = x.sizes().vec();
  out_shape.back() = out_features();
  auto y = forward_2d(x2, training);
  if (bank && routing) {
    SP_CHECK(!training, "adapter banks serve inference only");
    apply_lora_bank(y, x2, *bank, *routing);
  }
  return y.view(out_shape);
}

torch::Tensor Linear::forward_2d(const torch::Tensor& x2, bool training) const {
  // On CUDA in bf16/f16, base GEMM and adapter in one op (kernels/lora),
  // unless adapter dropout is active (the op has none). The op reads every
  // matrix as x's dtype, so an adapter kept in another one (float32 masters)
  // takes torch's path, which refuses the mix instead of misreading it.
  const auto dt = x2.scalar_type();
  if (lora && !(training && lora->dropout > 0) && kernels_apply(x2.device(), dt) && lora->A.scalar_type() == dt &&
      lora->B.scalar_type() == dt && (nf4 || weight.scalar_type() == dt)) {
    auto y = lora_linear(x2, *this, *lora);
    if (bias.defined()) y = y + bias;
    return y;
  }
  torch::Tensor y;
  if (nf4) {
    y = nf4_linear(x2, nf4);  // keeps only the 4-bit weight for the backward
    if (bias.defined()) y = y + bias;
  } else {
    y = bias.defined() ? torch::addmm(bias, x2, weight.t()) : torch::mm(x2, weight.t());
  }
  if (lora) {
    auto xa = x2;
    if (training && lora->dropout > 0) xa = torch::dropout(xa, lora->dropout, true);
    y = y + torch::mm(torch::mm(xa, lora->A.t()), lora->B.t()) * lora->scale;
  }
  return y;
}

}  // namespace synthpert::engine
