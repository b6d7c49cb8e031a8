// Attention of a batch's new tokens over a KV cache that holds them and the
// tokens before them (prefill continued after a stored prefix, chunked
// prefill, scoring continuations): the engine's entry to kernels/attention's
// keys-apart forward. Inference only; no autograd.
//
// Row b's new (valid) tokens are its last queries_b keys: query i of the row
// sees its cache slots [0, keys_b - queries_b + i], the engine's dense mask
// rule (engine/attention_mask.h) for a cache without sliding windows. On
// CUDA in bf16/f16 at head dim 64 or 128 the kernels read the keys in place
// from the cache, in either layout, so no (T x S) score matrix or key copy
// exists; elsewhere the same is computed with torch math in float32, row by
// row (tests/engine/test_kv_cache.cpp checks it against the dense path).
//
// Legend: B rows, S slots per row, N packed new tokens, H query heads, Hkv
// key/value heads, D head dim.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/torch_compat.h"

namespace synthpert::engine {

struct CachedSequences {
  std::vector<int32_t> cu_queries;  // (B + 1): row b's queries are packed tokens [cu[b], cu[b + 1])
  std::vector<int32_t> keys;        // (B): row b's filled slots, its new tokens included
  int64_t max_queries = 0;
  // The same two on the kernels' device (int32), for their launch.
  torch::Tensor cu_queries_device, keys_device;
};

// From each row's new-token count and filled slots after them; the device
// copies go to `device`. Throws when a row has more new tokens than slots.
CachedSequences cached_sequences(const std::vector<int64_t>& queries, const std::vector<int64_t>& keys,
                                 torch::Device device);

// softmax(scale q k^T) v for the packed new tokens q (N, H, D) over the
// cache's (B, S, Hkv, D) keys and values (KVCache::by_token views, either
// layout). Returns (N, H, D) in q's dtype.
torch::Tensor cached_attention(const torch::Tensor& q_NHD, const torch::Tensor& k_BSKD, const torch::Tensor& v_BSKD,
                               const CachedSequences& rows, double scale);

}  // namespace synthpert::engine
