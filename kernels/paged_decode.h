// Decode attention over a paged KV cache, and the append of one step's K/V.
//
// Legend: B sequences, H query heads, Hkv kv heads (H % Hkv == 0), D head dim
// (64 or 128 for decode), P pages, S page_size (tokens per page), M
// max_pages_per_seq.
//   k_cache, v_cache  [P, S, Hkv, D]  contiguous, dtype bf16 or f16
//   block_table_BM    [B, M] int32    page ids; token t of sequence b lives in
//                                     page block_table[b][t / S], slot t % S
//   seq_lens_B        [B] int32       cached tokens per sequence, including
//                                     the current step's (appended first)
//   q, out            [B, H, D]       one query token per sequence
//   k_new, v_new      [B, Hkv, D]     the step's new K/V
//   positions_B       [B] int32       token index the new K/V go to (< 0: skip)
// Long contexts use split-K: the sequence is cut into num_splits chunks
// handled by different thread blocks, whose partial (max, sum, output) are
// merged by a second kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"

namespace synthpert::kernels {

struct PagedKVCache {
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  DType dtype = DType::kBF16;
  int num_pages = 0;     // P
  int page_size = 16;    // S
  int kv_heads = 0;      // Hkv
  int head_dim = 128;    // D
  const int32_t* block_table = nullptr;  // device [B, max_pages_per_seq]
  int max_pages_per_seq = 0;             // M
};

struct PagedDecodeArgs {
  PagedKVCache cache;
  int batch = 0;               // B
  int heads = 0;               // H
  float softmax_scale = 0.f;
  HeadsView q;                 // [B, H, D]: token_stride is the per-sequence stride
  MutableHeadsView out;        // [B, H, D]
  const int32_t* seq_lens = nullptr;  // device [B]
  int max_seq_len = 0;         // host upper bound of seq_lens (sizes the splits)
  int num_splits = 1;          // 1: single pass; > 1: split-K with a reduce kernel
  void* workspace = nullptr;   // paged_decode_workspace_bytes(), 256-byte aligned; unused if num_splits == 1
};

// Partial max, sum and unnormalised output per (sequence, head, split).
size_t paged_decode_workspace_bytes(int batch, int heads, int head_dim, int num_splits);

// Query heads one decode block serves: the largest of 8, 4, 2 dividing the
// GQA group heads / kv_heads, else 1. They share a kv head, so each K/V row
// is read from memory once for all of them.
int paged_decode_heads_per_block(int heads, int kv_heads);

// A split count that fills the GPU: 1 when the B * H / heads_per_block
// blocks already do, otherwise enough chunks of at least 256 tokens to give
// about two blocks per SM.
int paged_decode_choose_splits(int batch, int heads, int kv_heads, int max_seq_len, int sm_count);

void paged_decode(const PagedDecodeArgs& args, cudaStream_t stream);

struct PagedAppendArgs {
  PagedKVCache cache;
  int batch = 0;
  HeadsView k_new, v_new;                // [B, Hkv, D]
  const int32_t* positions = nullptr;    // device [B]; must be < M * S
};

void paged_append(const PagedAppendArgs& args, cudaStream_t stream);

}  // namespace synthpert::kernels
