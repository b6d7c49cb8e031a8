// The per-thread steps of the attention forward that do not depend on how the
// scores were multiplied: masking, the online softmax update, P in the A
// layout, and the epilogue. Shared by the mma.sync kernel
// (attention_fwd_impl.cuh) and the wgmma kernel (attention_fwd_sm90_impl.cuh),
// whose accumulators have the same layout: a thread holds two query rows,
// row_lo = its warp's row g and row_hi = g + 8, and in score tile nt (8 keys)
// the keys 8 nt + 2t and + 1 of each (mma.m16n8k16 C layout, attention_ptx.cuh).
#pragma once

#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_mma.cuh"

namespace synthpert::kernels::attn {

// The query block a forward block owns: its sequence, query head, kv head,
// first query row, its keys, and where its Q rows and the sequence's K and V
// start. Causal blocks further down the sequence see more keys, so the grid's
// last blocks take the first (shortest) query tiles and the final wave is
// short. `valid` is false for a block past its sequence's end (it returns at
// once). Keys are the queries' own tokens unless the problem holds them apart
// (cu_seqlens_k): then query row i sees keys up to i + key_shift.
template <typename T>
struct ForwardBlock {
  int seq_begin, seqlen, h, m0;
  int key_begin, keylen, key_shift;  // first key token, key count, keylen - seqlen (apart) or 0
  bool valid;
  const T *q_base, *k_base, *v_base;

  template <bool kCausal, int kBlockM>
  __device__ __forceinline__ static ForwardBlock locate(const AttentionForwardArgs& args) {
    const AttentionProblem& p = args.problem;
    ForwardBlock f;
    const int m_block = kCausal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
    const int b = blockIdx.y;
    f.h = blockIdx.z;
    f.seq_begin = p.cu_seqlens[b];
    f.seqlen = p.cu_seqlens[b + 1] - f.seq_begin;
    if (p.cu_seqlens_k) {
      f.key_begin = p.cu_seqlens_k[b];
      f.keylen = p.seqused_k ? p.seqused_k[b] : p.cu_seqlens_k[b + 1] - f.key_begin;
      f.key_shift = f.keylen - f.seqlen;
    } else {
      f.key_begin = f.seq_begin;
      f.keylen = f.seqlen;
      f.key_shift = 0;
    }
    f.m0 = m_block * kBlockM;
    f.valid = f.m0 < f.seqlen;
    const int hk = f.h / (p.heads / p.kv_heads);
    f.q_base = static_cast<const T*>(args.q.data) + (f.seq_begin + int64_t(f.m0)) * args.q.token_stride +
               f.h * args.q.head_stride;
    f.k_base = static_cast<const T*>(args.k.data) + f.key_begin * args.k.token_stride + hk * args.k.head_stride;
    f.v_base = static_cast<const T*>(args.v.data) + f.key_begin * args.v.token_stride + hk * args.v.head_stride;
    return f;
  }

