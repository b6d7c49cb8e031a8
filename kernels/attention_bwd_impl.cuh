// Attention backward kernels (FlashAttention-2 style), included by the
// generated instance files kernels/generated/attention_bwd_*.cu only.
//
// Three steps:
//  1. preprocess: Delta_i = dO_i . O_i per (token, head), and dQ_acc = 0.
//  2. main: one thread block per (64-key tile, sequence, kv head). It loops
//     over the query heads of its GQA group and over query tiles, recomputes
//     P = exp(scale * Q K^T - LSE) from the saved logsumexp and accumulates
//       dV += P^T dO,   dS = P * (dO V^T - Delta),   dK += scale * dS^T Q
//     in registers (so no atomics for dK/dV), and adds scale * dS K into the
//     fp32 dQ_acc with atomics (several key tiles touch the same query row).
//     The warps work in the transposed frame: each owns 16 keys and computes
//     S^T = K Q^T, so dV and dK come straight out of mma accumulators.
//  3. convert: dq = dQ_acc in the output dtype and strides.
#pragma once

#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_dispatch.cuh"
#include "kernels/attention_mma.cuh"

namespace synthpert::kernels::attn {

// kWarps warps of 16 keys each: 4 (64 keys per block, two blocks per SM at
// D=128) or 8 (128 keys: each query tile staged and each dQ atomic serves
// twice the keys, one block per SM). AttentionBackwardArgs::key_block picks.
template <int D, int kWarps_>
struct BwdConfig {
  static constexpr int kWarps = kWarps_;
  static constexpr int kBlockN = 16 * kWarps;        // keys per block
  static constexpr int kBlockM = D <= 64 ? 64 : 32;  // queries per iteration; smaller at D=128
                                                     // to keep dK+dV accumulators in registers
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kStages = 2;           // query tiles in flight: one computed, one loading
  static constexpr int kPitch = D + 8;        // see FwdConfig: conflict-free, 16-byte rows
  static constexpr int kPitchS = kBlockN + 8; // dS tile [kBlockM][kPitchS]
  static constexpr size_t kSmemBytes = size_t(2 * kBlockN + 2 * kStages * kBlockM) * kPitch * 2 +
                                       size_t(kBlockM) * kPitchS * 2 + 2 * kStages * kBlockM * sizeof(float);
};

// Stages one query tile's logsumexp and Delta rows ([kRows] floats each,
// starting at element `first` of the [H, N] arrays) with cp.async; rows at
// or past `rows_valid` get LSE = +inf and Delta = 0, so their P is exactly 0.
template <int kRows, int kThreads>
__device__ __forceinline__ void stage_row_stats(float* lse_dst, float* delta_dst, const float* lse_HN,
                                                const float* delta_HN, int64_t first, int rows_valid) {
  for (int i = threadIdx.x; i < kRows; i += kThreads) {
    if (i < rows_valid) {
      cp_async_4(lse_dst + i, lse_HN + first + i);
      cp_async_4(delta_dst + i, delta_HN + first + i);
    } else {
      lse_dst[i] = INFINITY;
      delta_dst[i] = 0.f;
    }
  }
}

// One backward block's share of the problem: the key tile [n0, n0 + kBlockN)
// of one sequence under kv head hk, and the (query head of the GQA group,
// query tile) pairs it walks. Both backward kernels walk the pairs as one
// flat sequence of steps, so the next pair's Q, dO, LSE and Delta load
// (cp.async) while the current one is computed, across head boundaries too.
// Queries before n0 cannot see the key tile under the causal mask, so a
// causal block starts at the query tile that holds n0.
template <typename T, bool kCausal, int kBlockM, int kBlockN>
struct BackwardBlock {
  int seq_begin, seqlen, n0, hk, group;
  int m_first, m_count, steps;

  // Block (key tile, sequence, kv head) = blockIdx (x, y, z). A block past
  // its sequence's end has nothing to do (valid() is false); its other
  // fields are not meaningful.
  __device__ __forceinline__ static BackwardBlock locate(const AttentionProblem& p) {
    BackwardBlock blk;
    const int b = blockIdx.y;
    blk.hk = blockIdx.z;
    blk.seq_begin = p.cu_seqlens[b];
    blk.seqlen = p.cu_seqlens[b + 1] - blk.seq_begin;
    blk.n0 = int(blockIdx.x) * kBlockN;
    blk.group = p.heads / p.kv_heads;
    blk.m_first = kCausal ? blk.n0 / kBlockM : 0;
    blk.m_count = (blk.seqlen + kBlockM - 1) / kBlockM - blk.m_first;  // >= 1 when valid()
    blk.steps = blk.group * blk.m_count;
    return blk;
  }
  __device__ __forceinline__ bool valid() const { return n0 < seqlen; }

