// kernels/adamw.h's launcher emulated on host memory with the fp64
// reference of tests/reference/kernels/adamw_ref (see host_attention.cpp for
// why). It holds the launcher's contract: a bf16/f16 parameter comes with an
// fp32 master that is the value updated, and is rewritten as the rounded
// master; an fp32 parameter is updated in place.
#include <stdexcept>
#include <string>

#include "kernels/adamw.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/adamw_ref.h"

namespace synthpert::kernels {

void adamw_step(const AdamWArgs& a, cudaStream_t) {
  if (a.step < 1) throw std::invalid_argument("host adamw: step must be >= 1");
  const bool master = a.param_dtype != DType::kF32;
  reference::AdamWHyper h;
  h.lr = a.lr, h.beta1 = a.beta1, h.beta2 = a.beta2, h.eps = a.eps, h.weight_decay = a.weight_decay;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const AdamWTensor& t = a.tensors[i];
    if (master != (t.master != nullptr))
      throw std::invalid_argument("host adamw: tensors[" + std::to_string(i) + "] master copy does not fit its dtype");
    const auto n = static_cast<size_t>(t.numel);
    std::vector<double> p(n), g(n), m(n), v(n);
    for (size_t k = 0; k < n; ++k) {
      p[k] = master ? t.master[k] : host_emulation::load(t.param, int64_t(k), DType::kF32);
      g[k] = host_emulation::load(t.grad, int64_t(k), a.grad_dtype);
      m[k] = t.exp_avg[k];
      v[k] = t.exp_avg_sq[k];
    }
    reference::adamw_step_ref(p, g, m, v, a.step, h, t.weight_decay);
    for (size_t k = 0; k < n; ++k) {
      const float updated = static_cast<float>(p[k]);
      if (master) t.master[k] = updated;
      host_emulation::store(t.param, int64_t(k), a.param_dtype, updated);
      t.exp_avg[k] = static_cast<float>(m[k]);
      t.exp_avg_sq[k] = static_cast<float>(v[k]);
    }
  }
}

}  // namespace synthpert::kernels
