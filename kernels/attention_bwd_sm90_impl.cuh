// Attention backward on Hopper tensor cores (wgmma), included by the generated
// instance files kernels/generated/attention_bwd_sm90_*.cu only.
//
// The algorithm is that of kernels/attention_bwd_impl.cuh (one block per key
// tile, sequence and kv head; P recomputed from the saved logsumexp; dK and
// dV accumulated in registers across the query tiles and query heads of the
// GQA group; dQ added to an fp32 accumulator with atomics; the same
// preprocess and convert kernels around it). What changes is who multiplies:
//   * a block is two warpgroups of 64 keys each (128 keys) and walks 64-query
//     tiles. Every product is one wgmma m64nNk16 per 16 of its k axis, N = 64
//     but for dV and dK, whose N is all of D (m64n128k16 at D = 128):
//       S^T  = K Q^T    A: the warpgroup's K rows, B: Q     (both K-major)
//       dP^T = V dO^T   A: the warpgroup's V rows, B: dO    (both K-major)
//       dV  += P^T dO   A: P^T from registers, B: dO (MN-major)
//       dK  += dS^T Q   A: dS^T from registers, B: Q (MN-major)
//       dQ   = dS K     A: dS from shared memory (K-major), B: K (MN-major)
//     so the B tiles are read by the tensor cores once per warpgroup, where
//     the mma.sync kernel reads them through registers once per warp;
//   * S^T and dP^T are issued back to back, and P is computed while the
//     tensor cores still work on dP^T; dV and dK run while dS is written to
//     shared memory for dQ;
//   * dQ's 64 x D tile is split between the warpgroups: at D = 128 each
//     takes one 64-column panel over all 128 keys, at D = 64 each its own 64
//     keys (two partial sums, both added with atomics).
// Loads stay cp.async (no TMA, no producer warp); tiles use the 128B-swizzled
// layout of kernels/attention_wgmma.cuh, whose fragment mappings make the
// S^T accumulators the A operand of dV += P^T dO as in the forward's P V.
//
// Status: compiled for sm_90a on every build and run on CI by the host
// emulation (tests/simt); not yet measured on a GPU, so kAuto does not take
// it (attention_backward_path()).
#pragma once

#include "kernels/attention.h"
#include "kernels/attention_bwd_impl.cuh"
#include "kernels/attention_fwd_softmax.cuh"  // p_fragment: accumulator tiles to A fragments
#include "kernels/attention_wgmma.cuh"

