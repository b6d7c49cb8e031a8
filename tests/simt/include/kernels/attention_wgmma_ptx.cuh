// The host emulation's stand-in for kernels/attention_wgmma_ptx.cuh: the same
// names, implemented from the PTX ISA's definitions of the instructions
// (section "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), not
// from the kernel's own layout helpers. The emulation build puts this folder
// first on the quoted-include path, so the kernel and its layout header
// (kernels/attention_wgmma.cuh: swizzled tiles, descriptor encoding) are the
// real ones and meet this file only through descriptors and registers.
//
//   Matrix descriptor: bits 0-13 start address >> 4, 16-29 leading-dimension
//     byte offset (LBO) >> 4, 32-45 stride-dimension byte offset (SBO) >> 4,
//     49-51 base offset, 62-63 swizzle mode (1: 128-byte). Only the 128-byte
//     mode with base offset 0 is implemented; anything else faults.
//   128-byte swizzle: the operand is read at shared address a with bits [4,7)
//     XORed with bits [7,10) (a 16-byte chunk of a 128-byte line moves by the
//     line's index within its 1024-byte period).
//   Operand layouts (16-bit elements, 8 to a 16-byte chunk):
//     K-major (trans = 0): element (mn, k) at start + (mn / 8) * SBO +
//       (mn % 8) * 128 + 2k; LBO is not used by the swizzled K-major layout.
//     MN-major (trans = 1): element (mn, k) at start + (mn / 64) * LBO +
//       2 (mn % 64) + (k / 8) * SBO + (k % 8) * 128.
//   Registers of m64nNk16 (thread w * 32 + lane of the warpgroup, g = lane / 4,
//     t = lane % 4): D register 4i + r is row 16w + g + 8 (r / 2), column
//     8i + 2t + r % 2; A register r (two 16-bit values, lower k low) is row
//     16w + g + 8 (r % 2), columns 2t + 8 (r / 2) and + 1.
//   wgmma.fence / commit_group / wait_group and fence.proxy.async: see
//     simt::wgmma_issue and simt::require_async_visible (which also check
//     the .aligned rule across the warpgroup and that no thread touches its
//     accumulators while an operation on them is in flight).
//
// The five forms the kernels issue (the wrappers' names and fixed modifiers):
//   ss:      D(64x64) += A(64x16, K-major, shared) * B(16x64, K-major, shared)
//   ss_n128: D(64x128) += A(64x16, K-major, shared) * B(16x128, K-major, shared)
//   ss_mn_b: D(64x64) += A(64x16, K-major, shared) * B(16x64, MN-major, shared)
//   rs_mn_b: D(64x64) += A(64x16, registers) * B(16x64, MN-major, shared)
//   rs_mn_b_n128: D(64x128) += A(64x16, registers) * B(16x128, MN-major,
//            shared)
// Each lane's operation is queued at the issue and run at the wait that
// retires it (reading shared memory then); every lane's issue checks what it
// can: the same descriptors in every lane of the warp, operands inside the
// launch's dynamic shared memory and visible to the async proxy, and a
// wgmma.fence before it. The first lane of each warp also reads the operands
// at the issue and again at the wait, recorded, so under ThreadSanitizer a
// write that no barrier orders against either end of the asynchronous read
// is a race; the arithmetic's own reads at the wait are not recorded
// (SIMT_TSAN_UNRECORDED), as recording them took most of a TSan run.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/attention_ptx.cuh"
#include "tests/simt/simt_runtime.h"

#define SPK_HAVE_WGMMA 1

