// The host emulation's stand-in for kernels/attention_ptx.cuh: the same
// names, implemented from the PTX ISA's definitions of the instructions
// rather than from the kernels' comments. The emulation build puts this
// folder first on the quoted-include path, so "kernels/attention_ptx.cuh"
// resolves here and every other attention header is the real one.
//
//   mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: with g = lane / 4 and
//     t = lane % 4, register r of A holds row g + 8 (r & 1), columns
//     2t + 8 (r >> 1) and + 1; register r of B holds rows (k) 2t + 8 r and
//     + 1 of column g; C/D element i holds row g + 8 (i >> 1), column
//     2t + (i & 1). The lower index is in the low 16 bits.
//   ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lanes 8i..8i+7 address
//     the rows of matrix i; with .trans, register i of a lane holds elements
//     [2t][g] and [2t+1][g] of matrix i.
//   cp.async.{cg ... 16, ca ... 4} / commit_group / wait_group N: deferred
//     copies (see simt::async_copy).
//   ex2.approx.ftz.f32: 2^x with subnormal inputs and results flushed to
//     (sign-preserving) zero.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "tests/simt/simt_runtime.h"

namespace synthpert::kernels::attn {

namespace emulated {

template <typename T>
SIMT_TSAN_UNRECORDED float half_to_float(uint16_t bits) {
  if constexpr (std::is_same_v<T, __half>) {
    T v;
    std::memcpy(static_cast<void*>(&v), &bits, 2);
    return __half2float(v);
  } else {  // bf16: the upper half of a float32
    const uint32_t word = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &word, 4);
    return f;
  }
}

// 16-bit element `half` (0 low, 1 high) of register `reg` of lane `lane`.
SIMT_TSAN_UNRECORDED inline uint16_t element(const uint32_t* regs_of_lanes, int regs_per_lane, int lane, int reg,
                                            int half) {
  return uint16_t(regs_of_lanes[lane * regs_per_lane + reg] >> (16 * half));
}

// The arithmetic once the warp's registers are gathered: this lane's rows g
// and g + 8 of A and columns 2t and 2t + 1 of B, then its four dot products.
template <typename T>
SIMT_TSAN_UNRECORDED void mma_m16n8k16_lane(float c[4], const uint32_t* all, int lane) {
  const int g = lane / 4, t = lane % 4;
  // A[row][k]: the lane with g = row % 8 and t = (k % 8) / 2, register
  // (row / 8) + 2 (k / 8), half k % 2.
  // B[k][n]: the lane with g = n and t = (k % 8) / 2, register 4 + k / 8, half k % 2.
  float a_rows[2][16], b_cols[2][16];
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 16; ++k) {
      a_rows[i][k] = half_to_float<T>(element(all, 6, 4 * g + (k % 8) / 2, i + 2 * (k / 8), k % 2));
      b_cols[i][k] = half_to_float<T>(element(all, 6, 4 * (2 * t + i) + (k % 8) / 2, 4 + k / 8, k % 2));
    }
  // C element i: row g + 8 (i >> 1), column 2t + (i & 1).
  for (int i = 0; i < 4; ++i) {
    float acc = c[i];
    for (int k = 0; k < 16; ++k) acc += a_rows[i >> 1][k] * b_cols[i & 1][k];
    c[i] = acc;
  }
}

template <typename T>
void mma_m16n8k16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  uint32_t all[32 * 6];
  simt::warp_gather(mine, sizeof(mine), all);
  mma_m16n8k16_lane<T>(c, all, simt::lane_id());
}

inline uint32_t pack_halves(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

}  // namespace emulated

template <typename T>
struct Mma {
  static void run(float c[4], const uint32_t a[4], const uint32_t b[2]) { emulated::mma_m16n8k16<T>(c, a, b); }
  static uint32_t pack(float lo, float hi) {
    T l, h;
    if constexpr (std::is_same_v<T, __half>) {
      l = __float2half_rn(lo);
      h = __float2half_rn(hi);
    } else {
      l = __float2bfloat16_rn(lo);
      h = __float2bfloat16_rn(hi);
    }
    uint16_t lb, hb;
    std::memcpy(&lb, &l, 2);
    std::memcpy(&hb, &h, 2);
    return emulated::pack_halves(lb, hb);
  }
};

// Host addresses stand in for shared-window addresses (used for alignment).
inline uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)); }

inline void ldmatrix_x4_trans(uint32_t r[4], const void* row_addr) {
  const uint16_t* mine = static_cast<const uint16_t*>(row_addr);
  const uint16_t* rows[32];
  simt::warp_gather(&mine, sizeof(mine), rows);
  const int lane = simt::lane_id(), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) r[i] = emulated::pack_halves(rows[8 * i + 2 * t][g], rows[8 * i + 2 * t + 1][g]);
}

inline void cp_async_16(void* smem_dst, const void* gmem_src) { simt::async_copy(smem_dst, gmem_src, 16); }
inline void cp_async_4(void* smem_dst, const void* gmem_src) { simt::async_copy(smem_dst, gmem_src, 4); }
inline void cp_async_commit() { simt::async_commit(); }
template <int kPending>
void cp_async_wait() {
  simt::async_wait(kPending);
}

// ex2.approx.ftz.f32: 2^x, subnormal inputs and results flushed to zero. The
// hardware's result is an approximation within the PTX ISA's error bound;
// this one is exact.
inline float exp2_ftz(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.f;
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.f : y;
}

// red.global.add on two consecutive floats; each element is its own atomic
// in the PTX ISA's definition of the vector form too.
inline void atomic_add_pair(float* dst, float lo, float hi) {
  atomicAdd(dst, lo);
  atomicAdd(dst + 1, hi);
}

}  // namespace synthpert::kernels::attn