  // The query head and the first (sequence-relative) query of step `step`.
  __device__ __forceinline__ int query_head(int step) const { return hk * group + step / m_count; }
  __device__ __forceinline__ int query_start(int step) const { return (m_first + step % m_count) * kBlockM; }

  // Row `token` (sequence-relative) of head `head` in q, k, v or dO.
  __device__ __forceinline__ const T* rows(const HeadsView& x, int head, int token) const {
    return static_cast<const T*>(x.data) + (seq_begin + int64_t(token)) * x.token_stride + head * x.head_stride;
  }
};

// Writes a thread's dK (scaled) and dV accumulator rows, keys key_lo and
// key_lo + 8 of the sequence, in the mma C layout both backward kernels
// share (column 8 dt + 2t and + 1 of tile dt); keys past the end are skipped.
template <typename T, int kDTiles>
__device__ __forceinline__ void write_dkdv_rows(const AttentionBackwardArgs& args, const float (&dk_acc)[kDTiles][4],
                                                const float (&dv_acc)[kDTiles][4], int seq_begin, int seqlen, int hk,
                                                int key_lo, int t) {
  const float scale = args.problem.softmax_scale;
  T* dk_base = static_cast<T*>(args.dk.data) + int64_t(seq_begin) * args.dk.token_stride + hk * args.dk.head_stride;
  T* dv_base = static_cast<T*>(args.dv.data) + int64_t(seq_begin) * args.dv.token_stride + hk * args.dv.head_stride;
  for (int r = 0; r < 2; ++r) {
    const int key = key_lo + 8 * r;
    if (key >= seqlen) continue;
    T* dkr = dk_base + int64_t(key) * args.dk.token_stride + 2 * t;
    T* dvr = dv_base + int64_t(key) * args.dv.token_stride + 2 * t;
    for (int dt = 0; dt < kDTiles; ++dt) {
      *reinterpret_cast<uint32_t*>(dkr + dt * 8) =
          Mma<T>::pack(dk_acc[dt][2 * r] * scale, dk_acc[dt][2 * r + 1] * scale);
      *reinterpret_cast<uint32_t*>(dvr + dt * 8) = Mma<T>::pack(dv_acc[dt][2 * r], dv_acc[dt][2 * r + 1]);
    }
  }
}

template <typename T, int D>
__global__ void attention_bwd_preprocess_kernel(AttentionBackwardArgs args, float* dq_acc, float* delta_HN) {
  const AttentionProblem& p = args.problem;
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;  // token * H + head
  if (row >= p.total_tokens * p.heads) return;
  const int64_t n = row / p.heads;
  const int h = int(row % p.heads);
  const T* o = static_cast<const T*>(args.out.data) + n * args.out.token_stride + h * args.out.head_stride;
  const T* dout = static_cast<const T*>(args.dout.data) + n * args.dout.token_stride + h * args.dout.head_stride;
  float acc = 0.f;
  for (int d = lane; d < D; d += 32) acc += to_float(o[d]) * to_float(dout[d]);
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) delta_HN[int64_t(h) * p.total_tokens + n] = acc;
  for (int d = lane; d < D; d += 32) dq_acc[row * D + d] = 0.f;
}