namespace synthpert::kernels::attn {

namespace emulated_wgmma {

constexpr int kM = 64, kK = 16;  // N is the form's: 64, or 128 for ss_n128
constexpr size_t accumulators(int n) { return size_t(kM) * n / 128; }  // D registers per thread of the warpgroup

struct Operand {
  uint32_t start;  // shared address
  uint32_t lbo, sbo;
  bool mn_major;
};

inline Operand decode(uint64_t desc, bool mn_major) {
  const unsigned swizzle = unsigned(desc >> 62), base_offset = unsigned(desc >> 49) & 7u;
  if (swizzle != 1)
    throw simt::KernelFault("wgmma descriptor: swizzle mode " + std::to_string(swizzle) +
                            " (the emulation implements the 128-byte mode, 1)");
  if (base_offset != 0)
    throw simt::KernelFault("wgmma descriptor: base offset " + std::to_string(base_offset) +
                            " (the emulation implements 0)");
  return Operand{uint32_t(desc & 0x3FFF) << 4, uint32_t((desc >> 16) & 0x3FFF) << 4,
                 uint32_t((desc >> 32) & 0x3FFF) << 4, mn_major};
}

SIMT_TSAN_UNRECORDED inline uint32_t swizzle128(uint32_t address) { return address ^ (((address >> 7) & 7u) << 4); }

// Shared address of element (mn, k) of a 16-bit operand.
SIMT_TSAN_UNRECORDED inline uint32_t address_of(const Operand& o, int mn, int k) {
  const uint32_t linear = o.mn_major ? o.start + uint32_t(mn / 64) * o.lbo + uint32_t(mn % 64) * 2 +
                                           uint32_t(k / 8) * o.sbo + uint32_t(k % 8) * 128
                                     : o.start + uint32_t(mn / 8) * o.sbo + uint32_t(mn % 8) * 128 + uint32_t(k) * 2;
  return swizzle128(linear);
}

// Element (mn, k), the read not recorded by ThreadSanitizer: the arithmetic
// at the wait (read_operand records the same bytes).
template <typename T>
SIMT_TSAN_UNRECORDED float load_unrecorded(const unsigned char* window, const Operand& o, int mn, int k) {
  uint16_t bits;
  std::memcpy(&bits, window + address_of(o, mn, k), 2);
  return emulated::half_to_float<T>(bits);
}

// Reads every element of an operand (`extent` rows or columns along mn) as
// the calling thread, recorded: under ThreadSanitizer a write that no
// barrier orders against this read is a race.
template <typename T>
void read_operand(const Operand& o, int extent) {
  const unsigned char* window = simt::shared_window();
  uint32_t sum = 0;
  for (int mn = 0; mn < extent; ++mn)
    for (int k = 0; k < kK; ++k) {
      uint16_t bits;
      std::memcpy(&bits, window + address_of(o, mn, k), 2);
      sum += bits;
    }
  volatile uint32_t keep = sum;  // the reads must happen
  (void)keep;
}

// The byte span [lo, hi) of an operand of `extent` rows or columns along mn.
SIMT_TSAN_UNRECORDED inline void operand_span(const Operand& o, int extent, uint32_t& lo, uint32_t& hi) {
  lo = UINT32_MAX;
  hi = 0;
  for (int mn = 0; mn < extent; ++mn)
    for (int k = 0; k < kK; ++k) {
      const uint32_t at = address_of(o, mn, k);
      lo = at < lo ? at : lo;
      hi = at + 2 > hi ? at + 2 : hi;
    }
}

// What the issue checks of an operand, in every lane, before any lane can
// queue it: its byte span lies in the dynamic shared memory and is visible
// to the async proxy. `read` (the first lane of each warp) also reads every
// element, recorded.
template <typename T>
void check_operand(const Operand& o, int extent, bool read) {
  unsigned char* window = simt::shared_window();
  if (!window) throw simt::KernelFault("wgmma operand: the launch has no dynamic shared memory");
  uint32_t lo, hi;
  operand_span(o, extent, lo, hi);
  simt::require_dynamic_shared(window + lo, hi - lo, "wgmma operand");
  simt::require_async_visible(window + lo, hi - lo);
  if (read) read_operand<T>(o, extent);
}

inline int warp_in_group() { return simt::linear_thread_id() / 32 % 4; }

// What one lane contributes to the warp's issue: descriptors (compared
// across lanes) and, for the register form, its A registers.
struct LaneIssue {
  uint64_t desc_a, desc_b;
  uint32_t a[4];
};

// Gathers the warp's lanes (the .sync of the instruction) and checks the
// descriptors agree.
inline void gather_warp(const LaneIssue& mine, LaneIssue (&all)[32]) {
  simt::warp_gather(&mine, sizeof(mine), all);
  for (const LaneIssue& other : all)
    if (other.desc_a != mine.desc_a || other.desc_b != mine.desc_b)
      throw simt::KernelFault("wgmma: lanes of one warp issue different descriptors");
}

// The arithmetic at the wait, on reads not recorded (the first lane of each
// warp records the operands' reads at the issue and at the wait). A's rows
// of this thread are 16w + g and 16w + g + 8: from shared memory or from the
// warp's A registers as issued (register r of a lane: row g + 8 (r % 2),
// columns 2t + 8 (r / 2) and + 1).
template <typename T>
SIMT_TSAN_UNRECORDED void a_rows_from_shared(float (&a)[2][kK], const Operand& o, int w, int lane) {
  const unsigned char* window = simt::shared_window();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < kK; ++k) a[i][k] = load_unrecorded<T>(window, o, 16 * w + lane / 4 + 8 * i, k);
}
template <typename T>
SIMT_TSAN_UNRECORDED void a_rows_from_registers(float (&a)[2][kK], const LaneIssue (&all)[32], int lane) {
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < kK; ++k) {
      const int src_lane = 4 * (lane / 4) + (k % 8) / 2, reg = i + 2 * (k / 8);
      a[i][k] = emulated::half_to_float<T>(uint16_t(all[src_lane].a[reg] >> (16 * (k % 2))));
    }
}

