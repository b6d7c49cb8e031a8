// Attention forward on Hopper tensor cores (wgmma), included by the generated
// instance files kernels/generated/attention_fwd_sm90_*.cu only.
//
// The algorithm is that of kernels/attention_fwd_impl.cuh (online softmax over
// 64-key tiles, P fed back from registers, the same masking and epilogue);
// what changes is who multiplies:
//   * a block is one or two warpgroups (128 or 256 threads) on 64 query rows
//     each. Two share every K/V tile staged in shared memory (half the loads
//     per row); one leaves room for two blocks per SM, whose softmax and
//     wgmma phases then overlap. Which is faster is for the benchmark to say
//     (AttentionForwardArgs::wgmma_warpgroups, default 2);
//   * S = Q K^T is one wgmma m64n64k16 per 16 columns of D, both operands read
//     by the tensor cores straight from 128B-swizzled shared memory (no
//     fragment loads through registers);
//   * O += P V is one wgmma m64n64k16 per 16 keys and 64 columns of D, P from
//     registers, V from shared memory as an MN-major operand.
// Loads stay cp.async (no TMA, no producer warp); the K/V pipeline is the
// sm_80 kernel's. Layouts and fragment mappings: kernels/attention_wgmma.cuh.
//
// Status: compiled for sm_90a on every build, run on CI by the host emulation
// (tests/simt, its PTX emulated from the ISA), not yet run on a GPU. The
// launcher runs it only when asked (AttentionPath::kWgmma) on an sm_90 device.
#pragma once

#include "kernels/attention.h"
#include "kernels/attention_fwd_softmax.cuh"
#include "kernels/attention_wgmma.cuh"