template <typename T, int D, bool kCausal, int kWarps>
__global__ void __launch_bounds__(BwdConfig<D, kWarps>::kThreads)
    attention_bwd_kernel(AttentionBackwardArgs args, float* dq_acc, const float* delta_HN) {
  using Cfg = BwdConfig<D, kWarps>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kPitch = Cfg::kPitch, kPitchS = Cfg::kPitchS;
  constexpr int kMTiles = kBlockM / 8;  // 8-wide query tiles of S^T per warp
  constexpr int kDTiles = D / 8;
  constexpr int kDSteps = D / 16;

  const AttentionProblem& p = args.problem;
  const auto blk = BackwardBlock<T, kCausal, kBlockM, kBlockN>::locate(p);
  if (!blk.valid()) return;
  const int seqlen = blk.seqlen, n0 = blk.n0;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);  // [kBlockN][kPitch]
  T* sV = sK + kBlockN * kPitch;           // [kBlockN][kPitch]
  T* sQ = sV + kBlockN * kPitch;           // [kStages][kBlockM][kPitch]
  T* sdO = sQ + Cfg::kStages * kBlockM * kPitch;                     // [kStages][kBlockM][kPitch]
  T* sdS = sdO + Cfg::kStages * kBlockM * kPitch;                    // [kBlockM][kPitchS], dS (query-major, unscaled)
  float* sLse = reinterpret_cast<float*>(sdS + kBlockM * kPitchS);  // [kStages][kBlockM], natural log
  float* sDelta = sLse + Cfg::kStages * kBlockM;                     // [kStages][kBlockM]

  load_tile_async<T, kBlockN, D, kPitch, Cfg::kThreads>(sK, blk.rows(args.k, blk.hk, n0), args.k.token_stride,
                                                        seqlen - n0);
  load_tile_async<T, kBlockN, D, kPitch, Cfg::kThreads>(sV, blk.rows(args.v, blk.hk, n0), args.v.token_stride,
                                                        seqlen - n0);
  // Step `step`'s Q, dO, LSE and Delta rows into stage `stage`.
  auto stage_query_tile = [&](int step, int stage) {
    const int hq = blk.query_head(step), m0 = blk.query_start(step);
    load_tile_async<T, kBlockM, D, kPitch, Cfg::kThreads>(sQ + stage * kBlockM * kPitch, blk.rows(args.q, hq, m0),
                                                          args.q.token_stride, seqlen - m0);
    load_tile_async<T, kBlockM, D, kPitch, Cfg::kThreads>(sdO + stage * kBlockM * kPitch, blk.rows(args.dout, hq, m0),
                                                          args.dout.token_stride, seqlen - m0);
    stage_row_stats<kBlockM, Cfg::kThreads>(sLse + stage * kBlockM, sDelta + stage * kBlockM, args.lse_HN, delta_HN,
                                            int64_t(hq) * p.total_tokens + blk.seq_begin + m0, seqlen - m0);
  };
  stage_query_tile(0, 0);
  cp_async_commit();  // group 0: K, V and the first query tile

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int key_lo = n0 + warp * 16 + g;  // sequence-relative keys of this thread's accumulator rows
  const int key_hi = key_lo + 8;
  const float scale_log2 = p.softmax_scale * kLog2e;

  float dv_acc[kDTiles][4] = {};
  float dk_acc[kDTiles][4] = {};

  for (int step = 0; step < blk.steps; ++step) {
    const int stage = step % Cfg::kStages;
    // The other stage was last read before the previous step's dS barrier,
    // which every thread has passed, so it can be refilled now.
    if (step + 1 < blk.steps) stage_query_tile(step + 1, stage ^ 1);
    cp_async_commit();  // possibly empty: keeps one group per step
    cp_async_wait<1>();
    // Orders this step's tiles for all threads, and the previous step's dQ
    // reads of sdS before this step's writes.
    __syncthreads();

    const int hq = blk.query_head(step), m0 = blk.query_start(step);
    const T* cQ = sQ + stage * kBlockM * kPitch;
    const T* cdO = sdO + stage * kBlockM * kPitch;
    const float* cLse = sLse + stage * kBlockM;
    const float* cDelta = sDelta + stage * kBlockM;

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x kBlockM queries.
    float s[kMTiles][4] = {};
    float dp[kMTiles][4] = {};
    for (int ks = 0; ks < kDSteps; ++ks) {
      const T* kr = sK + (warp * 16 + g) * kPitch + ks * 16 + 2 * t;
      const T* vr = sV + (warp * 16 + g) * kPitch + ks * 16 + 2 * t;
      const uint32_t kfrag[4] = {load_pair(kr), load_pair(kr + 8 * kPitch), load_pair(kr + 8),
                                 load_pair(kr + 8 * kPitch + 8)};
      const uint32_t vfrag[4] = {load_pair(vr), load_pair(vr + 8 * kPitch), load_pair(vr + 8),
                                 load_pair(vr + 8 * kPitch + 8)};
      for (int mt = 0; mt < kMTiles; ++mt) {
        const T* qr = cQ + (mt * 8 + g) * kPitch + ks * 16 + 2 * t;
        const T* dor = cdO + (mt * 8 + g) * kPitch + ks * 16 + 2 * t;
        const uint32_t qfrag[2] = {load_pair(qr), load_pair(qr + 8)};
        const uint32_t dofrag[2] = {load_pair(dor), load_pair(dor + 8)};
        Mma<T>::run(s[mt], kfrag, qfrag);
        Mma<T>::run(dp[mt], vfrag, dofrag);
      }
    }

    // P^T and dS^T = P^T * (dP^T - Delta); element i of tile mt sits at
    // key (i < 2 ? key_lo : key_hi), query m0 + mt*8 + 2t + (i & 1).
    for (int mt = 0; mt < kMTiles; ++mt)
      for (int i = 0; i < 4; ++i) {
        const int ql = mt * 8 + 2 * t + (i & 1);
        const int query = m0 + ql;
        const int key = i < 2 ? key_lo : key_hi;
        const bool visible = key < seqlen && query < seqlen && (!kCausal || key <= query);
        const float pv = visible ? exp2f(s[mt][i] * scale_log2 - cLse[ql] * kLog2e) : 0.f;
        s[mt][i] = pv;
        dp[mt][i] = pv * (dp[mt][i] - cDelta[ql]);
      }

    // dV += P^T dO and dK += dS^T Q: A from registers, B = dO / Q with the
    // query axis as k, read transposed from their query-major tiles.
    for (int kt = 0; kt < kBlockM / 16; ++kt) {
      const uint32_t pfrag[4] = {Mma<T>::pack(s[2 * kt][0], s[2 * kt][1]), Mma<T>::pack(s[2 * kt][2], s[2 * kt][3]),
                                 Mma<T>::pack(s[2 * kt + 1][0], s[2 * kt + 1][1]),
                                 Mma<T>::pack(s[2 * kt + 1][2], s[2 * kt + 1][3])};
      const uint32_t dsfrag[4] = {
          Mma<T>::pack(dp[2 * kt][0], dp[2 * kt][1]), Mma<T>::pack(dp[2 * kt][2], dp[2 * kt][3]),
          Mma<T>::pack(dp[2 * kt + 1][0], dp[2 * kt + 1][1]), Mma<T>::pack(dp[2 * kt + 1][2], dp[2 * kt + 1][3])};
      const int row_off = (kt * 16 + (lane & 15)) * kPitch + (lane >> 4) * 8;
      for (int dt = 0; dt < kDTiles; dt += 2) {
        uint32_t bfrag[4];
        ldmatrix_x4_trans(bfrag, cdO + row_off + dt * 8);
        Mma<T>::run(dv_acc[dt], pfrag, bfrag);
        Mma<T>::run(dv_acc[dt + 1], pfrag, bfrag + 2);
        ldmatrix_x4_trans(bfrag, cQ + row_off + dt * 8);
        Mma<T>::run(dk_acc[dt], dsfrag, bfrag);
        Mma<T>::run(dk_acc[dt + 1], dsfrag, bfrag + 2);
      }
    }

    // dS to shared memory, query-major, for dQ = dS K.
    for (int mt = 0; mt < kMTiles; ++mt)
      for (int i = 0; i < 4; ++i) {
        const int ql = mt * 8 + 2 * t + (i & 1);
        const int kl = warp * 16 + g + (i < 2 ? 0 : 8);
        sdS[ql * kPitchS + kl] = from_float<T>(dp[mt][i]);
      }
    __syncthreads();

    // dQ tile [kBlockM, D] = dS [kBlockM, kBlockN keys] K [kBlockN keys, D].
    // Warps split it into 16-row groups and, when there are fewer row groups
    // than warps, also split the D axis.
    constexpr int kRowGroups = kBlockM / 16;
    constexpr int kColSplit = Cfg::kWarps / kRowGroups;
    constexpr int kDTilesPerWarp = kDTiles / kColSplit;
    static_assert(kColSplit * kRowGroups == Cfg::kWarps && kDTilesPerWarp % 2 == 0, "dQ warp split");
    const int rg = warp % kRowGroups;
    const int dt0 = (warp / kRowGroups) * kDTilesPerWarp;
    float dq[kDTilesPerWarp][4] = {};
    for (int kt = 0; kt < kBlockN / 16; ++kt) {
      const T* ar = sdS + (rg * 16 + g) * kPitchS + kt * 16 + 2 * t;
      const uint32_t afrag[4] = {load_pair(ar), load_pair(ar + 8 * kPitchS), load_pair(ar + 8),
                                 load_pair(ar + 8 * kPitchS + 8)};
      const T* kr = sK + (kt * 16 + (lane & 15)) * kPitch + (lane >> 4) * 8;
      for (int j = 0; j < kDTilesPerWarp; j += 2) {
        uint32_t bfrag[4];
        ldmatrix_x4_trans(bfrag, kr + (dt0 + j) * 8);
        Mma<T>::run(dq[j], afrag, bfrag);
        Mma<T>::run(dq[j + 1], afrag, bfrag + 2);
      }
    }
    for (int r = 0; r < 2; ++r) {
      const int query = m0 + rg * 16 + g + 8 * r;
      if (query >= seqlen) continue;
      float* dst = dq_acc + ((blk.seq_begin + int64_t(query)) * p.heads + hq) * D + 2 * t;
      for (int j = 0; j < kDTilesPerWarp; ++j)
        atomic_add_pair(dst + (dt0 + j) * 8, dq[j][2 * r] * p.softmax_scale, dq[j][2 * r + 1] * p.softmax_scale);
    }
    // No barrier here: the next step's first barrier orders these sdS reads
    // before its writes, and its cp.async only refills this step's stage
    // after that step has passed this step's dS barrier.
  }

  // dK (scaled) and dV for this block's keys; the group's heads are summed.
  write_dkdv_rows<T>(args, dk_acc, dv_acc, blk.seq_begin, seqlen, blk.hk, key_lo, t);
}

