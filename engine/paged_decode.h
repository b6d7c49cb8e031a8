// Decode attention over the KV cache's pages: the engine's entry to
// kernels/paged_decode.
//
// One query token per row attends to the first seq_lens[b] tokens of row b,
// which KVCache keeps compact (no padding slots), so no key mask is needed.
// The cache (B, C, Hkv, D) is read in place as pages of `page_size` tokens:
// row b's page j is page b * (C / page_size) + j of block_table.
//
// On CUDA in bf16/f16 at head dim 64 or 128 the paged kernel runs it, with
// split-K over long rows when B * H blocks would not fill the GPU. Elsewhere
// the same op is torch math in float32, so the engine's decode path through
// it is tested against the dense masked path on any machine
// (tests/engine/test_kv_cache.cpp); the engine takes it on CUDA only (or
// when SYNTHPERT_ATTENTION=packed).
//
// Legend: B rows, H query heads, Hkv key/value heads (H % Hkv == 0), D head
// dim, C cache capacity per row.
#pragma once

#include "engine/torch_compat.h"

namespace synthpert::engine {

struct PagedDecodeInputs {
  torch::Tensor block_table;  // (B, C / page_size) int32 on the cache's device
  int64_t page_size = 16;
  torch::Tensor seq_lens;     // (B) int32 on the cache's device: tokens to attend to per row
  int64_t max_seq_len = 0;    // max of seq_lens (host)
};

// softmax(scale q k^T) v over each row's cached tokens; q (B, H, D) with unit
// stride in D; k_cache and v_cache (B, C, Hkv, D) contiguous. Returns
// (B, H, D) in q's dtype; a row with no cached token gives zeros.
torch::Tensor paged_decode_attention(const torch::Tensor& q_BHD, const torch::Tensor& k_cache,
                                     const torch::Tensor& v_cache, const PagedDecodeInputs& in, double scale);

// Whether the paged kernel runs this configuration (device, dtype, head dim,
// build).
bool paged_decode_kernel_supports(torch::Device device, torch::ScalarType dtype, int64_t head_dim);

}  // namespace synthpert::engine
