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
  constexpr int kNTiles = kBlockN / 8;  // 8-wide score tiles (the 32 S registers)
  constexpr int kDTiles = D / 8;        // 8-wide output tiles (32 O registers per panel)
  constexpr int kDSteps = D / 16;       // k16 steps of Q K^T
  constexpr int kKeySteps = kBlockN / 16;  // k16 steps of P V
  constexpr uint32_t kSbo = kSwizzleAtomBytes;                              // next 8 rows (K-major) or keys (MN-major)
  constexpr uint32_t kKMajorLbo = 16;                                       // unused by 128B swizzle; encodes as 1
  constexpr uint32_t kVPanelBytes = uint32_t(kBlockN) * kSwizzleLineBytes;  // LBO of V: next 64 columns

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
  const int g = lane / 4, t = lane % 4;
  const int row_lo = m0 + warp * 16 + g;  // warpgroup w owns rows 64w..64w+63, its warp i rows 16i..
  const int row_hi = row_lo + 8;
  // This warpgroup's 64 rows of the Q tile: whole 8-row groups of every panel.
  const unsigned char* sQ_rows = sQ + warpgroup * 64 * kSwizzleLineBytes;

  const int n_end = kCausal ? min(seqlen, m0 + kBlockM) : seqlen;
  const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

  float o_acc[kDTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};
  float rescale[2];
  const float scale_log2 = p.softmax_scale * kLog2e;
  uint32_t p_frag[kKeySteps][4];  // P of the previous key tile in the A layout

  auto load_k = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        k_stage(nb), k_base + int64_t(nb) * kBlockN * args.k.token_stride, args.k.token_stride, seqlen - nb * kBlockN);
  };
  auto load_v = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        v_stage(nb), v_base + int64_t(nb) * kBlockN * args.v.token_stride, args.v.token_stride, seqlen - nb * kBlockN);
  };
  // Every thread's cp.async copies so far have landed and are visible to the
  // tensor cores' (async proxy) reads of every warpgroup; also a block-wide
  // barrier, so every wgmma waited for before it is done with its tiles.
  auto tiles_ready = [] {
    cp_async_wait<0>();
    fence_proxy_async_shared();
    __syncthreads();
  };
  auto issue_scores = [&](float (&s)[kNTiles][4], int nb) {  // S = Q K(nb)^T, 64 rows x kBlockN keys
    const unsigned char* k_tile = k_stage(nb);
    for (int ks = 0; ks < kDSteps; ++ks) {
      const uint32_t q_off = (ks / 4) * uint32_t(kBlockM * kSwizzleLineBytes) + (ks % 4) * 32;
      const uint32_t k_off = (ks / 4) * uint32_t(kBlockN * kSwizzleLineBytes) + (ks % 4) * 32;
      const uint64_t desc_q = wgmma_desc_sw128(sQ_rows + q_off, kKMajorLbo, kSbo);
      const uint64_t desc_k = wgmma_desc_sw128(k_tile + k_off, kKMajorLbo, kSbo);
      if constexpr (kBlockN == 128)
        Wgmma<T>::ss_n128(&s[0][0], desc_q, desc_k);
      else
        Wgmma<T>::ss(&s[0][0], desc_q, desc_k);
    }
    wgmma_commit();
  };
  auto issue_pv = [&](int nb) {  // O += P V(nb): per 16 keys, one m64nDk16 over all of D
    const unsigned char* v_tile = v_stage(nb);
    for (int kt = 0; kt < kKeySteps; ++kt)
      issue_rs_mn_b<T, D>(&o_acc[0][0], p_frag[kt], v_tile + kt * 16 * kSwizzleLineBytes, kVPanelBytes);
    wgmma_commit();
  };
  // Keeps the compiler from moving accesses to the P V's operands across the
  // asynchronous wgmma boundaries.
  auto pin_pv_operands = [&] {
    pin_registers(o_acc);
    for (int kt = 0; kt < kKeySteps; ++kt) pin_registers(p_frag[kt]);
  };
  auto scores_to_p = [&](float (&s)[kNTiles][4], int nb) {  // mask, softmax; O's rescale left to the caller
    if (tile_needs_mask<kCausal, kBlockN>(nb * kBlockN, seqlen, row_lo - g))  // this warp's boundary tiles only
      mask_scores<kCausal>(s, nb * kBlockN, seqlen, row_lo, row_hi, t);
    softmax_update(s, row_max, row_sum, scale_log2, rescale);
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
    float s[kNTiles][4] = {};
    pin_registers(s);
    wgmma_fence();
    issue_scores(s, 0);
    wgmma_wait<0>();
    pin_registers(s);
    scores_to_p(s, 0);  // O is still zero: no rescale
    for (int kt = 0; kt < kKeySteps; ++kt) p_fragment<T>(p_frag[kt], s, kt);
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

    float s[kNTiles][4] = {};
    pin_registers(s);
    pin_pv_operands();
    wgmma_fence();
    issue_scores(s, nb);
    issue_pv(nb - 1);
    wgmma_wait<1>();  // S(nb); the P V may still run
    pin_registers(s);
    scores_to_p(s, nb);
    wgmma_wait<0>();  // P(nb-1) V(nb-1): O and p_frag are free again
    pin_pv_operands();
    rescale_output(o_acc, rescale);
    for (int kt = 0; kt < kKeySteps; ++kt) p_fragment<T>(p_frag[kt], s, kt);
  }

  // Epilogue: the last tile's P V.
  tiles_ready();  // V(n_blocks - 1)
  pin_pv_operands();
  wgmma_fence();
  issue_pv(n_blocks - 1);
  wgmma_wait<0>();
  pin_registers(o_acc);

  write_forward_rows<T>(args, o_acc, row_max, row_sum, seq_begin, seqlen, h, row_lo, row_hi, t);
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
