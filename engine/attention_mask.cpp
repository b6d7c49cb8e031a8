#include "engine/attention_mask.h"

#include <limits>

#include "common/error.h"

namespace synthpert::engine {

torch::Tensor build_attention_bias(const MaskSpec& m) {
  SP_CHECK(m.query_slot_BT.dim() == 2 && m.key_valid_BS.dim() == 2, "mask inputs must be 2-D");
  const int64_t S = m.key_valid_BS.size(1);
  auto slots = torch::arange(S, m.key_valid_BS.options().dtype(torch::kInt64)).view({1, 1, S});
  auto allowed = slots <= m.query_slot_BT.unsqueeze(-1);           // (B, T, S)
  allowed = allowed.logical_and(m.key_valid_BS.unsqueeze(1));
  if (m.segment_q_BT.defined())
    allowed = allowed.logical_and(m.segment_q_BT.unsqueeze(-1) == m.segment_k_BS.unsqueeze(1));
  if (m.window > 0) {
    auto dist = m.position_q_BT.unsqueeze(-1) - m.position_k_BS.unsqueeze(1);
    allowed = allowed.logical_and(dist < m.window);
  }
  // A query always sees its own slot. Padding queries would otherwise have no
  // key at all and produce NaN, which would reach real tokens through V in the
  // next layer (0 * NaN = NaN).
  allowed = allowed.logical_or(slots == m.query_slot_BT.unsqueeze(-1));
  auto bias = torch::zeros(allowed.sizes(), m.key_valid_BS.options().dtype(torch::kFloat32));
  bias.masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return bias.unsqueeze(1);
}

torch::Tensor causal_bias(int64_t B, int64_t T, torch::Device device) {
  auto opts = torch::TensorOptions().device(device);
  MaskSpec m;
  m.query_slot_BT = torch::arange(T, opts.dtype(torch::kInt64)).unsqueeze(0).expand({B, T});
  m.key_valid_BS = torch::ones({B, T}, opts.dtype(torch::kBool));
  return build_attention_bias(m);
}

}  // namespace synthpert::engine