  // Key tiles of kBlockN the block visits: causal blocks stop at the
  // diagonal. At least one, so the pipelines always have a tile to drain; a
  // block whose rows see no key at all masks all of it (out 0, lse -inf).
  template <bool kCausal, int kBlockM, int kBlockN>
  __device__ __forceinline__ int key_blocks() const {
    const int n_end = kCausal ? min(keylen, m0 + kBlockM + key_shift) : keylen;
    return max(1, (n_end + kBlockN - 1) / kBlockN);
  }
};

// Whether the key tile [n0, n0 + kBlockN) holds a key that mask_scores would
// hide from some row at or after first_row (a key past the last of keylen,
// or, if causal, past first_row + key_shift). Only the tiles at the end of
// the keys and on the diagonal do; the callers skip the per-score compares
// on all the others.
template <bool kCausal, int kBlockN>
__device__ __forceinline__ bool tile_needs_mask(int n0, int keylen, int first_row, int key_shift) {
  return n0 + kBlockN > keylen || (kCausal && n0 + kBlockN - 1 > first_row + key_shift);
}

// Keys past the last of keylen and, if causal, above the diagonal (key j
// hidden from row i when j > i + key_shift) get -inf.
template <bool kCausal, int kNTiles>
__device__ __forceinline__ void mask_scores(float (&s)[kNTiles][4], int n0, int keylen, int row_lo, int row_hi,
                                            int key_shift, int t) {
  for (int nt = 0; nt < kNTiles; ++nt)
    for (int i = 0; i < 4; ++i) {
      const int key = n0 + nt * 8 + 2 * t + (i & 1);
      const int row = i < 2 ? row_lo : row_hi;
      if (key >= keylen || (kCausal && key > row + key_shift)) s[nt][i] = -INFINITY;
    }
}

// Online softmax over one key tile for the two rows this thread holds,
// without touching O: the running max (raw scores) and this thread's partial
// sums are updated, s becomes exp2(s * scale_log2 - max), and `rescale` gets
// the factor O must be multiplied by to move to the new max (the wgmma
// kernel applies it once the O += P V in flight has retired).
template <int kNTiles>
__device__ __forceinline__ void softmax_update(float (&s)[kNTiles][4], float (&row_max)[2], float (&row_sum)[2],
                                               float scale_log2, float (&rescale)[2]) {
  for (int r = 0; r < 2; ++r) {
    float mx = row_max[r];
    for (int nt = 0; nt < kNTiles; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
    mx = quad_max(mx);
    // A row with every key masked so far keeps max -inf; subtracting 0 then
    // keeps exp2 at exactly 0 instead of producing NaN from inf - inf.
    const float base = mx == -INFINITY ? 0.f : mx * scale_log2;
    rescale[r] = exp2_ftz(row_max[r] * scale_log2 - base);
    row_max[r] = mx;
    float sum = 0.f;
    for (int nt = 0; nt < kNTiles; ++nt)
      for (int c = 0; c < 2; ++c) {
        float& x = s[nt][2 * r + c];
        x = exp2_ftz(x * scale_log2 - base);
        sum += x;
      }
    row_sum[r] = row_sum[r] * rescale[r] + sum;
  }
}

template <int kDTiles>
__device__ __forceinline__ void rescale_output(float (&o_acc)[kDTiles][4], const float (&rescale)[2]) {
  for (int dt = 0; dt < kDTiles; ++dt) {
    o_acc[dt][0] *= rescale[0];
    o_acc[dt][1] *= rescale[0];
    o_acc[dt][2] *= rescale[1];
    o_acc[dt][3] *= rescale[1];
  }
}

// Both steps at once, for a kernel whose O is not in flight.
template <int kNTiles, int kDTiles>
__device__ __forceinline__ void online_softmax_step(float (&s)[kNTiles][4], float (&o_acc)[kDTiles][4],
                                                    float (&row_max)[2], float (&row_sum)[2], float scale_log2) {
  float rescale[2];
  softmax_update(s, row_max, row_sum, scale_log2, rescale);
  rescale_output(o_acc, rescale);
}

// P for keys 16kt..16kt+15 in the mma A layout: the C layout of score tiles
// 2kt and 2kt + 1.
template <typename T, int kNTiles>
__device__ __forceinline__ void p_fragment(uint32_t (&p)[4], const float (&s)[kNTiles][4], int kt) {
  p[0] = Mma<T>::pack(s[2 * kt][0], s[2 * kt][1]);
  p[1] = Mma<T>::pack(s[2 * kt][2], s[2 * kt][3]);
  p[2] = Mma<T>::pack(s[2 * kt + 1][0], s[2 * kt + 1][1]);
  p[3] = Mma<T>::pack(s[2 * kt + 1][2], s[2 * kt + 1][3]);
}

// Normalises O, writes this thread's part of the two rows (those inside the
// sequence) and, from the quad's first lane, their logsumexp.
template <typename T, int kDTiles>
__device__ __forceinline__ void write_forward_rows(const AttentionForwardArgs& args, const float (&o_acc)[kDTiles][4],
                                                   const float (&row_max)[2], const float (&row_sum)[2],
                                                   int seq_begin, int seqlen, int h, int row_lo, int row_hi, int t) {
  const AttentionProblem& p = args.problem;
  T* o_base = static_cast<T*>(args.out.data) + int64_t(seq_begin) * args.out.token_stride + h * args.out.head_stride;
  for (int r = 0; r < 2; ++r) {
    const int row = r == 0 ? row_lo : row_hi;
    const float total = quad_sum(row_sum[r]);
    if (row >= seqlen) continue;
    const float inv = total > 0.f ? 1.f / total : 0.f;
    T* orow = o_base + int64_t(row) * args.out.token_stride + 2 * t;
    for (int dt = 0; dt < kDTiles; ++dt)
      *reinterpret_cast<uint32_t*>(orow + dt * 8) = Mma<T>::pack(o_acc[dt][2 * r] * inv, o_acc[dt][2 * r + 1] * inv);
    if (t == 0)
      args.lse_HN[int64_t(h) * p.total_tokens + seq_begin + row] =
          total > 0.f ? row_max[r] * p.softmax_scale + logf(total) : -INFINITY;
  }
}

}  // namespace synthpert::kernels::attn