template <typename T, int D>
__global__ void attention_bwd_convert_dq_kernel(AttentionBackwardArgs args, const float* dq_acc) {
  const AttentionProblem& p = args.problem;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // over N * H * D / 2 pairs
  if (idx >= p.total_tokens * p.heads * (D / 2)) return;
  const int64_t row = idx / (D / 2);
  const int d = int(idx % (D / 2)) * 2;
  const int64_t n = row / p.heads;
  const int h = int(row % p.heads);
  T* dst = static_cast<T*>(args.dq.data) + n * args.dq.token_stride + h * args.dq.head_stride + d;
  *reinterpret_cast<uint32_t*>(dst) = Mma<T>::pack(dq_acc[row * D + d], dq_acc[row * D + d + 1]);
}

template <typename T, int D, bool kCausal, int kWarps>
void launch_attention_bwd_main(const AttentionBackwardArgs& args, float* dq_acc, const float* delta_HN,
                               cudaStream_t stream) {
  using Cfg = BwdConfig<D, kWarps>;
  const AttentionProblem& p = args.problem;
  auto kernel = attention_bwd_kernel<T, D, kCausal, kWarps>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
             "attention_backward", "setting dynamic shared memory");
  const dim3 grid(ceil_div(p.max_seqlen, Cfg::kBlockN), p.batch, p.kv_heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args, dq_acc, delta_HN);
  SPK_CHECK_LAUNCH("attention_backward");
}

