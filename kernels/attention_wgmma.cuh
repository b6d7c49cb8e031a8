// Hopper (sm_90a) warpgroup primitives for the wgmma attention forward
// (kernels/attention_fwd_sm90_impl.cuh): 128-byte-swizzled shared-memory
// tiles, and wgmma shared-memory matrix descriptors.
//
// Shared-memory tile layout (PTX ISA, "Shared Memory Matrix Layout", 128B
// swizzling). A [kRows][D] tile of 16-bit values is stored as D/64 panels of
// 64 columns; panel p holds columns 64p..64p+63 of every row, one 128-byte
// line per row. Within a line the 16-byte chunk c (columns 8c..8c+7 of the
// panel) sits at chunk position c ^ (row % 8). Every panel starts on a
// 1024-byte boundary, so this XOR is exactly what the hardware's 128B swizzle
// applies to address bits [4,7) from bits [7,10), and descriptors need base
// offset 0.
//
// The same bytes serve both operand orientations of the kernel:
//   * K-major (Q as A and K as B of S = Q K^T): rows are M or N, columns K.
//     Canonical layout Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T)) with
//     T = 8 elements: 8-row groups SBO = 1024 bytes apart; LBO unused. One
//     k16 step is 32 bytes, so step j of a panel starts 32 * j bytes in.
//   * MN-major (V as B of O = P V, imm-trans-b = 1): rows are K (keys),
//     columns N (head dim). Canonical layout
//     Swizzle<3,4,3> o ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)): 64 N-columns per
//     128-byte line, 8-key groups SBO = 1024 bytes apart, 64-column panels LBO
//     apart. The kernel issues one n64 instruction per panel, so m = 1 and LBO
//     is never stepped over; it is set to the panel stride all the same.
//
// Register fragments: the m64nNk16 f32 accumulator gives warp w of the
// warpgroup rows 16w..16w+15, in the mma.m16n8k16 C layout repeated over the
// N/8 column tiles (register 4i+r of a thread is tile i's c_r), and the
// register A operand of m64nNk16 is the mma.m16n8k16 A layout per warp. So
// the online softmax and the C->A reuse of kernels/attention_fwd_impl.cuh
// carry over unchanged.
//
// The instructions themselves (wgmma.*, fence.proxy.async) are in
// kernels/attention_wgmma_ptx.cuh.
#pragma once

#include <cstdint>

#include "kernels/attention_mma.cuh"
#include "kernels/attention_wgmma_ptx.cuh"

namespace synthpert::kernels::attn {

constexpr int kSwizzleLineBytes = 128;  // one 64-column line of a panel
constexpr int kSwizzleAtomBytes = 1024;  // 8 lines: the period of the 128B swizzle

// Byte offset of element (row, col) in a [kRows][D] tile of 16-bit values
// stored in 128B-swizzled panels (layout above).
template <int kRows>
__host__ __device__ constexpr uint32_t swizzled_offset(int row, int col) {
  return uint32_t(col / 64) * (kRows * kSwizzleLineBytes) + uint32_t(row) * kSwizzleLineBytes +
         uint32_t(((col % 64) / 8) ^ (row % 8)) * 16 + uint32_t(col % 8) * 2;
}

// stage_rows_async into the swizzled tile at `dst` (1024-byte aligned).
template <typename T, int kRows, int D, int kThreads>
__device__ __forceinline__ void load_tile_swizzled_async(unsigned char* dst, const T* src, int64_t token_stride,
                                                         int rows_valid) {
  stage_rows_async<T, kRows, D, kThreads>(src, token_stride, rows_valid,
                                          [dst](int row, int col) { return dst + swizzled_offset<kRows>(row, col); });
}

// wgmma shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base
// offset (0: patterns start on 1024-byte boundaries), 62-63 swizzle (1: 128B).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(const void* smem_ptr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  const uint32_t addr = smem_addr(smem_ptr);
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t((lbo_bytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t((sbo_bytes & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}

// acc (64 x D fp32, D / 2 registers per thread) += A (64x16, registers) *
// B (16 x D), B an MN-major [16 k][D] slice of a swizzled tile whose
// 64-column panels are `panel_bytes` apart: one m64nDk16 for D = 64 or 128,
// its panels the canonical layout's swizzle atoms along N (LBO).
template <typename T, int D>
__device__ __forceinline__ void issue_rs_mn_b(float* acc, const uint32_t a[4], const unsigned char* b,
                                              uint32_t panel_bytes) {
  static_assert(D == 64 || D == 128, "one m64n64k16 or m64n128k16");
  const uint64_t desc_b = wgmma_desc_sw128(b, panel_bytes, kSwizzleAtomBytes);
  if constexpr (D == 128)
    Wgmma<T>::rs_mn_b_n128(acc, a, desc_b);
  else
    Wgmma<T>::rs_mn_b(acc, a, desc_b);
}

}  // namespace synthpert::kernels::attn