namespace synthpert::kernels::attn {

template <int D, int kWarpGroupsPerBlock>
struct FwdSm90Config {
  static constexpr int kWarpGroups = kWarpGroupsPerBlock;
  static constexpr int kBlockM = 64 * kWarpGroups;  // query rows per block
  static constexpr int kBlockN = 64;                // key tokens per iteration
  static constexpr int kThreads = 128 * kWarpGroups;
  static constexpr int kPanels = D / 64;  // 64-column panels of a swizzled tile
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kKVBytes = kBlockN * D * 2;
  // + one swizzle atom of slack to align the tiles to 1024 bytes.
  static constexpr size_t kSmemBytes = size_t(kQBytes) + 2 * kKVBytes + kSwizzleAtomBytes;
};

template <typename T, int D, bool kCausal, int kWarpGroups>
__global__ void __launch_bounds__(FwdSm90Config<D, kWarpGroups>::kThreads)
    attention_fwd_sm90_kernel(AttentionForwardArgs args) {
#if SPK_HAVE_WGMMA
  using Cfg = FwdSm90Config<D, kWarpGroups>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN;
  constexpr int kNTiles = kBlockN / 8;  // 8-wide score tiles (the 32 S registers)
  constexpr int kDTiles = D / 8;        // 8-wide output tiles (32 O registers per panel)
  constexpr int kDSteps = D / 16;       // k16 steps of Q K^T
  constexpr int kKeySteps = kBlockN / 16;  // k16 steps of P V
  constexpr uint32_t kSbo = kSwizzleAtomBytes;                              // next 8 rows (K-major) or keys (MN-major)
  constexpr uint32_t kKMajorLbo = 16;                                       // unused by 128B swizzle; encodes as 1
  constexpr uint32_t kVPanelBytes = uint32_t(kBlockN) * kSwizzleLineBytes;  // LBO of V: next 64 columns

  const AttentionProblem& p = args.problem;
  const int m_block = blockIdx.x, b = blockIdx.y, h = blockIdx.z;
  const int seq_begin = p.cu_seqlens[b];
  const int seqlen = p.cu_seqlens[b + 1] - seq_begin;
  const int m0 = m_block * kBlockM;
  if (m0 >= seqlen) return;
  const int hk = h / (p.heads / p.kv_heads);

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((kSwizzleAtomBytes - smem_addr(smem_raw) % kSwizzleAtomBytes) % kSwizzleAtomBytes);
  unsigned char* sQ = smem;              // [kBlockM][D] swizzled
  unsigned char* sK = sQ + Cfg::kQBytes;  // [kBlockN][D] swizzled
  unsigned char* sV = sK + Cfg::kKVBytes;  // [kBlockN][D] swizzled

  const T* q_base = static_cast<const T*>(args.q.data) + (seq_begin + int64_t(m0)) * args.q.token_stride +
                    h * args.q.head_stride;
  const T* k_base = static_cast<const T*>(args.k.data) + seq_begin * args.k.token_stride + hk * args.k.head_stride;
  const T* v_base = static_cast<const T*>(args.v.data) + seq_begin * args.v.token_stride + hk * args.v.head_stride;

  load_tile_swizzled_async<T, kBlockM, D, Cfg::kThreads>(sQ, q_base, args.q.token_stride, seqlen - m0);
  cp_async_commit();

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
  const float scale_log2 = p.softmax_scale * kLog2e;

  auto load_k = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        sK, k_base + int64_t(nb) * kBlockN * args.k.token_stride, args.k.token_stride, seqlen - nb * kBlockN);
  };
  auto load_v = [&](int nb) {
    load_tile_swizzled_async<T, kBlockN, D, Cfg::kThreads>(
        sV, v_base + int64_t(nb) * kBlockN * args.v.token_stride, args.v.token_stride, seqlen - nb * kBlockN);
  };
  load_k(0);
  cp_async_commit();
  load_v(0);
  cp_async_commit();

  for (int nb = 0; nb < n_blocks; ++nb) {
    const int n0 = nb * kBlockN;
    const bool more = nb + 1 < n_blocks;
    cp_async_wait<1>();  // K(nb) (and Q) have landed; V(nb) may be in flight
    fence_proxy_async_shared();
    __syncthreads();

    // S = Q K^T for this warpgroup's 64 rows x 64 keys.
    float s[kNTiles][4] = {};
    pin_registers(s);
    wgmma_fence();
    for (int ks = 0; ks < kDSteps; ++ks) {
      const uint32_t q_off = (ks / 4) * uint32_t(kBlockM * kSwizzleLineBytes) + (ks % 4) * 32;
      const uint32_t k_off = (ks / 4) * uint32_t(kBlockN * kSwizzleLineBytes) + (ks % 4) * 32;
      Wgmma<T>::ss(&s[0][0], wgmma_desc_sw128(sQ_rows + q_off, kKMajorLbo, kSbo),
                   wgmma_desc_sw128(sK + k_off, kKMajorLbo, kSbo));
    }
    wgmma_commit();
    wgmma_wait<0>();
    pin_registers(s);
    __syncthreads();  // every warpgroup is done with sK
    if (more) {
      load_k(nb + 1);
      cp_async_commit();
    }

    mask_scores<kCausal>(s, n0, seqlen, row_lo, row_hi, t);
    online_softmax_step(s, o_acc, row_max, row_sum, scale_log2);
    // P in the A layout: the C layout of score tiles 2kt and 2kt + 1.
    uint32_t p_frag[kKeySteps][4];
    for (int kt = 0; kt < kKeySteps; ++kt) p_fragment<T>(p_frag[kt], s, kt);

    if (more)
      cp_async_wait<1>();  // V(nb) has landed; K(nb+1) may be in flight
    else
      cp_async_wait<0>();
    fence_proxy_async_shared();
    __syncthreads();

    // O += P V: per 16 keys, one n64 instruction per 64-column panel of V.
    pin_registers(o_acc);
    for (int kt = 0; kt < kKeySteps; ++kt) pin_registers(p_frag[kt]);
    wgmma_fence();
    for (int kt = 0; kt < kKeySteps; ++kt)
      for (int panel = 0; panel < Cfg::kPanels; ++panel) {
        const uint32_t v_off = panel * kVPanelBytes + kt * 16 * kSwizzleLineBytes;
        Wgmma<T>::rs_mn_b(&o_acc[panel * 8][0], p_frag[kt], wgmma_desc_sw128(sV + v_off, kVPanelBytes, kSbo));
      }
    wgmma_commit();
    wgmma_wait<0>();
    pin_registers(o_acc);
    for (int kt = 0; kt < kKeySteps; ++kt) pin_registers(p_frag[kt]);
    __syncthreads();  // every warpgroup is done with sV
    if (more) {
      load_v(nb + 1);
      cp_async_commit();
    }
  }

  write_forward_rows<T>(args, o_acc, row_max, row_sum, seq_begin, seqlen, h, row_lo, row_hi, t);
#else
  (void)args;
  __trap();  // the launcher never picks this kernel without sm_90a code
#endif
}

template <typename T, int D, bool kCausal, int kWarpGroups>
void launch_attention_fwd_sm90(const AttentionForwardArgs& args, cudaStream_t stream) {
  using Cfg = FwdSm90Config<D, kWarpGroups>;
  auto kernel = attention_fwd_sm90_kernel<T, D, kCausal, kWarpGroups>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
             "attention_forward", "setting dynamic shared memory (wgmma path)");
  const dim3 grid(ceil_div(args.problem.max_seqlen, Cfg::kBlockM), args.problem.batch, args.problem.heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args);
  SPK_CHECK_LAUNCH("attention_forward");
}

// The launcher has checked wgmma_warpgroups is 1 or 2.
template <typename T, int D, bool kCausal>
void run_attention_fwd_sm90(const AttentionForwardArgs& args, cudaStream_t stream) {
  if (args.wgmma_warpgroups == 1)
    launch_attention_fwd_sm90<T, D, kCausal, 1>(args, stream);
  else
    launch_attention_fwd_sm90<T, D, kCausal, 2>(args, stream);
}

}  // namespace synthpert::kernels::attn
