// Additive attention biases (0 where a query may attend, -inf elsewhere).
//
// One rule covers generation with left padding, KV-cache decode, training
// batches with right padding and packed sequences:
//   query t of row b may attend key slot s  iff
//     key_valid[b, s]  and  s <= query_slot[b, t]  and  segment[b, s] == segment_q[b, t]
//     and (window == 0 or position_q[b, t] - position_k[b, s] < window)
//   or s == query_slot[b, t] (every query sees itself, so no row is empty).
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::engine {

struct MaskSpec {
  torch::Tensor query_slot_BT;  // int64: cache slot each query occupies
  torch::Tensor key_valid_BS;   // bool: slot holds a real token
  torch::Tensor segment_q_BT;   // int64, optional (packing): segment id of each query
  torch::Tensor segment_k_BS;   // int64, optional: segment id of each key slot
  torch::Tensor position_q_BT;  // int64, optional (sliding window)
  torch::Tensor position_k_BS;  // int64, optional (sliding window)
  int64_t window = 0;
};

// Returns (B, 1, T, S) float32 bias.
torch::Tensor build_attention_bias(const MaskSpec& m);

// Plain causal bias for a (B, T) batch with no padding, no cache.
torch::Tensor causal_bias(int64_t B, int64_t T, torch::Device device = torch::kCPU);

}  // namespace synthpert::engine
