// Fused AdamW over a list of parameter tensors (multi-tensor apply), with
// torch.optim.AdamW's semantics (amsgrad and maximize off):
//   p  = p * (1 - lr * weight_decay)                (decoupled decay, if the tensor decays)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (eps outside the sqrt)
// t is the step number after this update (1 on the first call). The bias
// corrections are computed in fp64 on the host, everything per element in
// fp32.
//
// Precision modes (per call):
//   param fp32, master nullptr        fp32 parameters updated in place
//   param bf16/f16, master fp32       the fp32 master is updated and the
//                                     parameter rewritten as round(master)
// Gradients are fp32 or the parameter's dtype; m and v are always fp32.
//
// Legend: per tensor, n elements, all buffers contiguous [n]:
//   param [n] param_dtype, master [n] fp32, grad [n] grad_dtype,
//   exp_avg [n] fp32, exp_avg_sq [n] fp32.
// One launch covers up to 32 tensors and 320 chunks of 65536 elements;
// longer lists take more launches (as torch's multi_tensor_apply does).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common.cuh"

namespace synthpert::kernels {

struct AdamWTensor {
  void* param = nullptr;
  float* master = nullptr;  // required when param_dtype is bf16/f16, else nullptr
  const void* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  int64_t numel = 0;
  bool weight_decay = true;  // false: biases, norms (torch param groups with weight_decay 0)
};

struct AdamWArgs {
  DType param_dtype = DType::kF32;
  DType grad_dtype = DType::kF32;  // fp32 or param_dtype
  std::vector<AdamWTensor> tensors;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;  // t, counting this update
};

void adamw_step(const AdamWArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
