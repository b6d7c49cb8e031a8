// Attention forward on Hopper tensor cores (wgmma), included by the generated
// instance files kernels/generated/attention_fwd_sm90_*.cu only.
//
// The algorithm is that of kernels/attention_fwd_impl.cuh (online softmax over
// key tiles, P fed back from registers, the same masking and epilogue); what
// changes is who multiplies, how many keys a step takes, and what overlaps:
//   * a block is one or two warpgroups (128 or 256 threads) on 64 query rows
//     each. Two share every K/V tile staged in shared memory (half the loads
//     per row); one leaves room for two blocks per SM. Which is faster is for
//     the benchmark to say (AttentionForwardArgs::wgmma_warpgroups);
//   * a key tile is 64 or 128 keys (AttentionForwardArgs::wgmma_key_block):
//     128 halves the barriers, cp.async rounds and row reductions per key
//     and issues S as m64n128k16 (FlashAttention-3's tile at head dim 128),
//     at the price of 64 more registers per thread (S and P of a wider tile)
//     and twice the K/V shared memory;
//   * S = Q K^T is one wgmma m64nNk16 (N = the key tile) per 16 columns of D,
//     both operands read by the tensor cores straight from 128B-swizzled
//     shared memory (no fragment loads through registers);
//   * O += P V is one wgmma m64nDk16 per 16 keys, P from registers, V from
//     shared memory as an MN-major operand (at D = 128 its two 64-column
//     panels are the layout's two swizzle atoms along N; FlashAttention-3's
//     width, where two n64 halves would issue twice the instructions);
//   * within a warpgroup, the softmax of one key tile runs while the tensor
//     cores multiply the previous tile's P V (FlashAttention-3's
//     intra-warpgroup pipelining): S(j) and P(j-1) V(j-1) are issued back to
//     back, S(j) is waited for alone, its softmax computed, and only then
//     the P V waited for and O rescaled;
//   * K and V tiles are double-buffered: the next iteration's tiles load with
//     cp.async during the whole current one, with one barrier per iteration.
// Loads stay cp.async (no TMA, no producer warp). Layouts and fragment
// mappings: kernels/attention_wgmma.cuh.
//
// Status: compiled for sm_90a on every build and run on CI by the host
// emulation (tests/simt, its PTX emulated from the ISA, which also checks
// that no thread touches accumulators or A fragments of a wgmma in flight).
// On an H200 (benchmarks/results/attention-nvidia-h200-2026-12-04.md) its
// first form, with no overlap inside a warpgroup and single-buffered tiles,
// ran at 0.67-0.86x PyTorch's flash backend; this form is not yet measured.
#pragma once

#include "kernels/attention.h"
#include "kernels/attention_fwd_softmax.cuh"
#include "kernels/attention_fwd_sm90_rows.cuh"
#include "kernels/attention_fwd_sm90_ws_impl.cuh"
#include "kernels/attention_wgmma.cuh"

