// fp64 CPU reference for kernels/fused_linear_ce.cu: logits = h W^T, per-token
// cross-entropy with an ignore index, and the gradients of
// sum_n grad_scale * loss_n. Legend: N tokens, C hidden, V vocab; contiguous.
#pragma once

#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct LinearCrossEntropy {
  std::vector<double> loss_N, lse_N, dhidden_NC, dweight_VC;
};

LinearCrossEntropy linear_cross_entropy_ref(const std::vector<double>& hidden_NC, const std::vector<double>& weight_VC,
                                            const std::vector<int64_t>& targets_N, int64_t hidden_size,
                                            int64_t ignore_index, double grad_scale);

}  // namespace synthpert::reference
