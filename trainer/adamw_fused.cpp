// AdamW::fused_step (see adamw.h): the flat buffers cut into per-parameter
// slices for kernels/adamw's multi-tensor launcher.
#include "engine/kernel_launch.h"
#include "trainer/adamw.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/adamw.h"
#endif

namespace synthpert::trainer {

bool AdamW::fused_step(torch::Tensor& master, const torch::Tensor& grad, const std::vector<ParamEntry>& entries,
                       double lr) {
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (entries.empty()) return false;
  const auto dtype = entries.front().param.scalar_type();
  if (!engine::kernels_apply(master.device(), dtype)) return false;
  for (const auto& e : entries)
    if (e.param.scalar_type() != dtype || e.param.device() != master.device() || !e.param.is_contiguous())
      return false;
  if (master.scalar_type() != torch::kFloat32 || grad.scalar_type() != torch::kFloat32 || !master.is_contiguous() ||
      !grad.is_contiguous() || grad.numel() != master.numel())
    return false;

  namespace kn = synthpert::kernels;
  kn::AdamWArgs a;
  a.param_dtype = engine::kernel_dtype(entries.front().param);
  a.grad_dtype = kn::DType::kF32;
  a.lr = lr;
  a.beta1 = opts_.beta1;
  a.beta2 = opts_.beta2;
  a.eps = opts_.eps;
  a.weight_decay = opts_.weight_decay;
  a.step = steps_ + 1;
  float* m = master.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m1 = exp_avg_.data_ptr<float>();
  float* m2 = exp_avg_sq_.data_ptr<float>();
  for (const auto& e : entries) {
    kn::AdamWTensor t;
    t.param = e.param.data_ptr();
    t.master = m + e.offset;
    t.grad = g + e.offset;
    t.exp_avg = m1 + e.offset;
    t.exp_avg_sq = m2 + e.offset;
    t.numel = e.param.numel();
    t.weight_decay = e.decay;
    a.tensors.push_back(t);
  }
  engine::use_kernel_device(master);
  kn::adamw_step(a, engine::kernel_stream(master));
  ++steps_;
  return true;
#else
  (void)master, (void)grad, (void)entries, (void)lr;
  return false;
#endif
}

}  // namespace synthpert::trainer
