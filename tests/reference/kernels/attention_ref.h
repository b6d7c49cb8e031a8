// Plain CPU references for the attention kernels (kernels/attention*.cu,
// kernels/paged_decode*.cu): straightforward loops in double precision, no
// tiling, no online softmax, so they are easy to read and to trust.
//
// Legend: N total packed tokens, B sequences, H query heads, Hkv key/value
// heads (H % Hkv == 0, query head h reads kv head h / (H / Hkv)), D head dim.
// Every tensor here is contiguous:
//   q_NHD, out_NHD, dq_NHD         [N, H, D]
//   k_NHD, v_NHD, dk_NHD, dv_NHD   [N, Hkv, D]
//   lse_HN                         [H, N]   log(sum_j exp(scale * q.k_j))
//   cu_seqlens                     [B + 1]  sequence b owns tokens
//                                            [cu_seqlens[b], cu_seqlens[b+1])
// Causal means key j is visible to query i of the same sequence iff j <= i
// (positions relative to the sequence start). Tokens never attend across
// sequences.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace synthpert::reference {

struct AttentionShape {
  int heads = 1;     // H
  int kv_heads = 1;  // Hkv
  int head_dim = 1;  // D
  bool causal = false;
  double scale = 1.0;
  std::vector<int32_t> cu_seqlens;  // [B + 1]

  int64_t tokens() const { return cu_seqlens.empty() ? 0 : cu_seqlens.back(); }
};

struct AttentionForward {
  std::vector<double> out_NHD;
  std::vector<double> lse_HN;
};

struct AttentionGrads {
  std::vector<double> dq_NHD, dk_NHD, dv_NHD;
};

// Checks the shape (heads divisible, cu_seqlens non-decreasing from 0, buffer
// sizes) and throws std::invalid_argument naming the broken rule.
void check_attention_shape(const AttentionShape& s, size_t q_size, size_t kv_size);

AttentionForward attention_forward_ref(const AttentionShape& s, const std::vector<double>& q_NHD,
                                       const std::vector<double>& k_NHD,
                                       const std::vector<double>& v_NHD);

// Gradients of sum(out * dout) with respect to q, k, v, computed directly from
// the definition (softmax Jacobian), independent of the saved LSE.
AttentionGrads attention_backward_ref(const AttentionShape& s, const std::vector<double>& q_NHD,
                                      const std::vector<double>& k_NHD,
                                      const std::vector<double>& v_NHD,
                                      const std::vector<double>& dout_NHD);

// Paged KV cache, as kernels/paged_decode.h lays it out:
//   k_cache_PSKD, v_cache_PSKD  [num_pages, page_size, Hkv, D]
//   block_table_BM              [B, max_pages_per_seq]  page ids, int32
//   seq_lens_B                  [B]  tokens in the cache for each sequence
// Token t of sequence b lives in page block_table[b][t / page_size], slot
// t % page_size.
struct PagedCacheShape {
  int batch = 0;
  int heads = 1;
  int kv_heads = 1;
  int head_dim = 1;
  int page_size = 16;
  int num_pages = 0;
  int max_pages_per_seq = 0;
  double scale = 1.0;
};

// One query token per sequence (q_BHD [B, H, D]) attending to all seq_lens[b]
// cached tokens; out_BHD [B, H, D]. A sequence of length 0 yields zeros.
std::vector<double> paged_decode_ref(const PagedCacheShape& s, const std::vector<double>& q_BHD,
                                     const std::vector<double>& k_cache_PSKD,
                                     const std::vector<double>& v_cache_PSKD,
                                     const std::vector<int32_t>& block_table_BM,
                                     const std::vector<int32_t>& seq_lens_B);

// Writes one new token per sequence (k_new_BKD, v_new_BKD [B, Hkv, D]) into the
// cache at token index positions_B[b]; negative positions are skipped.
void paged_append_ref(const PagedCacheShape& s, const std::vector<double>& k_new_BKD,
                      const std::vector<double>& v_new_BKD, const std::vector<int32_t>& block_table_BM,
                      const std::vector<int32_t>& positions_B, std::vector<double>& k_cache_PSKD,
                      std::vector<double>& v_cache_PSKD);

}  // namespace synthpert::reference