namespace synthpert::kernels::attn {

template <int D, int kWarpGroupsPerBlock, int kKeysPerTile>
struct FwdSm90Config {
  static_assert(kKeysPerTile == 64 || kKeysPerTile == 128, "S is one m64n64k16 or m64n128k16 per k16 step");
  static constexpr int kWarpGroups = kWarpGroupsPerBlock;
  static constexpr int kBlockM = 64 * kWarpGroups;  // query rows per block
  static constexpr int kBlockN = kKeysPerTile;      // key tokens per iteration
  static constexpr int kThreads = 128 * kWarpGroups;
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kKVBytes = kBlockN * D * 2;
  static constexpr int kStages = 2;  // K and V tiles each double-buffered
  // + one swizzle atom of slack to align the tiles to 1024 bytes.
  static constexpr size_t kSmemBytes = size_t(kQBytes) + 2 * kStages * size_t(kKVBytes) + kSwizzleAtomBytes;
};

template <typename T, int D, bool kCausal, int kWarpGroups, int kKeysPerTile>
__global__ void __launch_bounds__(FwdSm90Config<D, kWarpGroups, kKeysPerTile>::kThreads)
    attention_fwd_sm90_kernel(AttentionForwardArgs args) {
#if SPK_HAVE_WGMMA
  using Cfg = FwdSm90Config<D, kWarpGroups, kKeysPerTile>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN;
  using Rows = WgmmaForwardRows<T, D, kCausal, kBlockM, kBlockN>;

  const AttentionProblem& p = args.problem;
  const auto blk = ForwardBlock<T>::template locate<kCausal, kBlockM>(args);
  if (!blk.valid) return;
  const int seq_begin = blk.seq_begin, seqlen = blk.seqlen, h = blk.h, m0 = blk.m0;
  const T *q_base = blk.q_base, *k_base = blk.k_base, *v_base = blk.v_base;

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((kSwizzleAtomBytes - smem_addr(smem_raw) % kSwizzleAtomBytes) % kSwizzleAtomBytes);
  unsigned char* sQ = smem;                                   // [kBlockM][D] swizzled
  unsigned char* sK = sQ + Cfg::kQBytes;                      // kStages x [kBlockN][D] swizzled
  unsigned char* sV = sK + Cfg::kStages * Cfg::kKVBytes;      // kStages x [kBlockN][D] swizzled
  auto k_stage = [&](int nb) { return sK + (nb % Cfg::kStages) * Cfg::kKVBytes; };
  auto v_stage = [&](int nb) { return sV + (nb % Cfg::kStages) * Cfg::kKVBytes; };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warpgroup = warp / 4;
  const int keylen = blk.keylen;
  const int n_blocks = blk.template key_blocks<kCausal, kBlockM, kBlockN>();

  // Warpgroup w owns rows 64w..64w+63 (whole 8-row groups of every Q
  // panel), its warp i rows 16i..16i+15.
  const int row_lo = m0 + warp * 16 + lane / 4;
  Rows rows(sQ + warpgroup * 64 * kSwizzleLineBytes, keylen, blk.key_shift, row_lo, lane, p.softmax_scale);

  auto load_k = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        k_stage(nb), k_base + int64_t(nb) * kBlockN * args.k.token_stride, args.k.token_stride, keylen - nb * kBlockN);
  };
  auto load_v = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        v_stage(nb), v_base + int64_t(nb) * kBlockN * args.v.token_stride, args.v.token_stride, keylen - nb * kBlockN);
  };
  // Every thread's cp.async copies so far have landed and are visible to the
  // tensor cores' (async proxy) reads of every warpgroup; also a block-wide
  // barrier, so every wgmma waited for before it is done with its tiles.
  auto tiles_ready = [] {
    cp_async_wait<0>();
    fence_proxy_async_shared();
    __syncthreads();
  };

  // Prologue: Q and K(0), then V(0) and K(1), then S(0) and its softmax.
  load_tile_swizzled_async<T, kBlockM, D, Cfg::kThreads>(sQ, q_base, args.q.token_stride, seqlen - m0);
  load_k(0);
  cp_async_commit();
  load_v(0);
  if (n_blocks > 1) load_k(1);
  cp_async_commit();
  cp_async_wait<1>();  // Q and K(0)
  fence_proxy_async_shared();
  __syncthreads();
  {
    typename Rows::Scores s = {};
    pin_registers(s);
    wgmma_fence();
    rows.issue_scores(s, k_stage(0));
    wgmma_wait<0>();
    pin_registers(s);
    rows.scores_to_p(s, 0);  // O is still zero: no rescale
    rows.keep_p(s);
  }

  // Iteration nb overlaps, within each warpgroup, the softmax of S(nb) with
  // O += P(nb-1) V(nb-1) on the tensor cores (both issued back to back; S
  // first, so it retires first). The tiles of iteration nb + 1 (K(nb+1),
  // V(nb)) load during the whole iteration into the stages that K(nb-1) and
  // V(nb-2) left, which tiles_ready's barrier has seen every warpgroup finish.
  for (int nb = 1; nb < n_blocks; ++nb) {
    tiles_ready();  // K(nb) and V(nb-1)
    if (nb + 1 < n_blocks) load_k(nb + 1);
    load_v(nb);
    cp_async_commit();

    typename Rows::Scores s = {};
    pin_registers(s);
    rows.pin_pv_operands();
    wgmma_fence();
    rows.issue_scores(s, k_stage(nb));
    rows.issue_pv(v_stage(nb - 1));
    wgmma_wait<1>();  // S(nb); the P V may still run
    pin_registers(s);
    rows.scores_to_p(s, nb);
    wgmma_wait<0>();  // P(nb-1) V(nb-1): O and P are free again
    rows.pin_pv_operands();
    rescale_output(rows.o_acc, rows.rescale);
    rows.keep_p(s);
  }

  // Epilogue: the last tile's P V.
  tiles_ready();  // V(n_blocks - 1)
  rows.pin_pv_operands();
  wgmma_fence();
  rows.issue_pv(v_stage(n_blocks - 1));
  wgmma_wait<0>();
  pin_registers(rows.o_acc);

  write_forward_rows<T>(args, rows.o_acc, rows.row_max, rows.row_sum, seq_begin, seqlen, h, row_lo, row_lo + 8,
                        lane % 4);
#else
  (void)args;
  __trap();  // the launcher never picks this kernel without sm_90a code
#endif
}

template <typename T, int D, bool kCausal, int kWarpGroups, int kKeysPerTile>
void launch_attention_fwd_sm90(const AttentionForwardArgs& args, cudaStream_t stream) {
  using Cfg = FwdSm90Config<D, kWarpGroups, kKeysPerTile>;
  auto kernel = attention_fwd_sm90_kernel<T, D, kCausal, kWarpGroups, kKeysPerTile>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
             "attention_forward", "setting dynamic shared memory (wgmma path)");
  const dim3 grid(ceil_div(args.problem.max_seqlen, Cfg::kBlockM), args.problem.batch, args.problem.heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args);
  SPK_CHECK_LAUNCH("attention_forward");
}

// The launcher has checked wgmma_warpgroups is 1 or 2, wgmma_key_block 64
// or 128, 2 warpgroups with wgmma_pingpong, and wgmma_pingpong with
// wgmma_tma.
template <typename T, int D, bool kCausal>
void run_attention_fwd_sm90(const AttentionForwardArgs& args, cudaStream_t stream) {
  const bool wide = args.wgmma_key_block == 128;
  if (args.wgmma_pingpong && args.wgmma_tma)
    wide ? launch_attention_fwd_sm90_ws<T, D, kCausal, 128, true>(args, stream)
         : launch_attention_fwd_sm90_ws<T, D, kCausal, 64, true>(args, stream);
  else if (args.wgmma_pingpong)
    wide ? launch_attention_fwd_sm90_ws<T, D, kCausal, 128, false>(args, stream)
         : launch_attention_fwd_sm90_ws<T, D, kCausal, 64, false>(args, stream);
  else if (args.wgmma_warpgroups == 1)
    wide ? launch_attention_fwd_sm90<T, D, kCausal, 1, 128>(args, stream)
         : launch_attention_fwd_sm90<T, D, kCausal, 1, 64>(args, stream);
  else
    wide ? launch_attention_fwd_sm90<T, D, kCausal, 2, 128>(args, stream)
         : launch_attention_fwd_sm90<T, D, kCausal, 2, 64>(args, stream);
}

}  // namespace synthpert::kernels::attn