namespace synthpert::kernels::attn {

template <int D>
struct BwdSm90Config {
  static constexpr int kWarpGroups = 2;
  static constexpr int kBlockN = 64 * kWarpGroups;  // keys per block, 64 per warpgroup
  static constexpr int kBlockM = 64;                // queries per step
  static constexpr int kThreads = 128 * kWarpGroups;
  static constexpr int kPanels = D / 64;  // 64-column panels of a swizzled [rows][D] tile
  static constexpr int kStages = 2;       // query tiles in flight: one computed, one loading
  static constexpr int kKVBytes = kBlockN * D * 2;     // K or V
  static constexpr int kQBytes = kBlockM * D * 2;      // Q or dO, per stage
  static constexpr int kDSBytes = kBlockM * kBlockN * 2;  // dS [queries][keys], swizzled
  static constexpr int kRowStatBytes = kStages * kBlockM * 4;  // LSE or Delta, per stage
  // + one swizzle atom of slack to align the tiles to 1024 bytes.
  static constexpr size_t kSmemBytes = 2 * size_t(kKVBytes) + 2 * kStages * size_t(kQBytes) + kDSBytes +
                                       2 * kRowStatBytes + kSwizzleAtomBytes;
  // dQ: panel and key range of warpgroup w (see the file comment).
  static constexpr int kDqKeySteps = kBlockN / 16 * kPanels / kWarpGroups;
};

template <typename T, int D, bool kCausal>
__global__ void __launch_bounds__(BwdSm90Config<D>::kThreads, 1)
    attention_bwd_sm90_kernel(AttentionBackwardArgs args, float* dq_acc, const float* delta_HN) {
#if SPK_HAVE_WGMMA
  using Cfg = BwdSm90Config<D>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN;
  constexpr int kQTiles = kBlockM / 8;      // 8-query column tiles of S^T and dP^T (32 registers)
  constexpr int kDTiles = D / 8;            // 8-wide column tiles of dK and dV (32 registers per panel)
  constexpr int kDSteps = D / 16;           // k16 steps of K Q^T and V dO^T
  constexpr int kQuerySteps = kBlockM / 16;  // k16 steps of P^T dO and dS^T Q
  constexpr uint32_t kSbo = kSwizzleAtomBytes;  // next 8 rows (K-major) or 8 k (MN-major)
  constexpr uint32_t kKMajorLbo = 16;           // unused by 128B swizzle; encodes as 1
  constexpr uint32_t kKVPanelBytes = uint32_t(kBlockN) * kSwizzleLineBytes;
  constexpr uint32_t kQPanelBytes = uint32_t(kBlockM) * kSwizzleLineBytes;

  const AttentionProblem& p = args.problem;
  const auto blk = BackwardBlock<T, kCausal, kBlockM, kBlockN>::locate(p);
  if (!blk.valid()) return;
  const int seqlen = blk.seqlen, n0 = blk.n0;

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((kSwizzleAtomBytes - smem_addr(smem_raw) % kSwizzleAtomBytes) % kSwizzleAtomBytes);
  unsigned char* sK = smem;                              // [kBlockN][D] swizzled
  unsigned char* sV = sK + Cfg::kKVBytes;                // [kBlockN][D] swizzled
  unsigned char* sQ = sV + Cfg::kKVBytes;                // kStages x [kBlockM][D] swizzled
  unsigned char* sdO = sQ + Cfg::kStages * Cfg::kQBytes;  // kStages x [kBlockM][D] swizzled
  unsigned char* sdS = sdO + Cfg::kStages * Cfg::kQBytes;  // [kBlockM][kBlockN] swizzled, unscaled dS
  float* sLse = reinterpret_cast<float*>(sdS + Cfg::kDSBytes);  // [kStages][kBlockM], natural log
  float* sDelta = sLse + Cfg::kStages * kBlockM;                // [kStages][kBlockM]

  load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(sK, blk.rows(args.k, blk.hk, n0), args.k.token_stride,
                                                         seqlen - n0);
  load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(sV, blk.rows(args.v, blk.hk, n0), args.v.token_stride,
                                                         seqlen - n0);
  // Step `step`'s Q, dO, LSE and Delta rows into stage `stage` (the steps as
  // in the mma.sync kernel: BackwardBlock).
  auto stage_query_tile = [&](int step, int stage) {
    const int hq = blk.query_head(step), m0 = blk.query_start(step);
    load_tile_swizzled_async<T, kBlockM, D, Cfg::kThreads>(sQ + stage * Cfg::kQBytes, blk.rows(args.q, hq, m0),
                                                           args.q.token_stride, seqlen - m0);
    load_tile_swizzled_async<T, kBlockM, D, Cfg::kThreads>(sdO + stage * Cfg::kQBytes, blk.rows(args.dout, hq, m0),
                                                           args.dout.token_stride, seqlen - m0);
    stage_row_stats<kBlockM, Cfg::kThreads>(sLse + stage * kBlockM, sDelta + stage * kBlockM, args.lse_HN, delta_HN,
                                            int64_t(hq) * p.total_tokens + blk.seq_begin + m0, seqlen - m0);
  };
  stage_query_tile(0, 0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warpgroup = warp / 4, warp_in_group = warp % 4;
  const int g = lane / 4, t = lane % 4;
  // This thread's accumulator rows of S^T, dP^T, dK and dV: keys
  // key_local and key_local + 8 of the block.
  const int key_local = warpgroup * 64 + warp_in_group * 16 + g;
  const int key_lo = n0 + key_local, key_hi = key_lo + 8;
  const unsigned char* sK_rows = sK + warpgroup * 64 * kSwizzleLineBytes;  // this warpgroup's 64 keys
  const unsigned char* sV_rows = sV + warpgroup * 64 * kSwizzleLineBytes;
  // dQ: this warpgroup's 64-column panel of D and its k16 steps over the keys.
  const int dq_panel = warpgroup % Cfg::kPanels;
  const int dq_key_step0 = (warpgroup / Cfg::kPanels) * Cfg::kDqKeySteps;
  const float scale_log2 = p.softmax_scale * kLog2e;

  float dv_acc[kDTiles][4] = {};
  float dk_acc[kDTiles][4] = {};
  uint32_t p_frag[kQuerySteps][4];   // P^T in the A layout (operand of dV)
  uint32_t ds_frag[kQuerySteps][4];  // dS^T in the A layout (operand of dK)
  auto pin_dkdv_operands = [&] {
    pin_registers(dv_acc);
    pin_registers(dk_acc);
    for (int kt = 0; kt < kQuerySteps; ++kt) {
      pin_registers(p_frag[kt]);
      pin_registers(ds_frag[kt]);
    }
  };

  for (int step = 0; step < blk.steps; ++step) {
    const int stage = step % Cfg::kStages;
    // This step's tiles have landed and are visible to the tensor cores, and
    // every thread has waited for all of the previous step's wgmma, so the
    // other stage and sdS are free.
    cp_async_wait<0>();
    fence_proxy_async_shared();
    __syncthreads();
    if (step + 1 < blk.steps) stage_query_tile(step + 1, stage ^ 1);
    cp_async_commit();

    const int hq = blk.query_head(step), m0 = blk.query_start(step);
    const unsigned char* cQ = sQ + stage * Cfg::kQBytes;
    const unsigned char* cdO = sdO + stage * Cfg::kQBytes;
    const float* cLse = sLse + stage * kBlockM;
    const float* cDelta = sDelta + stage * kBlockM;

    // S^T = K Q^T and dP^T = V dO^T (64 keys x 64 queries each), S^T first.
    float s[kQTiles][4] = {};
    float dp[kQTiles][4] = {};
    pin_registers(s);
    pin_registers(dp);
    wgmma_fence();
    for (int ks = 0; ks < kDSteps; ++ks) {
      const uint32_t kv_off = (ks / 4) * kKVPanelBytes + (ks % 4) * 32;
      const uint32_t q_off = (ks / 4) * kQPanelBytes + (ks % 4) * 32;
      Wgmma<T>::ss(&s[0][0], wgmma_desc_sw128(sK_rows + kv_off, kKMajorLbo, kSbo),
                   wgmma_desc_sw128(cQ + q_off, kKMajorLbo, kSbo));
    }
    wgmma_commit();
    for (int ks = 0; ks < kDSteps; ++ks) {
      const uint32_t kv_off = (ks / 4) * kKVPanelBytes + (ks % 4) * 32;
      const uint32_t q_off = (ks / 4) * kQPanelBytes + (ks % 4) * 32;
      Wgmma<T>::ss(&dp[0][0], wgmma_desc_sw128(sV_rows + kv_off, kKMajorLbo, kSbo),
                   wgmma_desc_sw128(cdO + q_off, kKMajorLbo, kSbo));
    }
    wgmma_commit();

    // P^T = exp(scale S^T - LSE) while dP^T is still being multiplied.
    // Element r of tile qt sits at key (r < 2 ? key_lo : key_hi), query
    // m0 + 8 qt + 2t + (r & 1).
    wgmma_wait<1>();
    pin_registers(s);
    for (int qt = 0; qt < kQTiles; ++qt)
      for (int r = 0; r < 4; ++r) {
        const int ql = qt * 8 + 2 * t + (r & 1);
        const int query = m0 + ql;
        const int key = r < 2 ? key_lo : key_hi;
        const bool visible = key < seqlen && query < seqlen && (!kCausal || key <= query);
        s[qt][r] = visible ? exp2_ftz(s[qt][r] * scale_log2 - cLse[ql] * kLog2e) : 0.f;
      }
    wgmma_wait<0>();
    pin_registers(dp);
    for (int qt = 0; qt < kQTiles; ++qt)
      for (int r = 0; r < 4; ++r) dp[qt][r] = s[qt][r] * (dp[qt][r] - cDelta[qt * 8 + 2 * t + (r & 1)]);

    // dV += P^T dO and dK += dS^T Q: A from registers, B = dO / Q with the
    // query axis as k (MN-major: their rows are queries, columns D).
    for (int kt = 0; kt < kQuerySteps; ++kt) {
      p_fragment<T>(p_frag[kt], s, kt);
      p_fragment<T>(ds_frag[kt], dp, kt);
    }
    pin_dkdv_operands();
    wgmma_fence();
    for (int kt = 0; kt < kQuerySteps; ++kt) {
      const uint32_t off = kt * 16 * kSwizzleLineBytes;
      issue_rs_mn_b<T, D>(&dv_acc[0][0], p_frag[kt], cdO + off, kQPanelBytes);
      issue_rs_mn_b<T, D>(&dk_acc[0][0], ds_frag[kt], cQ + off, kQPanelBytes);
    }
    wgmma_commit();

    // dS to shared memory, query-major, for dQ = dS K (while dV and dK run).
    for (int qt = 0; qt < kQTiles; ++qt)
      for (int r = 0; r < 4; ++r) {
        const int ql = qt * 8 + 2 * t + (r & 1);
        const int kl = key_local + (r < 2 ? 0 : 8);
        *reinterpret_cast<T*>(sdS + swizzled_offset<kBlockM>(ql, kl)) = from_float<T>(dp[qt][r]);
      }
    fence_proxy_async_shared();
    __syncthreads();

    // dQ [64 queries, this warpgroup's 64 columns of D] over its k16 steps of keys.
    float dq[8][4] = {};
    pin_registers(dq);
    wgmma_fence();
    for (int i = 0; i < Cfg::kDqKeySteps; ++i) {
      const int kt = dq_key_step0 + i;
      const uint32_t ds_off = (kt / 4) * kQPanelBytes + (kt % 4) * 32;
      const uint32_t k_off = dq_panel * kKVPanelBytes + kt * 16 * kSwizzleLineBytes;
      Wgmma<T>::ss_mn_b(&dq[0][0], wgmma_desc_sw128(sdS + ds_off, kKMajorLbo, kSbo),
                        wgmma_desc_sw128(sK + k_off, kKVPanelBytes, kSbo));
    }
    wgmma_commit();
    wgmma_wait<0>();  // dQ, and the dV / dK before it
    pin_registers(dq);
    pin_dkdv_operands();
    for (int r = 0; r < 2; ++r) {
      const int query = m0 + warp_in_group * 16 + g + 8 * r;
      if (query >= seqlen) continue;
      float* dst = dq_acc + ((blk.seq_begin + int64_t(query)) * p.heads + hq) * D + dq_panel * 64 + 2 * t;
      for (int i = 0; i < 8; ++i)
        atomic_add_pair(dst + i * 8, dq[i][2 * r] * p.softmax_scale, dq[i][2 * r + 1] * p.softmax_scale);
    }
  }

  // dK (scaled) and dV for this block's keys; the group's heads are summed.
  write_dkdv_rows<T>(args, dk_acc, dv_acc, blk.seq_begin, seqlen, blk.hk, key_lo, t);
#else
  (void)args;
  (void)dq_acc;
  (void)delta_HN;
  __trap();  // the launcher never picks this kernel without sm_90a code
#endif
}

template <typename T, int D, bool kCausal>
void run_attention_bwd_sm90(const AttentionBackwardArgs& args, cudaStream_t stream) {
  using Cfg = BwdSm90Config<D>;
  run_attention_bwd_steps<T, D>(args, stream, [&](float* dq_acc, const float* delta_HN) {
    auto kernel = attention_bwd_sm90_kernel<T, D, kCausal>;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
               "attention_backward", "setting dynamic shared memory (wgmma path)");
    const AttentionProblem& p = args.problem;
    const dim3 grid(ceil_div(p.max_seqlen, Cfg::kBlockN), p.batch, p.kv_heads);
    kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args, dq_acc, delta_HN);
    SPK_CHECK_LAUNCH("attention_backward");
  });
}

}  // namespace synthpert::kernels::attn