// D += A * B for this thread's n / 2 accumulators (B is 16 x n).
template <typename T>
SIMT_TSAN_UNRECORDED void accumulate(float* d, const float (&a)[2][kK], const Operand& b, int n, int lane) {
  const unsigned char* window = simt::shared_window();
  const int t = lane % 4;
  for (int i = 0; i < n / 8; ++i)
    for (int r = 0; r < 4; ++r) {
      const int col = 8 * i + 2 * t + r % 2;
      float acc = d[4 * i + r];
      for (int k = 0; k < kK; ++k) acc += a[r / 2][k] * load_unrecorded<T>(window, b, col, k);
      d[4 * i + r] = acc;
    }
}

}  // namespace emulated_wgmma

inline void wgmma_fence() { simt::wgmma_fence(); }
inline void wgmma_commit() { simt::wgmma_commit(); }
template <int kPending>
void wgmma_wait() {
  simt::wgmma_wait(kPending);
}
inline void fence_proxy_async_shared() { simt::fence_proxy_async(); }

// Register pinning is a compiler matter: nothing to do on the host, where
// the queued operation writes the accumulators through a pointer.
template <int N>
void pin_registers(float (&)[N]) {}
template <int N>
void pin_registers(uint32_t (&)[N]) {}
template <int M, int N>
void pin_registers(float (&)[M][N]) {}

template <typename T>
struct Wgmma {
  static void ss(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, false, 64); }
  static void ss_n128(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, false, 128); }
  static void ss_mn_b(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, true, 64); }

  static void rs_mn_b(float* d, const uint32_t a_regs[4], uint64_t desc_b) { issue_rs(d, a_regs, desc_b, 64); }
  static void rs_mn_b_n128(float* d, const uint32_t a_regs[4], uint64_t desc_b) { issue_rs(d, a_regs, desc_b, 128); }

 private:
  static void issue_rs(float* d, const uint32_t a_regs[4], uint64_t desc_b, int n) {
    namespace ew = emulated_wgmma;
    ew::LaneIssue mine{0, desc_b, {a_regs[0], a_regs[1], a_regs[2], a_regs[3]}};
    ew::LaneIssue all[32];
    ew::gather_warp(mine, all);
    const ew::Operand b = ew::decode(desc_b, true);
    const int lane = simt::lane_id();
    ew::check_operand<T>(b, n, lane == 0);
    // `all` holds the warp's A registers as issued (rows 16w..16w+15); the
    // lane's own must still hold them at the wait, as the hardware reads
    // them until then.
    simt::wgmma_issue({0, desc_b, d, ew::accumulators(n), [d, a_regs, all, b, n, lane] {
      if (std::memcmp(a_regs, all[lane].a, sizeof(all[lane].a)) != 0)
        throw simt::KernelFault("wgmma: A registers changed while the wgmma reading them was in flight");
      if (lane == 0) ew::read_operand<T>(b, n);
      float a[2][ew::kK];
      ew::a_rows_from_registers<T>(a, all, lane);
      ew::accumulate<T>(d, a, b, n, lane);
    }});
  }

  static void issue_ss(float* d, uint64_t desc_a, uint64_t desc_b, bool b_mn_major, int n) {
    namespace ew = emulated_wgmma;
    ew::LaneIssue mine{desc_a, desc_b, {}};
    ew::LaneIssue all[32];
    ew::gather_warp(mine, all);
    const ew::Operand a = ew::decode(desc_a, false), b = ew::decode(desc_b, b_mn_major);
    const int lane = simt::lane_id(), w = ew::warp_in_group();
    ew::check_operand<T>(a, ew::kM, lane == 0);
    ew::check_operand<T>(b, n, lane == 0);
    simt::wgmma_issue({desc_a, desc_b, d, ew::accumulators(n), [d, a, b, n, w, lane] {
      if (lane == 0) {
        ew::read_operand<T>(a, ew::kM);
        ew::read_operand<T>(b, n);
      }
      float a_rows[2][ew::kK];
      ew::a_rows_from_shared<T>(a_rows, a, w, lane);
      ew::accumulate<T>(d, a_rows, b, n, lane);
    }});
  }
};

}  // namespace synthpert::kernels::attn