// Steps 1 and 3 of the backward around its main kernel, which
// `launch_main(dq_acc, delta_HN)` launches (the mma.sync one below or the
// wgmma one of attention_bwd_sm90_impl.cuh).
template <typename T, int D, typename LaunchMain>
void run_attention_bwd_steps(const AttentionBackwardArgs& args, cudaStream_t stream, LaunchMain launch_main) {
  const AttentionProblem& p = args.problem;
  float* dq_acc = static_cast<float*>(args.workspace);
  float* delta_HN = reinterpret_cast<float*>(static_cast<char*>(args.workspace) +
                                             dq_acc_bytes(p.total_tokens, p.heads, D));
  const int64_t rows = p.total_tokens * p.heads;
  if (rows > 0) {
    constexpr int kRowsPerBlock = 8;  // one warp per (token, head)
    attention_bwd_preprocess_kernel<T, D>
        <<<ceil_div(rows, kRowsPerBlock), kRowsPerBlock * 32, 0, stream>>>(args, dq_acc, delta_HN);
    SPK_CHECK_LAUNCH("attention_backward (preprocess)");
  }

  launch_main(dq_acc, static_cast<const float*>(delta_HN));

  if (rows > 0) {
    const int64_t pairs = rows * (D / 2);
    attention_bwd_convert_dq_kernel<T, D><<<ceil_div(pairs, 256), 256, 0, stream>>>(args, dq_acc);
    SPK_CHECK_LAUNCH("attention_backward (convert dq)");
  }
}

// args.key_block is 64 or 128 here (the launcher resolved kAuto's 0).
template <typename T, int D, bool kCausal>
void run_attention_bwd(const AttentionBackwardArgs& args, cudaStream_t stream) {
  run_attention_bwd_steps<T, D>(args, stream, [&](float* dq_acc, const float* delta_HN) {
    if (args.key_block == 128)
      launch_attention_bwd_main<T, D, kCausal, 8>(args, dq_acc, delta_HN, stream);
    else
      launch_attention_bwd_main<T, D, kCausal, 4>(args, dq_acc, delta_HN, stream);
  });
}

}  // namespace synthpert::kernels::attn
