// One warpgroup's 64 query rows in the wgmma forwards: the output
// accumulator, the online softmax's statistics, P of the previous key tile,
// and the wgmmas that read and write them. Shared by the cooperative kernel
// (attention_fwd_sm90_impl.cuh) and the warp-specialised one
// (attention_fwd_sm90_ws_impl.cuh), which differ only in how tiles arrive
// and when a warpgroup may issue; each kernel keeps its own fences, waits
// and barriers around these steps.
//
// Everything lives in registers: the kernels construct one of these per
// thread and every member function is inlined, so the arrays stay
// registers as they were when these steps were lambdas in each kernel.
// The kernels' epilogues take the thread's rows from their own locals, not
// from these members: read from here, nvcc emitted the epilogue twice.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/attention_fwd_softmax.cuh"
#include "kernels/attention_wgmma.cuh"

namespace synthpert::kernels::attn {

template <typename T, int D, bool kCausal, int kBlockM, int kBlockN>
struct WgmmaForwardRows {
  static constexpr int kNTiles = kBlockN / 8;      // 8-wide score tiles (the S registers)
  static constexpr int kDTiles = D / 8;            // 8-wide output tiles (32 O registers per panel)
  static constexpr int kDSteps = D / 16;           // k16 steps of Q K^T
  static constexpr int kKeySteps = kBlockN / 16;   // k16 steps of P V
  static constexpr uint32_t kSbo = kSwizzleAtomBytes;  // next 8 rows (K-major) or keys (MN-major)
  static constexpr uint32_t kKMajorLbo = 16;           // unused by 128B swizzle; encodes as 1
  static constexpr uint32_t kVPanelBytes = uint32_t(kBlockN) * kSwizzleLineBytes;  // LBO of V: next 64 columns
  using Scores = float[kNTiles][4];

  const unsigned char* sQ_rows;  // this warpgroup's 64 rows of the Q tile: whole 8-row groups of every panel
  int keylen, key_shift;  // the block's keys (ForwardBlock)
  int row_lo, row_hi;  // this thread's two query rows (accumulator layout, attention_fwd_softmax.cuh)
  int g, t;            // lane / 4, lane % 4
  float scale_log2;
  float o_acc[kDTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};
  float rescale[2];
  uint32_t p_frag[kKeySteps][4];  // P of the previous key tile in the A layout

  __device__ __forceinline__ WgmmaForwardRows(const unsigned char* q_rows, int key_count, int shift, int first_row,
                                              int lane, float softmax_scale)
      : sQ_rows(q_rows),
        keylen(key_count),
        key_shift(shift),
        row_lo(first_row),
        row_hi(first_row + 8),
        g(lane / 4),
        t(lane % 4),
        scale_log2(softmax_scale * kLog2e) {}

  // S = Q K^T for the key tile at k_tile: 64 rows x kBlockN keys.
  __device__ __forceinline__ void issue_scores(Scores& s, const unsigned char* k_tile) const {
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
  }

  // O += P V for the value tile at v_tile: per 16 keys, one m64nDk16 over all of D.
  __device__ __forceinline__ void issue_pv(const unsigned char* v_tile) {
    for (int kt = 0; kt < kKeySteps; ++kt)
      issue_rs_mn_b<T, D>(&o_acc[0][0], p_frag[kt], v_tile + kt * 16 * kSwizzleLineBytes, kVPanelBytes);
    wgmma_commit();
  }

  // Keeps the compiler from moving accesses to the P V's operands across the
  // asynchronous wgmma boundaries.
  __device__ __forceinline__ void pin_pv_operands() {
    pin_registers(o_acc);
    for (int kt = 0; kt < kKeySteps; ++kt) pin_registers(p_frag[kt]);
  }

  // Masks (this warp's boundary tiles only) and folds key tile nb's scores
  // into the softmax; O's rescale is left to the caller.
  __device__ __forceinline__ void scores_to_p(Scores& s, int nb) {
    if (tile_needs_mask<kCausal, kBlockN>(nb * kBlockN, keylen, row_lo - g, key_shift))
      mask_scores<kCausal>(s, nb * kBlockN, keylen, row_lo, row_hi, key_shift, t);
    softmax_update(s, row_max, row_sum, scale_log2, rescale);
  }

  // P of these scores becomes the next P V's A operand.
  __device__ __forceinline__ void keep_p(const Scores& s) {
    for (int kt = 0; kt < kKeySteps; ++kt) p_fragment<T>(p_frag[kt], s, kt);
  }
};

}  // namespace synthpert::kernels::attn
