// Attention forward kernel (FlashAttention-2 style), included by the
// generated instance files kernels/generated/attention_fwd_*.cu only.
//
// One thread block computes 64 query rows of one head of one sequence; its 4
// warps own 16 rows each. Keys/values stream through shared memory in tiles
// of 64 tokens; each warp keeps its rows' running max m, running sum l and the
// unnormalised output O in registers (online softmax), so the [T, T] score
// matrix never exists in memory. The row's logsumexp is saved for backward.
//
// Hopper note: this is the sm_80 mma.sync path, which also runs on sm_90a.
// A wgmma + TMA path (warpgroup-wide 64xNx16 mma reading operands straight
// from shared memory, producer/consumer warp specialisation) is where the
// remaining Hopper speed lies; it is future work, see docs/kernels-attention.md.
#pragma once

#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_fwd_softmax.cuh"
#include "kernels/attention_mma.cuh"

namespace synthpert::kernels::attn {

template <int D>
struct FwdConfig {
  static constexpr int kBlockM = 64;  // query rows per block (16 per warp)
  static constexpr int kBlockN = 64;  // key tokens per iteration
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  // +8 elements (16 bytes) per row: rows start in different banks, so the
  // fragment loads and ldmatrix below are free of bank conflicts, while every
  // row stays 16-byte aligned for cp.async.
  static constexpr int kPitch = D + 8;
  static constexpr size_t kSmemBytes = size_t(kBlockM + 2 * kBlockN) * kPitch * 2;
};

template <typename T, int D, bool kCausal>
__global__ void __launch_bounds__(FwdConfig<D>::kThreads)
    attention_fwd_kernel(AttentionForwardArgs args) {
  using Cfg = FwdConfig<D>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kPitch = Cfg::kPitch;
  constexpr int kNTiles = kBlockN / 8;  // 8-wide score tiles per warp row block
  constexpr int kDTiles = D / 8;        // 8-wide output tiles
  constexpr int kDSteps = D / 16;       // k-steps of Q K^T

  const AttentionProblem& p = args.problem;
  const auto blk = ForwardBlock<T>::template locate<kCausal, kBlockM>(args);
  if (!blk.valid) return;
  const int seq_begin = blk.seq_begin, seqlen = blk.seqlen, h = blk.h, m0 = blk.m0;
  const int keylen = blk.keylen, key_shift = blk.key_shift;
  const T *q_base = blk.q_base, *k_base = blk.k_base, *v_base = blk.v_base;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // [kBlockM][kPitch]
  T* sK = sQ + kBlockM * kPitch;           // [kBlockN][kPitch]
  T* sV = sK + kBlockN * kPitch;           // [kBlockN][kPitch]

  load_tile_async<T, kBlockM, D, kPitch, Cfg::kThreads>(sQ, q_base, args.q.token_stride, seqlen - m0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int row_lo = m0 + warp * 16 + g;  // sequence-relative query rows of this thread
  const int row_hi = row_lo + 8;

  const int n_blocks = blk.template key_blocks<kCausal, kBlockM, kBlockN>();

  float o_acc[kDTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};  // raw (unscaled) scores
  float row_sum[2] = {0.f, 0.f};              // this thread's partial sums
  const float scale_log2 = p.softmax_scale * kLog2e;
  uint32_t q_frag[kDSteps][4];

  auto load_k = [&](int nb) {
    load_tile_async<T, kBlockN, D, kPitch, Cfg::kThreads>(sK, k_base + int64_t(nb) * kBlockN * args.k.token_stride,
                                                          args.k.token_stride, keylen - nb * kBlockN);
  };
  auto load_v = [&](int nb) {
    load_tile_async<T, kBlockN, D, kPitch, Cfg::kThreads>(sV, v_base + int64_t(nb) * kBlockN * args.v.token_stride,
                                                          args.v.token_stride, keylen - nb * kBlockN);
  };
  // Software pipeline over one K and one V buffer: K(nb+1) loads while the
  // softmax and P.V of tile nb run, V(nb+1) while Q.K^T of tile nb+1 runs.
  // Commit groups complete in order, so "wait until at most one group is
  // pending" always means "the older of the two tiles in flight has landed".
  load_k(0);
  cp_async_commit();
  load_v(0);
  cp_async_commit();

  for (int nb = 0; nb < n_blocks; ++nb) {
    const int n0 = nb * kBlockN;
    const bool more = nb + 1 < n_blocks;
    cp_async_wait<1>();  // K(nb) (and Q) have landed; V(nb) may be in flight
    __syncthreads();

    if (nb == 0) {
      const T* qr = sQ + (warp * 16 + g) * kPitch + 2 * t;
      for (int ks = 0; ks < kDSteps; ++ks) {
        q_frag[ks][0] = load_pair(qr + ks * 16);
        q_frag[ks][1] = load_pair(qr + 8 * kPitch + ks * 16);
        q_frag[ks][2] = load_pair(qr + ks * 16 + 8);
        q_frag[ks][3] = load_pair(qr + 8 * kPitch + ks * 16 + 8);
      }
    }

    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s[kNTiles][4] = {};
    for (int ks = 0; ks < kDSteps; ++ks) {
      for (int nt = 0; nt < kNTiles; ++nt) {
        const T* kr = sK + (nt * 8 + g) * kPitch + ks * 16 + 2 * t;
        const uint32_t bfrag[2] = {load_pair(kr), load_pair(kr + 8)};
        Mma<T>::run(s[nt], q_frag[ks], bfrag);
      }
    }
    __syncthreads();  // every warp is done with sK
    if (more) {
      load_k(nb + 1);
      cp_async_commit();
    }

    // Mask keys past the last one and, if causal, above the diagonal (only
    // this warp's boundary tiles have any).
    if (tile_needs_mask<kCausal, kBlockN>(n0, keylen, row_lo - g, key_shift))
      mask_scores<kCausal>(s, n0, keylen, row_lo, row_hi, key_shift, t);

    // Online softmax update of the two rows this thread holds.
    online_softmax_step(s, o_acc, row_max, row_sum, scale_log2);

    if (more)
      cp_async_wait<1>();  // V(nb) has landed; K(nb+1) may be in flight
    else
      cp_async_wait<0>();
    __syncthreads();

    // O += P V, P taken from registers (C layout of two score tiles = A layout).
    for (int kt = 0; kt < kBlockN / 16; ++kt) {
      uint32_t pfrag[4];
      p_fragment<T>(pfrag, s, kt);
      // Lanes 0-15 address key rows kt*16 + 0..15 at column dt*8; lanes 16-31
      // the same rows at column (dt+1)*8: one ldmatrix yields two B fragments.
      const T* vr = sV + (kt * 16 + (lane & 15)) * kPitch + (lane >> 4) * 8;
      for (int dt = 0; dt < kDTiles; dt += 2) {
        uint32_t vfrag[4];
        ldmatrix_x4_trans(vfrag, vr + dt * 8);
        Mma<T>::run(o_acc[dt], pfrag, vfrag);
        Mma<T>::run(o_acc[dt + 1], pfrag, vfrag + 2);
      }
    }
    __syncthreads();  // every warp is done with sV
    if (more) {
      load_v(nb + 1);
      cp_async_commit();
    }
  }

  // Normalise, write O and the logsumexp.
  write_forward_rows<T>(args, o_acc, row_max, row_sum, seq_begin, seqlen, h, row_lo, row_hi, t);
}

template <typename T, int D, bool kCausal>
void run_attention_fwd(const AttentionForwardArgs& args, cudaStream_t stream) {
  using Cfg = FwdConfig<D>;
  auto kernel = attention_fwd_kernel<T, D, kCausal>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
             "attention_forward", "setting dynamic shared memory");
  const dim3 grid(ceil_div(args.problem.max_seqlen, Cfg::kBlockM), args.problem.batch, args.problem.heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args);
  SPK_CHECK_LAUNCH("attention_forward");
}

}  // namespace synthpert::kernels::attn
