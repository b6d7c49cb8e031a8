// Attention over packed variable-length sequences, with autograd: the
// engine's entry to kernels/attention.
//
// A (B, T) batch is repacked so that each sequence (the valid tokens of one
// row, or of one packed segment of a row) is a contiguous run of tokens;
// attention then needs no (T x S) mask at all, and on CUDA the FlashAttention
// kernels of kernels/attention.h run it in O(tokens) memory. Within a
// sequence, query i sees key j iff j <= i (causal), which is the engine's
// dense mask rule (engine/attention_mask.h) for every valid query when there
// is no sliding window and no earlier KV-cache content.
//
// On CPU the same op computes each sequence with plain torch math in float32
// and has the same explicit backward as the kernels (P, dP, dS from the saved
// log-sum-exp). It exists so that the packing, the autograd wiring and the
// backward formulas are tested against the dense path where no GPU is
// (tests/engine/test_packed_attention.cpp); the engine uses it on CUDA only.
//
// Legend: N packed tokens, H query heads, Hkv key/value heads, D head dim.
#pragma once

#include <memory>

#include "engine/torch_compat.h"

namespace synthpert::engine {

struct PackedSequences {
  torch::Tensor token_index;  // (N) int64: flat (b * T + t) index of each packed token
  torch::Tensor cu_seqlens;   // (sequences + 1) int32: run boundaries in the packed order
  int64_t batch = 0, tokens = 0;  // B, T of the batch it came from
  int64_t packed = 0;             // N
  int64_t max_seqlen = 0;
};

// Groups the valid tokens of a (B, T) batch by (row, segment), keeping token
// order inside each group. `segments` may be undefined (one sequence per
// row). Reads both on the host; the result lives on `device`.
std::shared_ptr<const PackedSequences> pack_sequences(const torch::Tensor& valid_BT,
                                                      const torch::Tensor& segments_BT,
                                                      torch::Device device);

// (B, T, heads, D) -> (N, heads, D) and back; unpacked rows of padding are 0.
torch::Tensor pack_tokens(const torch::Tensor& x_BTHD, const PackedSequences& p);
torch::Tensor unpack_tokens(const torch::Tensor& x_NHD, const PackedSequences& p);

// softmax(scale q k^T) v per sequence; q (N, H, D), k and v (N, Hkv, D) with
// H % Hkv == 0 (query head h reads kv head h / (H / Hkv)). Differentiable in
// q, k and v. Returns (N, H, D) in q's dtype.
torch::Tensor packed_attention(const torch::Tensor& q_NHD, const torch::Tensor& k_NHD,
                               const torch::Tensor& v_NHD, const PackedSequences& p, bool causal,
                               double scale);

// Whether the CUDA kernels can run this configuration (device, dtype, head
// dim, build). The CPU path is always available.
bool packed_attention_kernel_supports(torch::Device device, torch::ScalarType dtype, int64_t head_dim);

}  // namespace synthpert::engine
